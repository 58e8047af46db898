//! Which providers an AI request is tried on, in which order, and under which model name.
//!
//! With a routing rule (the key's own, else the workspace default) the rule decides: its
//! targets in order (`fallback`) or one picked by weight and then the others (`split`); a
//! target's model map, then the provider's own `model_map`, names the model upstream. Without
//! a rule the first provider in config order that lists the requested model serves it. A
//! rule's provider that the config does not know is skipped (the config may have changed
//! since the rule was written).

use keygate_core::routing::{attempt_order, RoutingRule};

use super::config::{AiConfig, Provider};

/// One provider to try and the model name to send it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub provider: &'a Provider,
    pub model: String,
}

/// The providers to try for `model`, best first. `roll` is uniform in `[0, 1)` and decides a
/// weighted split.
pub fn candidates<'a>(
    ai: &'a AiConfig,
    rule: Option<&RoutingRule>,
    model: &str,
    roll: f64,
) -> Vec<Candidate<'a>> {
    let upstream_name = |provider: &Provider, from_rule: Option<&String>| {
        from_rule
            .or_else(|| provider.model_map.get(model))
            .cloned()
            .unwrap_or_else(|| model.to_owned())
    };
    match rule {
        Some(rule) => attempt_order(rule.mode, &rule.targets, roll)
            .into_iter()
            .filter_map(|i| {
                let target = &rule.targets[i];
                let Some(provider) = ai.provider(&target.provider) else {
                    tracing::warn!(rule = %rule.id, provider = %target.provider, "a routing rule names a provider the gateway config does not have; skipped");
                    return None;
                };
                Some(Candidate {
                    provider,
                    model: upstream_name(provider, target.models.get(model)),
                })
            })
            .collect(),
        None => ai
            .providers
            .iter()
            .find(|p| p.models.iter().any(|m| m == model))
            .map(|provider| Candidate {
                provider,
                model: upstream_name(provider, None),
            })
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::time::Duration;

    use chrono::Utc;
    use keygate_core::routing::{RoutingMode, RoutingTarget};

    use super::*;

    fn provider(name: &str, models: &[&str]) -> Provider {
        Provider {
            name: name.into(),
            base_url: format!("http://{name}"),
            api_key: None,
            models: models.iter().map(|m| m.to_string()).collect(),
            model_map: BTreeMap::from([("gpt".to_string(), format!("{name}-gpt"))]),
            timeout: Duration::from_secs(1),
        }
    }

    fn ai() -> AiConfig {
        AiConfig {
            providers: vec![
                provider("a", &["other"]),
                provider("b", &["gpt"]),
                provider("c", &["gpt"]),
            ],
            prices: HashMap::new(),
            default_max_tokens: 10,
            reservation_ttl: Duration::from_secs(1),
            max_request_bytes: 1,
            permissions: vec![],
            project: None,
            workspaces: crate::gateway::config::Workspaces::Any,
        }
    }

    #[test]
    fn without_a_rule_the_first_provider_serving_the_model_wins() {
        let ai = ai();
        let c = candidates(&ai, None, "gpt", 0.5);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].provider.name, "b");
        assert_eq!(c[0].model, "b-gpt");
        assert!(candidates(&ai, None, "unknown", 0.5).is_empty());
    }

    #[test]
    fn a_rule_orders_and_renames() {
        let ai = ai();
        let rule = RoutingRule {
            id: "rr_1".into(),
            workspace_id: "ws".into(),
            name: "r".into(),
            description: None,
            mode: RoutingMode::Fallback,
            targets: vec![
                RoutingTarget {
                    provider: "c".into(),
                    weight: 1,
                    models: BTreeMap::from([("gpt".to_string(), "special".to_string())]),
                },
                RoutingTarget {
                    provider: "gone".into(),
                    weight: 1,
                    models: BTreeMap::new(),
                },
                RoutingTarget {
                    provider: "a".into(),
                    weight: 1,
                    models: BTreeMap::new(),
                },
            ],
            is_default: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        };
        let c = candidates(&ai, Some(&rule), "gpt", 0.5);
        let names: Vec<_> = c
            .iter()
            .map(|c| (c.provider.name.as_str(), c.model.as_str()))
            .collect();
        assert_eq!(names, [("c", "special"), ("a", "a-gpt")]);
    }
}

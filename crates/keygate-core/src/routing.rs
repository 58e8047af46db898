//! Routing rules of the AI gateway: which upstream providers serve a key's requests, in which
//! order (a fallback chain) or in which proportions (a weighted split), and what each provider
//! calls a requested model.
//!
//! A rule names providers by the names the operator gave them in the gateway's config file; it
//! never holds a URL or a provider credential, so a workspace member who manages rules cannot
//! send traffic anywhere the operator did not configure. Picking a target is pure arithmetic
//! over a caller-supplied random number, so the split is testable without a runtime.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a rule spreads requests over its targets.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingMode {
    /// Try the targets in order; the next one only when the previous failed before answering.
    Fallback,
    /// Pick one target per request with probability proportional to its weight; if it fails
    /// before answering, the others follow in their listed order.
    Split,
}

/// One provider a rule may send a request to.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingTarget {
    /// A provider name from the gateway config.
    #[cfg_attr(feature = "schema", schema(schema_with = crate::schema::provider_schema))]
    pub provider: String,
    /// Share of traffic in `split` mode (any positive integers: 70/30, 7/3). Ignored by
    /// `fallback`.
    #[serde(
        default = "default_weight",
        deserialize_with = "crate::whole::whole_u32"
    )]
    #[cfg_attr(feature = "schema", schema(schema_with = crate::schema::weight_schema))]
    pub weight: u32,
    /// Requested model → this provider's name for it. Unlisted models are sent as requested.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "schema", schema(schema_with = crate::schema::model_map_schema))]
    pub models: BTreeMap<String, String>,
}

fn default_weight() -> u32 {
    1
}

/// A workspace's routing rule. At most one per workspace is its default (`default: true`),
/// used for keys that have no rule of their own.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRule {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: Option<String>,
    pub mode: RoutingMode,
    pub targets: Vec<RoutingTarget>,
    #[serde(rename = "default")]
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency counter; each saved change increments it.
    pub version: i64,
}

/// Why a set of targets is not a usable rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("a rule needs 1 to 16 targets")]
    TargetCount,
    #[error("target {0}: a provider name is 1 to 64 characters")]
    EmptyProvider(usize),
    #[error("target {0}: provider {1:?} is listed twice")]
    DuplicateProvider(usize, String),
    #[error("target {0}: a weight is at least 1")]
    ZeroWeight(usize),
    #[error("target {0}: model names must be 1 to 200 characters")]
    BadModel(usize),
    #[error("target {0}: models maps at most 100 model names")]
    TooManyModels(usize),
}

/// Longest provider name a rule may hold (config names are short; a rule is stored forever).
pub const MAX_PROVIDER_CHARS: usize = 64;
/// Most model mappings one target may hold.
pub const MAX_MODELS_PER_TARGET: usize = 100;

/// Checks the targets a member sent for a rule. Weights are at least 1 in every mode
/// (`fallback` ignores them): a rule that may later switch to `split` is valid as it stands,
/// and the document can say so on the field alone, whatever mode a PATCH leaves the rule in.
pub fn validate_targets(targets: &[RoutingTarget]) -> Result<(), RoutingError> {
    if targets.is_empty() || targets.len() > 16 {
        return Err(RoutingError::TargetCount);
    }
    for (i, target) in targets.iter().enumerate() {
        if target.provider.trim().is_empty() || target.provider.chars().count() > MAX_PROVIDER_CHARS
        {
            return Err(RoutingError::EmptyProvider(i));
        }
        if targets[..i].iter().any(|t| t.provider == target.provider) {
            return Err(RoutingError::DuplicateProvider(i, target.provider.clone()));
        }
        if target.weight == 0 {
            return Err(RoutingError::ZeroWeight(i));
        }
        if target.models.len() > MAX_MODELS_PER_TARGET {
            return Err(RoutingError::TooManyModels(i));
        }
        let bad = |m: &String| m.is_empty() || m.chars().count() > 200;
        if target.models.iter().any(|(from, to)| bad(from) || bad(to)) {
            return Err(RoutingError::BadModel(i));
        }
    }
    Ok(())
}

/// The order in which to try the targets of a rule for one request: for `fallback` the listed
/// order; for `split` the target that `roll` (uniform in `[0, 1)`) falls on by weight, then the
/// others in listed order as fallbacks.
pub fn attempt_order(mode: RoutingMode, targets: &[RoutingTarget], roll: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..targets.len()).collect();
    if mode == RoutingMode::Split && !targets.is_empty() {
        let total: u64 = targets.iter().map(|t| u64::from(t.weight)).sum();
        if total > 0 {
            let point = (roll.clamp(0.0, 1.0) * total as f64) as u64;
            let mut acc = 0_u64;
            let mut chosen = targets.len() - 1;
            for (i, t) in targets.iter().enumerate() {
                acc += u64::from(t.weight);
                if point < acc {
                    chosen = i;
                    break;
                }
            }
            order.retain(|&i| i != chosen);
            order.insert(0, chosen);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(provider: &str, weight: u32) -> RoutingTarget {
        RoutingTarget {
            provider: provider.into(),
            weight,
            models: BTreeMap::new(),
        }
    }

    #[test]
    fn fallback_keeps_the_listed_order() {
        let t = [target("a", 1), target("b", 1), target("c", 1)];
        assert_eq!(attempt_order(RoutingMode::Fallback, &t, 0.99), [0, 1, 2]);
    }

    #[test]
    fn split_picks_by_weight_then_falls_back_in_order() {
        let t = [target("a", 70), target("b", 30)];
        assert_eq!(attempt_order(RoutingMode::Split, &t, 0.0), [0, 1]);
        assert_eq!(attempt_order(RoutingMode::Split, &t, 0.6999), [0, 1]);
        assert_eq!(attempt_order(RoutingMode::Split, &t, 0.70), [1, 0]);
        assert_eq!(attempt_order(RoutingMode::Split, &t, 0.9999), [1, 0]);
        assert_eq!(attempt_order(RoutingMode::Split, &t, 1.0), [1, 0]);
    }

    #[test]
    fn targets_are_validated() {
        assert_eq!(validate_targets(&[]), Err(RoutingError::TargetCount));
        assert!(matches!(
            validate_targets(&[target("a", 0)]),
            Err(RoutingError::ZeroWeight(0))
        ));
        assert_eq!(
            validate_targets(&[target("a", 0)]),
            Err(RoutingError::ZeroWeight(0)),
            "in fallback mode too"
        );
        assert!(matches!(
            validate_targets(&[target("a", 1), target("a", 1)]),
            Err(RoutingError::DuplicateProvider(1, _))
        ));
    }

    #[test]
    fn security_stored_rule_strings_are_bounded() {
        let long = "p".repeat(MAX_PROVIDER_CHARS + 1);
        assert_eq!(
            validate_targets(&[target(&long, 1)]),
            Err(RoutingError::EmptyProvider(0))
        );
        let mut many = target("a", 1);
        many.models = (0..=MAX_MODELS_PER_TARGET)
            .map(|i| (format!("m{i}"), "x".to_string()))
            .collect();
        assert_eq!(
            validate_targets(&[many]),
            Err(RoutingError::TooManyModels(0))
        );
    }
}

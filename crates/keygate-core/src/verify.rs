//! The verification decision, in the one order `docs/design.md` §3 fixes:
//! missing/malformed → unknown/revoked/disabled/expired → forbidden → rate → token/cost →
//! spend cap → credits. This module holds the steps that need no counters; the limit steps
//! (everything from "rate" on) are asked of the limiter by the server's pipeline, in order,
//! after [`check_key`] passes.

use chrono::{DateTime, Utc};

use crate::key::ParsedKey;
use crate::model::{KeyMatch, KeyStatus};
use crate::verdict::Denial;

/// What the request needs from the key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Requirement<'a> {
    pub project: Option<&'a str>,
    pub permissions: &'a [String],
}

/// Step 1: is there a key, and is it one of ours (or possibly a legacy one)? No I/O.
pub fn classify(presented: Option<&str>) -> Result<ParsedKey<'_>, Denial> {
    match presented {
        None => Err(Denial::MissingApiKey),
        Some(key) if key.trim().is_empty() => Err(Denial::MissingApiKey),
        Some(key) => ParsedKey::parse(key).map_err(|_| Denial::MalformedApiKey),
    }
}

/// Steps 2 and 3, given what the store found: status, expiry, then project and permissions.
pub fn check_key(
    found: Option<&KeyMatch>,
    requirement: &Requirement<'_>,
    now: DateTime<Utc>,
) -> Result<(), Denial> {
    let Some(found) = found else {
        return Err(Denial::InvalidApiKey);
    };
    let key = &found.key;
    match key.status {
        KeyStatus::Revoked => return Err(Denial::Revoked),
        KeyStatus::Disabled => return Err(Denial::Disabled),
        KeyStatus::Active => {}
    }
    if key.is_expired(now) || found.secret_expires_at.is_some_and(|at| at <= now) {
        return Err(Denial::Expired);
    }
    if let Some(project) = requirement.project {
        if !key.scope.allows(project) {
            return Err(Denial::Forbidden);
        }
    }
    if !requirement
        .permissions
        .iter()
        .all(|needed| grants(&key.permissions, needed))
    {
        return Err(Denial::Forbidden);
    }
    Ok(())
}

/// Whether held permissions grant `needed`. `*` grants everything and `results:*` grants every
/// `results:…` permission, so a platform can hand out broad keys without listing each action.
pub fn grants(held: &[String], needed: &str) -> bool {
    held.iter().any(|p| {
        p == needed
            || p == "*"
            || p.strip_suffix('*')
                .is_some_and(|stem| stem.ends_with(':') && needed.starts_with(stem))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::EnvTag;
    use crate::limits::KeyLimits;
    use crate::model::{ApiKey, Scope};
    use chrono::Duration;

    fn key() -> ApiKey {
        let now = Utc::now();
        ApiKey {
            id: "key_1".into(),
            workspace_id: "ws_1".into(),
            name: "k".into(),
            description: None,
            environment: EnvTag::live(),
            scope: Scope::Projects(vec!["proj_a".into()]),
            permissions: vec!["results:read".into(), "scenarios:*".into()],
            expires_at: None,
            status: KeyStatus::Active,
            metadata: Default::default(),
            limits: KeyLimits::default(),
            routing_rule_id: None,
            identity_id: None,
            display: "kg_live_abcd…wxyz".into(),
            legacy: false,
            created_by: "mem_1".into(),
            created_at: now,
            updated_at: now,
            last_used_at: None,
            version: 1,
        }
    }

    fn found(key: ApiKey) -> KeyMatch {
        KeyMatch {
            key,
            secret_expires_at: None,
        }
    }

    #[test]
    fn checks_run_in_the_documented_order() {
        let now = Utc::now();
        let none = Requirement::default();
        assert_eq!(classify(None), Err(Denial::MissingApiKey));
        assert_eq!(classify(Some("nope")), Err(Denial::MalformedApiKey));
        assert_eq!(check_key(None, &none, now), Err(Denial::InvalidApiKey));

        let mut k = key();
        k.status = KeyStatus::Revoked;
        k.expires_at = Some(now - Duration::days(1));
        assert_eq!(
            check_key(Some(&found(k.clone())), &none, now),
            Err(Denial::Revoked)
        );
        k.status = KeyStatus::Disabled;
        assert_eq!(
            check_key(Some(&found(k.clone())), &none, now),
            Err(Denial::Disabled)
        );
        k.status = KeyStatus::Active;
        let wrong_project = Requirement {
            project: Some("proj_b"),
            permissions: &[],
        };
        assert_eq!(
            check_key(Some(&found(k.clone())), &wrong_project, now),
            Err(Denial::Expired)
        );
        k.expires_at = None;
        assert_eq!(
            check_key(Some(&found(k.clone())), &wrong_project, now),
            Err(Denial::Forbidden)
        );
        assert_eq!(check_key(Some(&found(k)), &none, now), Ok(()));
    }

    #[test]
    fn rotated_out_secret_is_expired() {
        let now = Utc::now();
        let mut m = found(key());
        m.secret_expires_at = Some(now + Duration::seconds(1));
        assert_eq!(check_key(Some(&m), &Requirement::default(), now), Ok(()));
        m.secret_expires_at = Some(now);
        assert_eq!(
            check_key(Some(&m), &Requirement::default(), now),
            Err(Denial::Expired)
        );
    }

    #[test]
    fn permissions_and_wildcards() {
        let held = vec!["results:read".to_string(), "scenarios:*".to_string()];
        assert!(grants(&held, "results:read"));
        assert!(!grants(&held, "results:write"));
        assert!(grants(&held, "scenarios:delete"));
        assert!(!grants(&held, "scenariosx"));
        assert!(grants(&["*".to_string()], "anything"));
        let k = key();
        let perms = vec!["results:write".to_string()];
        let need = Requirement {
            project: Some("proj_a"),
            permissions: &perms,
        };
        assert_eq!(
            check_key(Some(&found(k)), &need, Utc::now()),
            Err(Denial::Forbidden)
        );
    }
}

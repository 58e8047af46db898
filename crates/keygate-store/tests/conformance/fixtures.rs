//! Entities for tests, with times on whole milliseconds (what the store keeps).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use keygate_core::ids::new_id;
use keygate_core::limits::{KeyLimits, RateWindow, ResetPeriod, TokenLimit, WindowLength};
use keygate_core::model::{ApiKey, KeyStatus, Member, Role, Scope, Workspace};
use keygate_core::{EnvTag, KeyHash, KeyPrefix, Micros};
use keygate_store::{AuditEntry, AuditFilter, NewMember, Page, PageRequest, Store};

pub const WS: &str = "ws_main";
pub const OTHER_WS: &str = "ws_other";

/// A fixed instant plus `secs` seconds.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).expect("time") + Duration::seconds(secs)
}

pub fn hash(n: u8) -> KeyHash {
    let mut bytes = [n; 32];
    bytes[0] = 0xA5;
    KeyHash(bytes)
}

pub fn workspace(id: &str) -> Workspace {
    Workspace {
        id: id.into(),
        name: format!("Workspace {id}"),
        key_prefix: KeyPrefix::parse("kg").expect("prefix"),
        single_active_key: false,
        default_rate_limits: vec![RateWindow {
            limit: 60,
            window: WindowLength(60),
        }],
        rate_limit_policies: BTreeMap::new(),
        credit_balance: None,
        // Set, so every round trip through a store proves the column is kept.
        credits_low_threshold: Some(keygate_core::Micros(5_000_000)),
        // Not the default, so every round trip through a store proves the column is kept.
        leak_policy: keygate_core::model::LeakPolicy::Disable,
        created_at: at(0),
    }
}

pub fn member(workspace_id: &str, id: &str, role: Role, token: u8) -> NewMember {
    NewMember {
        member: Member {
            id: id.into(),
            workspace_id: workspace_id.into(),
            name: format!("Member {id}"),
            role,
            token_display: format!("kgm_…{token:02x}"),
            created_at: at(i64::from(token)),
        },
        token_hash: hash(token),
    }
}

pub fn audit(workspace_id: &str, action: &str, target_id: &str, at_secs: i64) -> AuditEntry {
    AuditEntry {
        id: new_id("aud"),
        workspace_id: workspace_id.into(),
        actor: "mem_owner".into(),
        action: action.into(),
        target_type: action.split('.').next().unwrap_or("key").into(),
        target_id: target_id.into(),
        changes: serde_json::json!({ "name": { "before": null, "after": target_id } }),
        source_ip: Some("203.0.113.7".into()),
        user_agent: Some("keygate-tests".into()),
        request_id: new_id("req"),
        at: at(at_secs),
    }
}

pub fn key(workspace_id: &str, name: &str, created_secs: i64) -> ApiKey {
    ApiKey {
        id: new_id("key"),
        workspace_id: workspace_id.into(),
        name: name.into(),
        description: None,
        environment: EnvTag::live(),
        scope: Scope::All,
        permissions: vec!["scenarios:read".into()],
        expires_at: None,
        status: KeyStatus::Active,
        metadata: serde_json::Map::new(),
        limits: KeyLimits::default(),
        routing_rule_id: None,
        identity_id: None,
        display: "kg_live_ab12…mn34".into(),
        legacy: false,
        created_by: "mem_owner".into(),
        created_at: at(created_secs),
        updated_at: at(created_secs),
        last_used_at: None,
        version: 1,
    }
}

/// A key with every optional field filled.
pub fn full_key(workspace_id: &str, name: &str, created_secs: i64) -> ApiKey {
    let mut key = key(workspace_id, name, created_secs);
    key.description = Some("CI key — \"quoted\" and ünïcode".into());
    key.environment = EnvTag::parse("test").expect("env");
    key.scope = Scope::Projects(vec!["prj_a".into(), "prj_b".into()]);
    key.permissions = vec!["scenarios:read".into(), "results:write".into()];
    key.expires_at = Some(at(90 * 86_400));
    key.metadata = serde_json::json!({ "team": "billing", "n": 3 })
        .as_object()
        .cloned()
        .expect("object");
    key.limits = KeyLimits {
        rate_limits: vec![
            RateWindow {
                limit: 60,
                window: WindowLength(60),
            },
            RateWindow {
                limit: 1000,
                window: WindowLength(3600),
            },
        ],
        token_limit: Some(TokenLimit {
            limit: 1_000_000,
            reset: ResetPeriod::Monthly,
        }),
        cost_limit: None,
        daily_spend_cap: Some(Micros(2_500_000)),
    };
    key.routing_rule_id = Some("rr_1".into());
    key
}

/// Creates the main workspace (owner `mem_owner`, token hash 1) and an empty other one
/// (owner `mem_other`, token hash 2).
pub async fn bootstrap(store: &dyn Store) {
    for (ws, owner, token) in [(WS, "mem_owner", 1), (OTHER_WS, "mem_other", 2)] {
        store
            .create_workspace(
                &workspace(ws),
                &member(ws, owner, Role::Owner, token),
                &audit(ws, "workspace.create", ws, 0),
            )
            .await
            .expect("create workspace");
    }
}

/// The first page of a workspace's audit trail (newest first), of one target when given.
pub async fn audit_trail(
    store: &dyn Store,
    workspace_id: &str,
    target_id: Option<&str>,
) -> Page<AuditEntry> {
    let filter = AuditFilter {
        target_id: target_id.map(str::to_owned),
        ..AuditFilter::default()
    };
    store
        .list_audit(workspace_id, &filter, &PageRequest::default())
        .await
        .expect("audit")
}

/// Creates a key with secret `hash(secret)`, no single-active policy.
pub async fn create(store: &dyn Store, key: &ApiKey, secret: u8) {
    store
        .create_key(
            key,
            &hash(secret),
            false,
            &audit(&key.workspace_id, "key.create", &key.id, 1),
        )
        .await
        .expect("create key");
}

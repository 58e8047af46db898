//! The first workspace and its owner. `keygate bootstrap` and `serve` on an empty store both
//! come here; the owner's token is returned once and never stored in plain text.

use std::collections::BTreeMap;

use keygate_core::ids;
use keygate_core::model::{Member, Role, Workspace};
use keygate_core::{Clock, KeyPrefix, PlainKey, ServerSecret};
use keygate_store::{AuditEntry, NewMember, Store};
use serde_json::json;

use crate::auth::generate_token;

/// The new workspace, its owner and the owner's management token.
pub struct Bootstrapped {
    pub workspace: Workspace,
    pub owner: Member,
    pub token: PlainKey,
}

/// Creates a workspace with the default key prefix `kg` and an owner.
pub async fn create_workspace(
    store: &dyn Store,
    secret: &ServerSecret,
    clock: &dyn Clock,
    name: &str,
    prefix: KeyPrefix,
) -> Result<Bootstrapped, keygate_store::StoreError> {
    let now = clock.now();
    let workspace = Workspace {
        id: ids::new_id("ws"),
        name: name.to_owned(),
        key_prefix: prefix,
        single_active_key: false,
        default_rate_limits: Vec::new(),
        rate_limit_policies: BTreeMap::new(),
        credit_balance: None,
        credits_low_threshold: None,
        leak_policy: Default::default(),
        created_at: now,
    };
    let token = generate_token();
    let owner = Member {
        id: ids::new_id("mem"),
        workspace_id: workspace.id.clone(),
        name: "owner".into(),
        role: Role::Owner,
        token_display: token.display(),
        created_at: now,
    };
    let audit = AuditEntry {
        id: ids::new_id("aud"),
        workspace_id: workspace.id.clone(),
        actor: "system".into(),
        action: "workspace.create".into(),
        target_type: "workspace".into(),
        target_id: workspace.id.clone(),
        changes: json!({"name": {"before": null, "after": name}, "owner": {"before": null, "after": owner.id}}),
        source_ip: None,
        user_agent: None,
        request_id: String::new(),
        at: now,
    };
    let new_owner = NewMember {
        member: owner.clone(),
        token_hash: secret.hash_key(&token),
    };
    store
        .create_workspace(&workspace, &new_owner, &audit)
        .await?;
    Ok(Bootstrapped {
        workspace,
        owner,
        token,
    })
}

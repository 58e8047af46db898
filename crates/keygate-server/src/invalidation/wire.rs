//! What travels on the invalidation channel: changes, their acknowledgements, and each
//! node's heartbeat, as short text messages (`c|node|seq|key:key_1`, `a|node|seq`,
//! `b|node|ms`).

use keygate_core::KeyHash;

/// What changed, as published on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Key(String),
    Member(String),
    Workspace(String),
    Identity(String),
    /// A workspace's "has legacy keys" flag.
    LegacyKeys(String),
    /// A cached "no such key" for this secret hash is wrong now (import).
    Hash(KeyHash),
    /// A routing rule, and with it the workspace's default rule, as the gateway caches them.
    RoutingRule {
        workspace_id: String,
        rule_id: String,
    },
}

impl Change {
    fn encode(&self) -> String {
        match self {
            Change::Key(id) => format!("key:{id}"),
            Change::Member(id) => format!("member:{id}"),
            Change::Workspace(id) => format!("workspace:{id}"),
            Change::Identity(id) => format!("identity:{id}"),
            Change::LegacyKeys(id) => format!("legacy:{id}"),
            Change::Hash(hash) => format!("hash:{}", hash.to_hex()),
            Change::RoutingRule {
                workspace_id,
                rule_id,
            } => format!("rule:{workspace_id}/{rule_id}"),
        }
    }

    fn decode(text: &str) -> Option<Change> {
        let (kind, value) = text.split_once(':')?;
        let value = value.to_owned();
        Some(match kind {
            "key" => Change::Key(value),
            "member" => Change::Member(value),
            "workspace" => Change::Workspace(value),
            "identity" => Change::Identity(value),
            "legacy" => Change::LegacyKeys(value),
            "hash" => Change::Hash(KeyHash::from_slice(&hex::decode(value).ok()?)?),
            "rule" => {
                let (workspace_id, rule_id) = value.split_once('/')?;
                Change::RoutingRule {
                    workspace_id: workspace_id.to_owned(),
                    rule_id: rule_id.to_owned(),
                }
            }
            _ => return None,
        })
    }
}

/// One message on the channel. `node` is the id of the node that sent it (for an
/// acknowledgement: the node whose change is acknowledged, `by` the one acknowledging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A committed change, the `seq`-th published by `node`.
    Change {
        node: String,
        seq: u64,
        change: Change,
    },
    /// `by` has applied `node`'s change `seq` to its caches.
    Ack { node: String, seq: u64, by: String },
    /// `node` is alive and listening; `at_ms` is when it sent this, on its own clock.
    Beat { node: String, at_ms: u64 },
}

impl Message {
    pub fn encode(&self) -> String {
        match self {
            Message::Change { node, seq, change } => {
                format!("c|{node}|{seq}|{}", change.encode())
            }
            Message::Ack { node, seq, by } => format!("a|{node}|{seq}|{by}"),
            Message::Beat { node, at_ms } => format!("b|{node}|{at_ms}"),
        }
    }

    pub fn decode(text: &str) -> Option<Message> {
        let mut parts = text.splitn(4, '|');
        let kind = parts.next()?;
        let node = parts.next()?.to_owned();
        let number: u64 = parts.next()?.parse().ok()?;
        let rest = parts.next();
        Some(match (kind, rest) {
            ("c", Some(change)) => Message::Change {
                node,
                seq: number,
                change: Change::decode(change)?,
            },
            ("a", Some(by)) => Message::Ack {
                node,
                seq: number,
                by: by.to_owned(),
            },
            ("b", None) => Message::Beat {
                node,
                at_ms: number,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let changes = [
            Change::Key("key_1".into()),
            Change::Member("mem_1".into()),
            Change::Workspace("ws_1".into()),
            Change::Identity("idt_1".into()),
            Change::LegacyKeys("ws_1".into()),
            Change::Hash(KeyHash([7; 32])),
            Change::RoutingRule {
                workspace_id: "ws_1".into(),
                rule_id: "rr_1".into(),
            },
        ];
        for change in changes {
            let message = Message::Change {
                node: "n1".into(),
                seq: 7,
                change,
            };
            assert_eq!(Message::decode(&message.encode()), Some(message));
        }
        for message in [
            Message::Ack {
                node: "n1".into(),
                seq: 7,
                by: "n2".into(),
            },
            Message::Beat {
                node: "n2".into(),
                at_ms: 12_345,
            },
        ] {
            assert_eq!(Message::decode(&message.encode()), Some(message));
        }
        for junk in [
            "nonsense",
            "c|n|x|key:k",
            "c|n|1|what:k",
            "b|n|1|extra",
            "z|n|1",
        ] {
            assert_eq!(Message::decode(junk), None, "{junk}");
        }
    }
}

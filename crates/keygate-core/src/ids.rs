//! Public identifiers: a type prefix and 20 base62 characters (`key_…`, `ws_…`, `req_…`), so an
//! id pasted into a support ticket says what it names.

use rand::Rng;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new random id with the given type prefix (without the underscore).
pub fn new_id(kind: &str) -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(kind.len() + 21);
    id.push_str(kind);
    id.push('_');
    for _ in 0..20 {
        id.push(BASE62[rng.gen_range(0..62)] as char);
    }
    id
}

/// Whether a string could be an id of the given kind; used to answer 404 early and cheaply.
pub fn looks_like(kind: &str, id: &str) -> bool {
    id.strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|rest| {
            !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_kind() {
        let id = new_id("key");
        assert!(looks_like("key", &id));
        assert!(!looks_like("ws", &id));
        assert_ne!(new_id("key"), id);
    }
}

//! Public identifiers: a type prefix and 20 base62 characters (`key_…`, `ws_…`, `req_…`), so an
//! id pasted into a support ticket says what it names.

use crate::base62;

/// A new random id with the given type prefix (without the underscore).
pub fn new_id(kind: &str) -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(kind.len() + 21);
    id.push_str(kind);
    id.push('_');
    base62::push_random(&mut id, &mut rng, 20);
    id
}

/// Base62 digits of the time in a request id: 62^8 milliseconds reach past the year 8000.
const TIME_DIGITS: usize = 8;

/// A new request id, `req_` + 20 base62 characters like every id, but time-ordered: the first
/// 8 are the current Unix time in milliseconds (fixed width, so ids sort by time as text), the
/// other 12 random. Request-log writes then append instead of landing all over an index, and
/// the log can be searched by time from the id alone (see [`request_id_millis`]).
pub fn new_request_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    request_id_at(millis)
}

/// A request id for the given Unix time in milliseconds; see [`new_request_id`].
pub fn request_id_at(millis: u64) -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(24);
    id.push_str("req_");
    base62::push_fixed(&mut id, millis, TIME_DIGITS);
    base62::push_random(&mut id, &mut rng, 20 - TIME_DIGITS);
    id
}

/// The smallest request id of the given Unix time in milliseconds: every id made at or after
/// that time sorts at or after it.
pub fn request_id_floor(millis: u64) -> String {
    let mut id = String::with_capacity(4 + TIME_DIGITS);
    id.push_str("req_");
    base62::push_fixed(&mut id, millis, TIME_DIGITS);
    id
}

/// The Unix time in milliseconds a request id from [`new_request_id`] was made at; `None` for
/// ids of another shape. (A random id of the old format decodes to some arbitrary time.)
pub fn request_id_millis(id: &str) -> Option<u64> {
    let rest = id.strip_prefix("req_")?;
    if rest.len() != 20 {
        return None;
    }
    base62::decode(&rest.as_bytes()[..TIME_DIGITS])
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

    #[test]
    fn request_ids_sort_by_time_and_carry_it() {
        let early = request_id_at(1_800_000_000_000);
        let later = request_id_at(1_800_000_000_001);
        assert!(looks_like("req", &early));
        assert_eq!(early.len(), 24);
        assert!(early < later);
        assert!(request_id_floor(1_800_000_000_000) <= early);
        assert!(request_id_floor(1_800_000_000_001) > early);
        assert_eq!(request_id_millis(&early), Some(1_800_000_000_000));
        assert_eq!(request_id_millis(&new_id("key")), None);
        assert_eq!(request_id_millis("req_old"), None);
        let now = request_id_millis(&new_request_id()).expect("time");
        assert!(now > 1_700_000_000_000);
    }
}

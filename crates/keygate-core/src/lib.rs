//! Keygate's domain: everything about keys that can be decided without I/O.
//!
//! The key format and its checksum, hashing with the server secret, expiry, money, the
//! entities, limit arithmetic and the verification verdict live here so that they can be
//! tested exhaustively and benchmarked without a database, a network or a runtime. Other
//! crates bring the I/O (store, limiter, HTTP) and call into this one.

pub mod access;
pub mod clock;
pub mod expiry;
pub mod hash;
pub mod ids;
pub mod key;
pub mod limits;
pub mod model;
pub mod money;
pub mod routing;
pub mod text;
pub mod verdict;
pub mod verify;

pub use clock::{Clock, FixedClock, SystemClock};
pub use hash::{KeyHash, ServerSecret};
pub use key::{EnvTag, KeyPrefix, ParsedKey, PlainKey};
pub use money::Micros;
pub use verdict::Denial;

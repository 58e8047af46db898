//! Keygate's domain: everything about keys that can be decided without I/O.
//!
//! The key format and its checksum, hashing with the server secret, expiry, money, the
//! entities, limit arithmetic and the verification verdict live here so that they can be
//! tested exhaustively and benchmarked without a database, a network or a runtime. Other
//! crates bring the I/O (store, limiter, HTTP) and call into this one. The decisions, each
//! explained in `docs/design.md`:
//!
//! * **A key proves its own shape** ([`key`], §1): `<prefix>_<env>_` + 26 random base62
//!   characters + a CRC32 checksum, so a mistyped key is refused by arithmetic before any
//!   lookup. Never change the layout: issued keys live in customers' configs.
//! * **Secrets are types** ([`PlainKey`], [`KeyHash`], §2): a key's `Debug` shows only its
//!   display form; at rest it is an HMAC-SHA-256 under a server secret kept out of the
//!   database, compared in constant time.
//! * **A verdict is data** ([`Denial`], [`verify`], §3): one enum with one table to code, status
//!   and message, checked in one order; `Err` is never a refusal.
//! * **Access is a table** ([`access`], §4): roles map to access levels; whatever consumes or
//!   reports spend needs `Meter`, which a viewer lacks.
//! * **Money is integer micro-dollars** ([`Micros`], §5), read by one exact parser.
//! * **Parse, don't validate**: names, prefixes, environment tags, durations
//!   ([`expiry::split_duration`], §11) and amounts are checked once, where they enter.
//! * **Time is injected** ([`Clock`]): expiry and reset periods take `now`, so tests fix it.

pub mod access;
mod base62;
pub mod clock;
pub mod events;
pub mod expiry;
pub mod hash;
pub mod ids;
pub mod key;
pub mod limits;
pub mod model;
pub mod money;
pub mod routing;
#[cfg(feature = "schema")]
pub mod schema;
pub mod text;
pub mod verdict;
pub mod verify;
pub mod whole;

pub use clock::{Clock, FixedClock, SystemClock};
pub use hash::{KeyHash, ServerSecret};
pub use key::{EnvTag, KeyPrefix, ParsedKey, PlainKey};
pub use money::Micros;
pub use verdict::Denial;

//! The key format: `<workspace prefix>_<env>_<random><checksum>`, e.g. `kg_live_…`.
//!
//! The random part is 26 base62 characters from the OS CSPRNG (154 bits; the 22 characters
//! the display form hides still carry 131). The checksum is the CRC32 of everything before it,
//! as 6 base62 characters, so a mistyped or invented key is rejected by arithmetic, before
//! any store lookup, and secret scanners can recognise a real key with few false positives.
//!
//! Never change the layout of an issued key: keys live in our users' customers' configs.

use std::fmt;

use rand::rngs::OsRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters of randomness in a key body.
pub const RANDOM_LEN: usize = 26;
/// Characters of checksum at the end of a key body (62^6 > 2^32, so a CRC32 fits).
pub const CHECKSUM_LEN: usize = 6;
/// Length of the part after the second underscore.
pub const BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;
/// Longest string we will even look at as a key; anything longer is malformed.
pub const MAX_KEY_LEN: usize = 256;
/// Shortest legacy key we accept for import: shorter ones are guessable.
pub const MIN_LEGACY_LEN: usize = 16;

/// Why a string is not a usable key or name part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("a key prefix is 2 to 8 lowercase letters or digits, starting with a letter")]
    BadPrefix,
    #[error("an environment tag is 1 to 12 lowercase letters or digits, such as live, test, dev, stg, prod or ci")]
    BadEnv,
    #[error("the key does not have the form <prefix>_<env>_<32 characters>")]
    BadShape,
    #[error("the key's checksum does not match: it was mistyped or is not a real key")]
    BadChecksum,
}

fn is_lower_alnum(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A workspace's key prefix, such as `kg`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyPrefix(String);

impl KeyPrefix {
    pub fn parse(s: &str) -> Result<Self, KeyFormatError> {
        let ok = (2..=8).contains(&s.len())
            && is_lower_alnum(s)
            && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(KeyFormatError::BadPrefix)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyPrefix {
    type Error = KeyFormatError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<KeyPrefix> for String {
    fn from(p: KeyPrefix) -> String {
        p.0
    }
}
impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key's environment tag: `live`, `test`, `dev`, `stg`, `prod`, `ci` or a custom one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvTag(String);

impl EnvTag {
    pub fn parse(s: &str) -> Result<Self, KeyFormatError> {
        if (1..=12).contains(&s.len()) && is_lower_alnum(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(KeyFormatError::BadEnv)
        }
    }
    pub fn live() -> Self {
        Self("live".into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnvTag {
    type Error = KeyFormatError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<EnvTag> for String {
    fn from(e: EnvTag) -> String {
        e.0
    }
}
impl fmt::Display for EnvTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key in plain text. Its `Debug` shows only the display form, so a stray `{:?}` in a log
/// line cannot leak it; the secret is reachable only through [`PlainKey::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct PlainKey(String);

impl PlainKey {
    /// A fresh key for a workspace prefix and environment.
    pub fn generate(prefix: &KeyPrefix, env: &EnvTag) -> Self {
        let mut rng = OsRng;
        let mut key = String::with_capacity(prefix.0.len() + env.0.len() + 2 + BODY_LEN);
        key.push_str(&prefix.0);
        key.push('_');
        key.push_str(&env.0);
        key.push('_');
        for _ in 0..RANDOM_LEN {
            key.push(BASE62[rng.gen_range(0..62)] as char);
        }
        let crc = crc32fast::hash(key.as_bytes());
        push_checksum(&mut key, crc);
        Self(key)
    }

    /// Wraps a string the caller sent us, without judging it (see [`ParsedKey::parse`]).
    pub fn from_untrusted(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself. Every call site is a place a secret leaves our hands.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `kg_live_ab12…mn34` for our keys; the first and last four characters for others.
    pub fn display(&self) -> String {
        display_form(&self.0)
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainKey({})", self.display())
    }
}

fn push_checksum(key: &mut String, crc: u32) {
    let mut digits = [b'0'; CHECKSUM_LEN];
    let mut n = crc;
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    for d in digits {
        key.push(d as char);
    }
}

fn base62_value(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'A'..=b'Z' => Some(u32::from(b - b'A') + 10),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 36),
        _ => None,
    }
}

/// Display form of any string that may be a key; shows at most 8 characters of its body.
pub fn display_form(key: &str) -> String {
    let (head, body) = match split_shape(key) {
        Some((prefix, env, body)) => (format!("{prefix}_{env}_"), body),
        None => (String::new(), key),
    };
    let chars: Vec<char> = body.chars().collect();
    if chars.len() < 12 {
        return format!("{head}…");
    }
    let first: String = chars[..4].iter().collect();
    let last: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{first}…{last}")
}

fn split_shape(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.splitn(3, '_');
    let prefix = parts.next()?;
    let env = parts.next()?;
    let body = parts.next()?;
    Some((prefix, env, body))
}

/// What a presented key turned out to be, decided without any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedKey<'a> {
    /// One of ours, checksum correct.
    Native { prefix: &'a str, env: &'a str },
    /// Not our shape at all; can only be an imported legacy key.
    Foreign,
}

impl<'a> ParsedKey<'a> {
    /// Classifies a presented key. Our shape with a wrong checksum is an error: it was mistyped
    /// or invented, and no lookup is needed to say so.
    pub fn parse(key: &'a str) -> Result<Self, KeyFormatError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.is_ascii() {
            return Err(KeyFormatError::BadShape);
        }
        let Some((prefix, env, body)) = split_shape(key) else {
            return Self::foreign(key);
        };
        let looks_native = (2..=8).contains(&prefix.len())
            && is_lower_alnum(prefix)
            && (1..=12).contains(&env.len())
            && is_lower_alnum(env)
            && body.len() == BODY_LEN
            && body.bytes().all(|b| base62_value(b).is_some());
        if !looks_native {
            return Self::foreign(key);
        }
        let (signed, checksum) = key.split_at(key.len() - CHECKSUM_LEN);
        let mut expected: u64 = 0;
        for b in checksum.bytes() {
            expected = expected * 62 + u64::from(base62_value(b).unwrap_or(0));
        }
        if u64::from(crc32fast::hash(signed.as_bytes())) == expected {
            Ok(ParsedKey::Native { prefix, env })
        } else {
            Err(KeyFormatError::BadChecksum)
        }
    }

    fn foreign(key: &str) -> Result<Self, KeyFormatError> {
        let printable = key.bytes().all(|b| b.is_ascii_graphic());
        if key.len() >= MIN_LEGACY_LEN && printable {
            Ok(ParsedKey::Foreign)
        } else {
            Err(KeyFormatError::BadShape)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kg() -> KeyPrefix {
        KeyPrefix::parse("kg").expect("prefix")
    }

    #[test]
    fn generated_keys_parse_as_native() {
        for env in ["live", "test", "dev", "stg", "prod", "ci", "sandbox1"] {
            let key = PlainKey::generate(&kg(), &EnvTag::parse(env).expect("env"));
            assert!(key.expose().starts_with(&format!("kg_{env}_")));
            assert_eq!(
                ParsedKey::parse(key.expose()),
                Ok(ParsedKey::Native { prefix: "kg", env })
            );
        }
    }

    #[test]
    fn any_single_character_change_is_caught() {
        let key = PlainKey::generate(&kg(), &EnvTag::live());
        let original = key.expose().as_bytes().to_vec();
        let start = "kg_live_".len();
        for i in start..original.len() {
            let mut changed = original.clone();
            changed[i] = if changed[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(changed).expect("ascii");
            assert_eq!(
                ParsedKey::parse(&changed),
                Err(KeyFormatError::BadChecksum),
                "{i}"
            );
        }
    }

    #[test]
    fn debug_and_display_hide_the_secret() {
        let key = PlainKey::generate(&kg(), &EnvTag::live());
        let body = &key.expose()[8..];
        let debug = format!("{key:?}");
        assert!(!debug.contains(body));
        let display = key.display();
        assert!(display.starts_with("kg_live_"));
        assert_eq!(display.chars().count(), "kg_live_".len() + 9);
        assert!(display.contains('…'));
    }

    #[test]
    fn short_or_odd_strings_are_malformed() {
        for s in [
            "",
            "abc",
            "kg_live_short",
            "has space in it 123456",
            "ключ-ключ-ключ-ключ",
        ] {
            assert!(ParsedKey::parse(s).is_err(), "{s}");
        }
        assert_eq!(
            ParsedKey::parse("legacy-key-0123456789abcdef"),
            Ok(ParsedKey::Foreign)
        );
    }

    #[test]
    fn prefixes_and_envs_are_validated() {
        assert!(KeyPrefix::parse("kg").is_ok());
        assert!(KeyPrefix::parse("k").is_err());
        assert!(KeyPrefix::parse("1kg").is_err());
        assert!(KeyPrefix::parse("k_g").is_err());
        assert!(EnvTag::parse("Live").is_err());
        assert!(EnvTag::parse("").is_err());
    }

    proptest! {
        #[test]
        fn random_strings_of_our_shape_almost_never_pass(body in "[0-9A-Za-z]{32}") {
            let key = format!("kg_live_{body}");
            // A random body passes the CRC32 with probability 2^-32: proptest will not find one.
            prop_assert!(ParsedKey::parse(&key).is_err());
        }
    }
}

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
use serde::{Deserialize, Serialize};

use crate::base62;
use crate::text::text_type;

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

text_type!(
    /// A workspace's key prefix, such as `kg`.
    #[derive(Serialize, Deserialize)]
    #[serde(try_from = "String", into = "String")]
    KeyPrefix
);

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
}

impl TryFrom<String> for KeyPrefix {
    type Error = KeyFormatError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

text_type!(
    /// A key's environment tag: `live`, `test`, `dev`, `stg`, `prod`, `ci` or a custom one.
    #[derive(Serialize, Deserialize)]
    #[serde(try_from = "String", into = "String")]
    EnvTag
);

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
}

impl TryFrom<String> for EnvTag {
    type Error = KeyFormatError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
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
        base62::push_random(&mut key, &mut rng, RANDOM_LEN);
        let crc = crc32fast::hash(key.as_bytes());
        base62::push_fixed(&mut key, u64::from(crc), CHECKSUM_LEN);
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

    /// `kg_live_ab12…mn34` for our keys; for any other string at most its first and last
    /// four characters (see [`display_form`]).
    pub fn display(&self) -> String {
        display_form(&self.0)
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainKey({})", self.display())
    }
}

/// Most characters of secret material a display form shows at each end.
pub const DISPLAY_EDGE: usize = 4;

/// Display form of any string that may be a key: what lists, audit rows, the request log and
/// failed-attempt records show instead of it.
///
/// The rule, whatever the string's shape: of the secret part, at most [`DISPLAY_EDGE`]
/// leading and [`DISPLAY_EDGE`] trailing characters are shown, and fewer for a short secret —
/// one character per eight at each end — so at least three quarters of it stay hidden. Only
/// for a string of our exact shape (`<prefix>_<env>_` and a 32-character base62 body) is the
/// `<prefix>_<env>_` head shown in full: it is the same for every key of a workspace and
/// environment, and the import refuses foreign keys of that shape. Everything else — legacy
/// keys, mistyped and invented strings — is secret from its first character. Characters
/// that are not printable ASCII are shown as `?`, so a presented string cannot smuggle control
/// sequences into a terminal that lists failed attempts.
pub fn display_form(key: &str) -> String {
    let (head, secret) = match native_shape(key) {
        Some((prefix, env, body)) => (format!("{prefix}_{env}_"), body),
        None => (String::new(), key),
    };
    let edge = (secret.chars().count() / 8).min(DISPLAY_EDGE);
    let shown = |c: char| if c.is_ascii_graphic() { c } else { '?' };
    let first: String = secret.chars().take(edge).map(shown).collect();
    let mut last: Vec<char> = secret.chars().rev().take(edge).map(shown).collect();
    last.reverse();
    let last: String = last.into_iter().collect();
    format!("{head}{first}…{last}")
}

/// `(prefix, env, body)` when `key` has our layout (whatever its checksum says).
fn native_shape(key: &str) -> Option<(&str, &str, &str)> {
    let (prefix, env, body) = split_shape(key)?;
    let native = (2..=8).contains(&prefix.len())
        && is_lower_alnum(prefix)
        && (1..=12).contains(&env.len())
        && is_lower_alnum(env)
        && body.len() == BODY_LEN
        && body.bytes().all(|b| base62::digit(b).is_some());
    native.then_some((prefix, env, body))
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
        let Some((prefix, env, _)) = native_shape(key) else {
            return Self::foreign(key);
        };
        let (signed, checksum) = key.split_at(key.len() - CHECKSUM_LEN);
        if base62::decode(checksum.as_bytes())
            == Some(u64::from(crc32fast::hash(signed.as_bytes())))
        {
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
    fn the_checksum_of_issued_keys_never_changes() {
        // Computed outside this code (CRC32, 6 base62 digits, most significant first): keys
        // issued by any version must keep parsing.
        let issued = "kg_live_abcdefghijklmnopqrstuvwxyz1dLeFc";
        assert_eq!(
            ParsedKey::parse(issued),
            Ok(ParsedKey::Native {
                prefix: "kg",
                env: "live"
            })
        );
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

    /// The characters of `secret` a display form shows: everything but the `…`.
    fn revealed(display: &str) -> usize {
        display.chars().filter(|&c| c != '…').count()
    }

    /// No `n + 1` consecutive characters of `secret` appear in `display`.
    fn shows_no_run_longer_than(display: &str, secret: &str, n: usize) -> bool {
        let chars: Vec<char> = secret.chars().collect();
        chars
            .windows(n + 1)
            .all(|w| !display.contains(&w.iter().collect::<String>()))
    }

    #[test]
    fn security_legacy_display_forms_hide_the_key() {
        let legacy = "acme_S3cr3tP4ssw0rdXYZ0123456_v1";
        let display = display_form(legacy);
        assert_eq!(display, "acme…6_v1");
        assert!(shows_no_run_longer_than(&display, legacy, 4));
        // Our layout with lowercase parts but a body that is not 32 base62 characters: all
        // secret, not a head to show.
        for foreign in [
            "ab_cd_S3cr3tP4ssw0rdXYZ0123456789abcd",
            "kg_S3cr3tP4ssw0rd_XYZ0123456789abcdef",
            "sk-legacy-0123456789abcdef",
        ] {
            let display = display_form(foreign);
            assert!(revealed(&display) <= 8, "{display}");
            assert!(shows_no_run_longer_than(&display, foreign, 4), "{display}");
        }
        assert_eq!(display_form("short-legacy-key"), "sh…ey");
        assert_eq!(display_form("tiny"), "…");
        assert_eq!(display_form(""), "…");
        assert_eq!(
            display_form("kg_live_\u{1b}[31mredredredredred\n"),
            "kg_…ed?"
        );
    }

    #[test]
    fn security_a_huge_presented_string_has_a_short_display_form() {
        let huge = format!("x_{}_y", "S3cr3t".repeat(200_000));
        let display = display_form(&huge);
        assert_eq!(display, "x_S3…3t_y");
    }

    proptest! {
        #[test]
        fn security_display_reveals_at_most_eight_characters_of_any_string(
            secret in prop_oneof![
                any::<String>(),
                "[ -~]{0,80}",
                "[a-z0-9]{1,9}_[a-z0-9]{1,13}_[0-9A-Za-z_]{0,40}",
            ],
        ) {
            let display = display_form(&secret);
            match native_shape(&secret) {
                Some((prefix, env, body)) => {
                    let head = format!("{prefix}_{env}_");
                    prop_assert!(display.starts_with(&head));
                    let rest = &display[head.len()..];
                    prop_assert!(revealed(rest) <= 8, "{display}");
                    prop_assert!(shows_no_run_longer_than(rest, body, 4), "{display}");
                }
                None => {
                    prop_assert!(revealed(&display) <= 8, "{display}");
                    prop_assert!(revealed(&display) <= secret.chars().count() / 4, "{display}");
                    prop_assert!(shows_no_run_longer_than(&display, &secret, 4), "{display}");
                }
            }
        }

        #[test]
        fn security_native_keys_show_their_head_and_eight_body_characters(
            env in "[a-z0-9]{1,12}",
        ) {
            let key = PlainKey::generate(&kg(), &EnvTag::parse(&env).expect("env"));
            let display = key.display();
            let head = format!("kg_{env}_");
            prop_assert!(display.starts_with(&head));
            prop_assert_eq!(revealed(&display[head.len()..]), 8);
        }

        #[test]
        fn random_strings_of_our_shape_almost_never_pass(body in "[0-9A-Za-z]{32}") {
            let key = format!("kg_live_{body}");
            // A random body passes the CRC32 with probability 2^-32: proptest will not find one.
            prop_assert!(ParsedKey::parse(&key).is_err());
        }
    }
}

//! What is stored instead of a key: an HMAC-SHA-256 of it, keyed by the server secret.
//!
//! A stolen database alone does not let anyone check guesses offline, because the HMAC key
//! lives outside it (`KEYGATE_SECRET` or a 0600 file). Imported legacy keys are stored as the
//! HMAC of their SHA-256, so a platform can import keys it only ever kept as SHA-256 hashes.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::key::PlainKey;

/// The server's HMAC key. `Debug` prints nothing of it.
#[derive(Clone)]
pub struct ServerSecret([u8; 32]);

/// Why a configured server secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("KEYGATE_SECRET must be 64 hexadecimal characters (32 bytes); generate one with `openssl rand -hex 32`")]
pub struct BadServerSecret;

impl ServerSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_hex(text: &str) -> Result<Self, BadServerSecret> {
        let bytes = hex::decode(text.trim()).map_err(|_| BadServerSecret)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| BadServerSecret)?;
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    /// The stored hash of one of our keys (or of a management token).
    pub fn hash_key(&self, key: &PlainKey) -> KeyHash {
        let mut mac = self.mac();
        mac.update(key.expose().as_bytes());
        KeyHash(mac.finalize().into_bytes().into())
    }

    /// The stored hash of a legacy key given in plain text.
    pub fn hash_legacy(&self, key: &PlainKey) -> KeyHash {
        self.hash_legacy_sha256(&Sha256::digest(key.expose().as_bytes()).into())
    }

    /// The stored hash of a legacy key known only by its SHA-256.
    pub fn hash_legacy_sha256(&self, sha256: &[u8; 32]) -> KeyHash {
        let mut mac = self.mac();
        mac.update(b"legacy-sha256:");
        mac.update(sha256);
        KeyHash(mac.finalize().into_bytes().into())
    }

    /// A keyed digest for other purposes (idempotency fingerprints, encryption keys), kept
    /// apart from key hashes by a label.
    pub fn derive(&self, label: &str, data: &[u8]) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(label.as_bytes());
        mac.update(b":");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(…)")
    }
}

/// A stored key hash. Comparisons are constant-time; `Debug` shows only a short fingerprint.
#[derive(Clone, Copy, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(KeyHash)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for KeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// Parses a hex SHA-256 as given to legacy import.
pub fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    hex::decode(text.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_the_server_secret() {
        let key = PlainKey::from_untrusted("kg_live_whatever");
        let a = ServerSecret::generate();
        let b = ServerSecret::generate();
        assert_eq!(a.hash_key(&key), a.hash_key(&key));
        assert_ne!(a.hash_key(&key), b.hash_key(&key));
    }

    #[test]
    fn legacy_plain_and_sha256_agree() {
        let secret = ServerSecret::generate();
        let key = PlainKey::from_untrusted("sk-legacy-0123456789");
        let sha: [u8; 32] = Sha256::digest(key.expose().as_bytes()).into();
        assert_eq!(secret.hash_legacy(&key), secret.hash_legacy_sha256(&sha));
        assert_ne!(secret.hash_legacy(&key), secret.hash_key(&key));
    }

    #[test]
    fn secret_round_trips_hex_and_hides_in_debug() {
        let secret = ServerSecret::generate();
        let again = ServerSecret::from_hex(&secret.to_hex()).expect("hex");
        let key = PlainKey::from_untrusted("x");
        assert_eq!(secret.hash_key(&key), again.hash_key(&key));
        assert!(!format!("{secret:?}").contains(&secret.to_hex()[..8]));
        assert!(ServerSecret::from_hex("abcd").is_err());
    }
}

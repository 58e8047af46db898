//! Loads the server's HMAC secret: `KEYGATE_SECRET` when given, else a file created on first
//! start with mode 0600 beside the SQLite database. Losing the secret makes every stored key
//! hash useless, so an existing file is never overwritten.
//!
//! Also seals what must be stored but read back (remembered idempotent answers, webhook
//! signing secrets): ChaCha20-Poly1305 under a key derived from the server secret for one
//! purpose and one context, so a sealed value opens only where it was sealed.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use keygate_core::ServerSecret;
use rand::RngCore;

/// Reads the configured secret, or the secret file, creating it if absent.
pub fn load_or_create(hex: Option<&str>, file: &Path) -> anyhow::Result<ServerSecret> {
    if let Some(hex) = hex {
        return Ok(ServerSecret::from_hex(hex)?);
    }
    match std::fs::read_to_string(file) {
        Ok(text) => ServerSecret::from_hex(&text)
            .map_err(|e| anyhow::anyhow!("the secret file {} is damaged: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = ServerSecret::generate();
            write_new_private(file, &secret.to_hex())?;
            tracing::info!(path = %file.display(), "generated a new server secret (keep it: stored key hashes depend on it)");
            Ok(secret)
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the secret file {}: {e}",
            file.display()
        )),
    }
}

fn write_new_private(file: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(file)
        .map_err(|e| anyhow::anyhow!("cannot create the secret file {}: {e}", file.display()))?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

fn cipher(secret: &ServerSecret, purpose: &str, context: &[u8]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&secret.derive(purpose, context).into())
}

/// `plain` sealed for `purpose` and `context`: a random nonce, then the ciphertext.
pub fn seal(secret: &ServerSecret, purpose: &str, context: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher(secret, purpose, context)
        .encrypt(Nonce::from_slice(&nonce), plain)
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Some(out)
}

/// What [`seal`] sealed with the same purpose and context; `None` when it was not (or the
/// server secret changed since).
pub fn open(
    secret: &ServerSecret,
    purpose: &str,
    context: &[u8],
    sealed: &[u8],
) -> Option<Vec<u8>> {
    if sealed.len() < 12 {
        return None;
    }
    let (nonce, body) = sealed.split_at(12);
    cipher(secret, purpose, context)
        .decrypt(Nonce::from_slice(nonce), body)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_file_once_and_reuses_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("keygate.secret");
        let first = load_or_create(None, &file).expect("create");
        let again = load_or_create(None, &file).expect("read");
        assert_eq!(first.to_hex(), again.to_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(load_or_create(Some("nothex"), &file).is_err());
    }
}

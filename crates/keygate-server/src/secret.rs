//! Loads the server's HMAC secret: `KEYGATE_SECRET` when given, else a file created on first
//! start with mode 0600 beside the SQLite database. Losing the secret makes every stored key
//! hash useless, so an existing file is never overwritten.

use std::io::Write;
use std::path::Path;

use keygate_core::ServerSecret;

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

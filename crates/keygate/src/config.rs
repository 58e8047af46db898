//! Where the CLI's server URL and management token come from, and the config file that
//! `keygate login` writes.
//!
//! First found wins: the `--url`/`--api-key` flags, then `KEYGATE_URL`/`KEYGATE_API_KEY` in
//! the environment, then a `.env` file in the working directory, then the config file — with
//! one exception that keeps the token safe: a `.env` file's URL is used only with the `.env`
//! file's own token (a `.env` with a URL and no token is refused rather than handed the
//! configured token; see [`choose`]). A `.env` file is read literally (no `${VAR}` expansion),
//! never loaded into the process environment, so it cannot leak into a child process, shadow
//! a real variable or smuggle one into a URL.
//! The config file holds a secret: it is written 0600 in a 0700 directory, atomically.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
const URL_VAR: &str = "KEYGATE_URL";
const KEY_VAR: &str = "KEYGATE_API_KEY";

/// `~/.config/keygate/config.toml`. Unknown fields are an error: a typo must not silently
/// send requests somewhere else.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// Where a value came from, so `keygate whoami` can explain a surprising answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    DotEnv(PathBuf),
    ConfigFile(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("command-line flag"),
            Source::Env => f.write_str("environment"),
            Source::DotEnv(p) => write!(f, ".env file ({})", p.display()),
            Source::ConfigFile(p) => write!(f, "config file ({})", p.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// The resolved URL and token. `Debug` leaves the token out so it cannot end up in a log.
#[derive(Clone)]
pub struct Credentials {
    pub url: String,
    pub url_source: Source,
    pub api_key: Option<String>,
    pub api_key_source: Option<Source>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("url", &self.url)
            .field("url_source", &self.url_source)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_source", &self.api_key_source)
            .finish()
    }
}

/// The config file's path: `KEYGATE_CONFIG`, else `$XDG_CONFIG_HOME/keygate/config.toml`,
/// else `~/.config/keygate/config.toml`.
pub fn config_path() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(path) = non_empty("KEYGATE_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = match non_empty("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(non_empty("HOME")?).join(".config"),
    };
    Some(base.join("keygate").join("config.toml"))
}

/// The config file, or an empty one when it does not exist yet.
pub fn load(path: &Path) -> Result<ConfigFile, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            CliError::usage_hint(
                format!("cannot read the config file {}: {e}", path.display()),
                "Fix the file, or remove it and run `keygate login` again.",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(CliError::failed(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))),
    }
}

/// Writes the file 0600 (its directory 0700) through a temporary file and a rename, so a
/// crash leaves the old file or the new one, never half of one.
pub fn save(path: &Path, config: &ConfigFile) -> Result<(), CliError> {
    let fail = |what: &str, e: std::io::Error| {
        CliError::failed(format!("cannot {what} {}: {e}", path.display()))
    };
    let text = toml::to_string(config)
        .map_err(|e| CliError::failed(format!("cannot encode the config: {e}")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() && !dir.exists() {
        create_private_dir(dir).map_err(|e| fail("create the directory of", e))?;
    }
    let tmp = path.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = private_file(&tmp).map_err(|e| fail("write", e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("write", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| fail("write", e))?;
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// A new file only its owner can read.
#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// `KEYGATE_URL` and `KEYGATE_API_KEY` from `./.env`, if the file exists.
fn dotenv_values() -> Result<(Option<String>, Option<String>, PathBuf), CliError> {
    let path = PathBuf::from(".env");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, None, path)),
        Err(e) => {
            return Err(CliError::usage_hint(
                format!("cannot read ./.env: {e}"),
                "Fix the file, or pass --url/--api-key explicitly.",
            ))
        }
    };
    let (url, key) = parse_dotenv(&text);
    Ok((non_empty(url), non_empty(key), path))
}

/// The two values Keygate reads from a `.env` text, first definition wins. Values are taken
/// literally: no `${VAR}`/`$VAR` expansion, because a `.env` that came with a cloned repository
/// could otherwise copy any variable of the user's environment (a cloud secret, the server
/// secret) into the URL it names, and so into a request to its server. Surrounding quotes are
/// removed, `export ` and comments are skipped, other variables are ignored.
fn parse_dotenv(text: &str) -> (Option<String>, Option<String>) {
    let mut url = None;
    let mut key = None;
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = literal_value(value.trim());
        match name.trim() {
            URL_VAR if url.is_none() => url = Some(value),
            KEY_VAR if key.is_none() => key = Some(value),
            _ => {}
        }
    }
    (url, key)
}

/// `"v"` and `'v'` (anything after the closing quote is a comment) → `v`; an unquoted value
/// ends at ` #` (a trailing comment).
fn literal_value(value: &str) -> String {
    for quote in ['"', '\''] {
        if let Some((inner, _)) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.split_once(quote))
        {
            return inner.to_string();
        }
    }
    match value.split_once(" #") {
        Some((before, _)) => before.trim_end().to_string(),
        None => value.to_string(),
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Resolves the URL and token in the documented order of precedence.
pub fn resolve(flag_url: Option<&str>, flag_key: Option<&str>) -> Result<Credentials, CliError> {
    let env = |name: &str| non_empty(std::env::var(name).ok());
    let (dot_url, dot_key, dot_path) = dotenv_values()?;
    let path = config_path();
    let file = match &path {
        Some(p) => load(p)?,
        None => ConfigFile::default(),
    };
    choose(Layers {
        flag: (
            non_empty(flag_url.map(str::to_string)),
            non_empty(flag_key.map(str::to_string)),
        ),
        env: (env(URL_VAR), env(KEY_VAR)),
        dotenv: (dot_url, dot_key, dot_path),
        file: (
            non_empty(file.url.clone()),
            non_empty(file.api_key.clone()),
            path.unwrap_or_default(),
        ),
    })
}

/// What each source says: (URL, token), and for files their path.
struct Layers {
    flag: (Option<String>, Option<String>),
    env: (Option<String>, Option<String>),
    dotenv: (Option<String>, Option<String>, PathBuf),
    file: (Option<String>, Option<String>, PathBuf),
}

/// Picks the token first (flag > environment > `.env` > config file), then a URL the token
/// may be sent to. A `.env` file in the working directory can come with a cloned repository,
/// so its URL is trusted only for its own token: a `.env` that names a URL but no token must
/// not redirect the token of the environment or the config file to a server of its choosing.
/// Flags and the environment are the user's own and may point any token anywhere.
fn choose(layers: Layers) -> Result<Credentials, CliError> {
    let Layers {
        flag,
        env,
        dotenv,
        file,
    } = layers;
    let dot_source = Source::DotEnv(dotenv.2.clone());
    let file_source = Source::ConfigFile(file.2.clone());
    let (api_key, api_key_source) = [
        (flag.1, Source::Flag),
        (env.1, Source::Env),
        (dotenv.1, dot_source.clone()),
        (file.1, file_source.clone()),
    ]
    .into_iter()
    .find_map(|(v, s)| v.map(|v| (v, s)))
    .map_or((None, None), |(v, s)| (Some(v), Some(s)));

    let token_from_dotenv = matches!(api_key_source, Some(Source::DotEnv(_)));
    if let (Some(url), None, None, Some(source)) = (&dotenv.0, &flag.0, &env.0, &api_key_source) {
        if !token_from_dotenv {
            return Err(CliError::usage_hint(
                format!(
                    "./.env sets {URL_VAR}={url} but no {KEY_VAR}; the token would come from the {source}, and a token is only sent to the URL that comes with it"
                ),
                "Add KEYGATE_API_KEY to ./.env, pass --url, or remove KEYGATE_URL from ./.env.",
            ));
        }
    }
    let (url, url_source) = [
        (flag.0, Source::Flag),
        (env.0, Source::Env),
        (dotenv.0.filter(|_| token_from_dotenv), dot_source),
        (file.0, file_source),
    ]
    .into_iter()
    .find_map(|(v, s)| v.map(|v| (v, s)))
    .unwrap_or_else(|| (DEFAULT_URL.to_string(), Source::Default));

    Ok(Credentials {
        url: normalise_url(&url)?,
        url_source,
        api_key,
        api_key_source,
    })
}

/// `localhost:8080` → `http://localhost:8080`; trailing slashes dropped so paths join cleanly.
pub fn normalise_url(url: &str) -> Result<String, CliError> {
    let url = url.trim().trim_end_matches('/');
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    match reqwest::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(url),
        _ => Err(CliError::usage(format!(
            "{url:?} is not a server URL; expected something like {DEFAULT_URL}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised() {
        assert_eq!(
            normalise_url("localhost:8080/").ok().as_deref(),
            Some("http://localhost:8080")
        );
        assert_eq!(
            normalise_url("https://kg.example.com").ok().as_deref(),
            Some("https://kg.example.com")
        );
        assert!(normalise_url("ftp://x").is_err());
        assert!(normalise_url("").is_err());
    }

    fn layers(dotenv: (Option<&str>, Option<&str>), env_url: Option<&str>) -> Layers {
        let s = |v: Option<&str>| v.map(str::to_string);
        Layers {
            flag: (None, None),
            env: (s(env_url), None),
            dotenv: (s(dotenv.0), s(dotenv.1), PathBuf::from(".env")),
            file: (
                Some("https://kg.example.com".into()),
                Some("kgm_mgmt_configured".into()),
                PathBuf::from("config.toml"),
            ),
        }
    }

    #[test]
    fn security_a_dotenv_url_without_a_token_never_gets_the_configured_token() {
        let refused = choose(layers((Some("http://attacker.example"), None), None));
        assert!(
            refused.is_err(),
            "the configured token must not go to .env's URL"
        );
    }

    #[test]
    fn a_dotenv_with_url_and_token_is_used_as_a_pair() {
        let c = choose(layers(
            (Some("http://dev.example:8080"), Some("kgm_mgmt_dotenv")),
            None,
        ))
        .expect("a complete .env is fine");
        assert_eq!(c.url, "http://dev.example:8080");
        assert_eq!(c.api_key.as_deref(), Some("kgm_mgmt_dotenv"));
    }

    #[test]
    fn the_configured_pair_is_used_without_a_dotenv() {
        let c = choose(layers((None, None), None)).expect("config only");
        assert_eq!(c.url, "https://kg.example.com");
        assert_eq!(c.api_key.as_deref(), Some("kgm_mgmt_configured"));
        // An explicit URL in the user's own environment still wins over .env's.
        let c = choose(layers(
            (Some("http://attacker.example"), None),
            Some("http://mine.example"),
        ))
        .expect("the environment's URL is the user's");
        assert_eq!(c.url, "http://mine.example");
    }

    #[test]
    fn security_dotenv_values_are_literal_never_expanded() {
        std::env::set_var("KEYGATE_TEST_LEAK_PROBE", "s3cret-from-the-environment");
        let (url, key) = parse_dotenv(
            "# a cloned repository's .env\n\
             export KEYGATE_URL=\"https://evil.example/${KEYGATE_TEST_LEAK_PROBE}/$HOME\"\n\
             KEYGATE_API_KEY='kgm_x' # comment\n\
             KEYGATE_URL=http://second.example\n",
        );
        let url = url.expect("url");
        assert_eq!(url, "https://evil.example/${KEYGATE_TEST_LEAK_PROBE}/$HOME");
        assert!(!url.contains("s3cret"));
        assert_eq!(key.as_deref(), Some("kgm_x"));
        assert_eq!(
            parse_dotenv("KEYGATE_API_KEY=kgm_y # note\nOTHER=1\nnot a pair\n"),
            (None, Some("kgm_y".to_string()))
        );
    }

    #[test]
    fn credentials_debug_hides_the_token() {
        let c = Credentials {
            url: DEFAULT_URL.into(),
            url_source: Source::Default,
            api_key: Some("kgm_mgmt_secret".into()),
            api_key_source: Some(Source::Flag),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }
}

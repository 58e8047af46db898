//! `keygate scan [PATH…]`: finds Keygate keys in files, for pre-commit hooks and CI.
//!
//! A candidate is anything of the key's shape ([`KEY_PATTERN`]); it is reported only when
//! its checksum is right (`ParsedKey::parse`), so random strings of the same shape are not.
//! Only the display form is printed: the scanner must not become the leak. Exit codes: 0
//! nothing found, 1 a key found, 2 a path could not be read.

use std::path::Path;
use std::process::ExitCode;

use keygate_core::key::{display_form, ParsedKey};
use regex::Regex;
use serde_json::json;

use crate::cli::ScanArgs;

/// The key's shape, for this scanner and third-party ones (GitHub custom patterns, gitleaks,
/// trufflehog): workspace prefix, environment, 26 random and 6 checksum base62 characters.
/// No word boundaries: a key pasted after `MY_` or a digit, or followed by `_old`, is still a
/// key. The checksum, not the surroundings, tells a key from a look-alike.
pub const KEY_PATTERN: &str = r"[a-z][a-z0-9]{1,7}_[a-z0-9]{1,12}_[0-9A-Za-z]{32}";

/// Directories never searched: version control, build output, dependencies.
const SKIPPED_DIRS: [&str; 3] = [".git", "target", "node_modules"];
/// Files larger than this are skipped (keys live in configs and sources, not in dumps).
const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// One key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub line: usize,
    pub column: usize,
    /// The display form, never the key.
    pub key: String,
}

pub fn run(args: ScanArgs) -> ExitCode {
    let paths = if args.paths.is_empty() {
        vec![std::path::PathBuf::from(".")]
    } else {
        args.paths
    };
    let pattern = match Regex::new(KEY_PATTERN) {
        Ok(pattern) => pattern,
        Err(e) => {
            eprintln!("error: the key pattern does not compile: {e}");
            return ExitCode::from(2);
        }
    };
    let mut findings = Vec::new();
    let mut unreadable = false;
    for root in &paths {
        for entry in walkdir::WalkDir::new(root)
            .into_iter()
            .filter_entry(|e| !(e.file_type().is_dir() && is_skipped(e.path(), root)))
        {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    eprintln!("error: {e}");
                    unreadable = true;
                    continue;
                }
            };
            if !entry.file_type().is_file()
                || entry.metadata().map_or(true, |m| m.len() > MAX_FILE_BYTES)
            {
                continue;
            }
            match std::fs::read(entry.path()) {
                Ok(bytes) => findings.extend(scan_text(
                    &pattern,
                    &entry.path().display().to_string(),
                    &bytes,
                )),
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", entry.path().display());
                    unreadable = true;
                }
            }
        }
    }
    for finding in &findings {
        if args.json {
            println!(
                "{}",
                json!({"path": finding.path, "line": finding.line, "column": finding.column, "key": finding.key})
            );
        } else {
            println!(
                "{}:{}:{}: Keygate key {}",
                finding.path, finding.line, finding.column, finding.key
            );
        }
    }
    if !findings.is_empty() {
        if !args.json {
            eprintln!(
                "{} Keygate key{} found. Remove {} from the files, and report {} (`keygate keys report-leak`) if {} left this machine.",
                findings.len(),
                if findings.len() == 1 { "" } else { "s" },
                if findings.len() == 1 { "it" } else { "them" },
                if findings.len() == 1 { "it" } else { "each" },
                if findings.len() == 1 { "it" } else { "they" },
            );
        }
        ExitCode::from(1)
    } else if unreadable {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// A directory to skip by name, unless the user named it as a root.
fn is_skipped(path: &Path, root: &Path) -> bool {
    path != root
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|name| SKIPPED_DIRS.contains(&name))
}

/// The keys with a correct checksum in one file's bytes (read as UTF-8, lossily: a key is
/// ASCII, so whatever surrounds it does not matter).
pub fn scan_text(pattern: &Regex, path: &str, bytes: &[u8]) -> Vec<Finding> {
    let text = String::from_utf8_lossy(bytes);
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        // Every start position: a look-alike match (`xkg_live_…`) may hide a real key one
        // character later, which a search resuming after the match would skip.
        let mut start = 0;
        while let Some(candidate) = pattern.find_at(line, start) {
            if matches!(
                ParsedKey::parse(candidate.as_str()),
                Ok(ParsedKey::Native { .. })
            ) {
                found.push(Finding {
                    path: path.to_owned(),
                    line: index + 1,
                    column: candidate.start() + 1,
                    key: display_form(candidate.as_str()),
                });
                start = candidate.end();
            } else {
                start = next_char(line, candidate.start());
            }
        }
    }
    found
}

/// The byte index of the character after the one at `at`.
fn next_char(line: &str, at: usize) -> usize {
    line[at..]
        .chars()
        .next()
        .map_or(line.len(), |c| at + c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::{EnvTag, KeyPrefix, PlainKey};

    fn key(prefix: &str, env: &str) -> String {
        PlainKey::generate(
            &KeyPrefix::parse(prefix).expect("prefix"),
            &EnvTag::parse(env).expect("env"),
        )
        .expose()
        .to_owned()
    }

    #[test]
    fn only_keys_with_a_right_checksum_are_found() {
        let pattern = Regex::new(KEY_PATTERN).expect("pattern");
        let real = key("kg", "live");
        let other_prefix = key("acme", "test");
        let mut broken = real.clone();
        let last = broken.pop().expect("a character");
        broken.push(if last == 'a' { 'b' } else { 'a' });
        let lookalike = "kg_live_abcdefghijklmnopqrstuvwxyz012345";
        let text = format!(
            "KEYGATE_API_KEY={real}\nbroken = \"{broken}\"\n{lookalike}\nx={other_prefix}; y=xkg_live_{}\nMY_{real}_old 1{other_prefix}\n",
            &real[8..]
        );
        let found = scan_text(&pattern, "app/.env", text.as_bytes());
        assert_eq!(
            found,
            vec![
                Finding {
                    path: "app/.env".into(),
                    line: 1,
                    column: 17,
                    key: display_form(&real),
                },
                Finding {
                    path: "app/.env".into(),
                    line: 4,
                    column: 3,
                    key: display_form(&other_prefix),
                },
                // `xkg_live_…` fails its checksum; the real key inside it is still found.
                Finding {
                    path: "app/.env".into(),
                    line: 4,
                    column: 3 + other_prefix.len() + 5,
                    key: display_form(&real),
                },
                Finding {
                    path: "app/.env".into(),
                    line: 5,
                    column: 4,
                    key: display_form(&real),
                },
                Finding {
                    path: "app/.env".into(),
                    line: 5,
                    column: 4 + real.len() + 6,
                    key: display_form(&other_prefix),
                },
            ]
        );
        assert!(!format!("{found:?}").contains(&real), "only display forms");
    }
}

//! Where a new secret goes: shown once on the terminal, or written to an env file and not
//! shown; and reading a secret the user gives (`-` reads it from stdin or, hidden, from the
//! terminal).

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use keygate_api::keys::IssuedKey;
use serde_json::{json, Value};

use crate::cli::SecretDestination;
use crate::error::CliError;
use crate::output::{Output, Tone};

/// Refuses before anything is created if the secret could not be written where asked:
/// a key whose only copy of the secret was lost is worse than no key.
pub fn check_destination(dest: &SecretDestination, replace: bool) -> Result<(), CliError> {
    let Some(path) = &dest.env_file else {
        return Ok(());
    };
    let var = &dest.env_var;
    let valid_name = var
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(CliError::usage(format!(
            "--env-var {var:?} is not a variable name (letters, digits and _)"
        )));
    }
    if path.is_dir() {
        return Err(CliError::usage(format!(
            "--env-file {} is a directory",
            path.display()
        )));
    }
    if !replace {
        let existing = std::fs::read_to_string(path).unwrap_or_default();
        if find_assignment(&existing, var).is_some() {
            return Err(CliError::usage_hint(
                format!("{} already sets {var}", path.display()),
                "Choose another name with --env-var, or remove that line first.",
            ));
        }
    }
    Ok(())
}

fn find_assignment(content: &str, var: &str) -> Option<usize> {
    content.lines().position(|line| {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        line.strip_prefix(var)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    })
}

/// Appends `VAR=secret` (or replaces the line that sets VAR) in a file only the owner can read.
fn write_env_file(path: &Path, var: &str, secret: &str) -> std::io::Result<bool> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let line = format!("{var}={secret}");
    let (content, replaced) = match find_assignment(&existing, var) {
        Some(index) => {
            let mut lines: Vec<&str> = existing.lines().collect();
            lines[index] = &line;
            (format!("{}\n", lines.join("\n")), true)
        }
        None if existing.is_empty() || existing.ends_with('\n') => {
            (format!("{existing}{line}\n"), false)
        }
        None => (format!("{existing}\n{line}\n"), false),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its mode on open; tighten it before the secret goes in.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(replaced)
}

/// Shows the new secret once, or writes it to the file the user named and does not show it.
pub fn deliver_secret(
    out: &Output,
    answer: &Value,
    issued: &IssuedKey,
    dest: &SecretDestination,
    verb: &str,
) -> Result<(), CliError> {
    let secret = issued.secret.as_str();
    let (id, name) = (issued.key.id.as_str(), issued.key.name.as_str());
    if let Some(path) = &dest.env_file {
        let written = write_env_file(path, &dest.env_var, secret);
        let replaced = match written {
            Ok(replaced) => replaced,
            Err(e) => {
                // The key exists now; losing its only copy of the secret would be worse than
                // showing it.
                out.warn(&format!(
                    "Could not write {}: {e}. Here is the secret instead; store it now, it \
                     will not be shown again:",
                    path.display()
                ));
                println!("{secret}");
                return Err(CliError::Reported(1));
            }
        };
        if out.json {
            let mut shown = answer.clone();
            if let Some(map) = shown.as_object_mut() {
                map.remove("secret");
                map.insert("env_file".into(), json!(path));
                map.insert("env_var".into(), json!(dest.env_var));
            }
            out.print_json(&shown);
        } else {
            out.done(&format!("{verb} key {name} ({id})."));
            let how = if replaced { "replaced" } else { "wrote" };
            println!(
                "  The secret was {how} as {} in {} (mode 0600); it is not shown here.",
                dest.env_var,
                path.display()
            );
        }
        return Ok(());
    }
    if out.json {
        out.print_json(answer);
        return Ok(());
    }
    out.done(&format!(
        "{verb} key {} ({id}), environment {}.",
        out.paint(Tone::Bold, name),
        issued.key.environment
    ));
    println!();
    println!("    {}", out.paint(Tone::Bold, secret));
    println!();
    println!(
        "{} Copy this secret now: it will not be shown again. Keygate stores only its hash.",
        out.paint(Tone::Warn, "!")
    );
    Ok(())
}

pub fn read_secret_arg(arg: &str) -> Result<String, CliError> {
    if arg != "-" {
        return Ok(arg.to_string());
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Key (input hidden): ")
            .map(|s| s.trim().to_string())
            .map_err(|e| CliError::failed(format!("cannot read the key: {e}")));
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    Ok(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_assignments_are_found() {
        assert_eq!(
            find_assignment("A=1\nKEYGATE_KEY=x\n", "KEYGATE_KEY"),
            Some(1)
        );
        assert_eq!(
            find_assignment("export KEYGATE_KEY = x", "KEYGATE_KEY"),
            Some(0)
        );
        assert_eq!(find_assignment("KEYGATE_KEY_OLD=x", "KEYGATE_KEY"), None);
    }
}

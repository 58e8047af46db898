//! How a CLI command fails, and the exit code each failure maps to.
//!
//! Scripts branch on the exit code, so it is part of the interface and never changes:
//! 0 ok, 1 the server (or a verification) said no, 2 the command line was wrong, 3 the server
//! could not be reached. Every failure also carries a hint a person can act on.

use std::process::ExitCode;

use serde_json::{json, Value};

/// The server refused a request: everything its error body and headers said.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// Seconds, from `Retry-After`.
    pub retry_after: Option<u64>,
    /// The error body as the server sent it, for `--json`.
    pub body: Value,
}

#[derive(Debug)]
pub enum CliError {
    /// The command line or the local setup is wrong (exit 2).
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// The server answered with an error (exit 1).
    Api(Box<ApiFailure>),
    /// No answer from the server at all (exit 3).
    Unreachable { url: String, cause: String },
    /// Something failed locally or the user declined (exit 1).
    Failed {
        message: String,
        hint: Option<String>,
    },
    /// The server did what was asked, but its answer does not fit this CLI's types (a newer
    /// server with a status or code this CLI has never heard of). The answer is printed as
    /// JSON so that nothing in it is lost (a secret shown once, above all), then exit 1.
    Unreadable { answer: Box<Value>, cause: String },
    /// The command already told the user why; only the exit code is left to give.
    Reported(u8),
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        CliError::Failed {
            message: message.into(),
            hint: None,
        }
    }

    pub fn failed_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError::Failed {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Usage { .. } => 2,
            CliError::Api(_) | CliError::Failed { .. } | CliError::Unreadable { .. } => 1,
            CliError::Unreachable { .. } => 3,
            CliError::Reported(code) => *code,
        })
    }

    /// The error as one JSON object, the same shape the server uses, for `--json` callers.
    pub fn to_json(&self) -> Option<Value> {
        let (code, message) = match self {
            CliError::Api(failure) if failure.body.get("error").is_some() => {
                return Some(failure.body.clone())
            }
            CliError::Api(failure) => (failure.code.as_str(), failure.message.clone()),
            CliError::Usage { message, .. } => ("usage_error", message.clone()),
            CliError::Unreachable { url, cause } => {
                ("unreachable", format!("cannot reach {url}: {cause}"))
            }
            CliError::Failed { message, .. } => ("failed", message.clone()),
            CliError::Unreadable { cause, .. } => ("unreadable_answer", cause.clone()),
            CliError::Reported(_) => return None,
        };
        Some(json!({"error": {"code": code, "message": message, "request_id": null}}))
    }

    /// Lines for a person: what went wrong, then what to do about it.
    pub fn describe(&self) -> Option<(String, Option<String>)> {
        match self {
            CliError::Usage { message, hint } | CliError::Failed { message, hint } => {
                Some((message.clone(), hint.clone()))
            }
            CliError::Unreachable { url, cause } => Some((
                format!("cannot reach the Keygate server at {url}: {cause}"),
                Some(
                    "Check that the server is running and the URL is right (--url, KEYGATE_URL, \
                     or `keygate login`)."
                        .into(),
                ),
            )),
            CliError::Api(failure) => {
                let mut message = format!("{} ({})", failure.message, failure.code);
                if let Some(id) = &failure.request_id {
                    message.push_str(&format!(" [request id {id}]"));
                }
                Some((message, hint_for(failure)))
            }
            CliError::Unreadable { cause, .. } => Some((
                format!(
                    "the server did this, but its answer (printed above as JSON) does not fit \
                     this CLI: {cause}"
                ),
                Some("The server is newer than this CLI: upgrade the CLI.".into()),
            )),
            CliError::Reported(_) => None,
        }
    }
}

/// What a person can do next, for the errors where the message alone does not say.
fn hint_for(failure: &ApiFailure) -> Option<String> {
    let retry = || match failure.retry_after {
        Some(secs) => format!(
            "Retry in {secs} second{}.",
            if secs == 1 { "" } else { "s" }
        ),
        None => "Retry later.".to_string(),
    };
    let hint = match failure.code.as_str() {
        "unauthenticated" => {
            "Run `keygate login`, or set KEYGATE_API_KEY to a management token.".to_string()
        }
        "insufficient_role" => {
            "Ask a workspace owner to do this, or to give you a role that may.".to_string()
        }
        "expired" => "The key has expired: create a new one with `keygate keys create`, or \
                      issue a new secret with `keygate keys regenerate ID`."
            .to_string(),
        "revoked" | "key_revoked" => {
            "Revocation is final: create a new key with `keygate keys create`.".to_string()
        }
        "disabled" => "Enable the key with `keygate keys enable ID`.".to_string(),
        "not_found" => "Check the id: `keygate keys list` shows your keys.".to_string(),
        "spend_cap_reached" => {
            "The daily spend cap resets at 00:00 UTC; raise it with `keygate keys update ID \
             --spend-cap USD`."
                .to_string()
        }
        "insufficient_credits" => {
            "Top up the workspace with `keygate workspace update --credit-balance USD`.".to_string()
        }
        _ if failure.status == 429 => retry(),
        _ if failure.status >= 500 => format!(
            "{} If it keeps failing, give the request id to whoever runs the server.",
            retry()
        ),
        _ => return None,
    };
    Some(hint)
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::failed(e.to_string())
    }
}

//! axum's extractors, with their rejections turned into our JSON errors (`ApiError`) so a bad
//! body, query or path gets the same `{"error":…}` shape as everything else; and the two
//! things every caller is known by, read in one place for the management API and the gateway:
//! the Bearer credential ([`bearer_token`]) and the peer address ([`peer_ip`]).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{header, Extensions, HeaderMap};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::ApiError;

/// A JSON body, which must be an object: serde reads a struct from an array too (`[]`,
/// `["x", null]`), so without this check a body the document does not allow would be
/// accepted. Otherwise as `axum::Json`: the content type first (415), then the size (413),
/// then the JSON (400 `invalid_json`).
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        json_object(&bytes)?;
        strict_json(&bytes).map(ApiJson)
    }
}

/// A JSON body's bytes: the content type first (415), then the size (413).
async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if !json_content_type(req.headers()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    Bytes::from_request(req, state)
        .await
        .map_err(|_| ApiError::TooLarge)
}

/// The first byte of a body that is not JSON whitespace.
fn first_byte(body: &[u8]) -> Option<u8> {
    body.iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Reads a request body into `T`, refusing a field `T` does not have at any depth (a typo is
/// an error, not a silent default). The wire types themselves accept unknown fields, so the
/// CLI reading an answer from a newer server keeps working; strictness is the server's, and
/// it lives here once. Errors name the field's path (`limits.token_limit.limit`).
pub fn strict_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut unknown: Option<String> = None;
    let mut json = serde_json::Deserializer::from_slice(body);
    let mut note = |path: serde_ignored::Path<'_>| {
        unknown.get_or_insert_with(|| field_path(&path));
    };
    let read = serde_path_to_error::deserialize::<_, T>(serde_ignored::Deserializer::new(
        &mut json, &mut note,
    ));
    let value = match read {
        Ok(value) => value,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => {
                    let what = without_values(&inner.to_string());
                    ApiError::BadJson(format!(
                        "The JSON has a wrong or missing field: {}",
                        if path == "." {
                            what
                        } else {
                            format!("{path}: {what}")
                        }
                    ))
                }
                _ => ApiError::BadJson(
                    "The body is not valid JSON. Check quotes, commas and brackets.".into(),
                ),
            });
        }
    };
    if json.end().is_err() {
        return Err(ApiError::BadJson(
            "The body has more after its JSON object.".into(),
        ));
    }
    match unknown {
        Some(path) => Err(ApiError::BadJson(format!(
            "The JSON has a field this operation does not take: `{path}`. Check its spelling \
             against /openapi.json."
        ))),
        None => Ok(value),
    }
}

/// A JSON body that is an array of `T` (`POST /v1/leaks` takes what secret scanners send),
/// read as strictly as [`ApiJson`]: unknown fields of the items are refused.
pub struct ApiJsonList<T>(pub Vec<T>);

impl<T, S> FromRequest<S> for ApiJsonList<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        match first_byte(&bytes) {
            Some(b'[') | None => strict_json(&bytes).map(ApiJsonList),
            Some(_) => Err(ApiError::BadJson(
                "The body must be a JSON array (`[…]`) of the items the operation takes.".into(),
            )),
        }
    }
}

/// `Content-Type: application/json` or `application/<anything>+json`, as `axum::Json` reads it.
fn json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<mime::Mime>().ok())
        .is_some_and(|mime| {
            mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
        })
}

/// Refuses a body whose top level is JSON but not an object (400 `invalid_json`). A body
/// that is empty or not JSON at all is left to the parser, which says so.
pub fn json_object(body: &[u8]) -> Result<(), ApiError> {
    match first_byte(body) {
        Some(b'{') | None => Ok(()),
        Some(_) => Err(ApiError::BadJson(
            "The body must be a JSON object (`{…}`) with the fields the operation takes.".into(),
        )),
    }
}

/// serde's message without the value it quotes (`invalid type: string "kg_live_…", expected
/// u64` becomes `invalid type, expected u64`): a value sent in the wrong place may be a secret,
/// and an error answer must not carry one back. Field names (`missing field `name``) stay.
fn without_values(message: &str) -> String {
    match message.split_once(", expected ") {
        Some((head, expected)) => {
            let kind = head.split([':', '`', '"']).next().unwrap_or(head).trim();
            format!("{kind}, expected {expected}")
        }
        None => message.to_owned(),
    }
}

/// `limits.rate_limits.0.burst`: serde_ignored's path without its `?` steps for options
/// and newtypes, which are not in the JSON.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    let (parent, step) = match path {
        Path::Root => return String::new(),
        Path::Seq { parent, index } => (*parent, index.to_string()),
        Path::Map { parent, key } => (*parent, key.clone()),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => return field_path(parent),
    };
    match field_path(parent) {
        above if above.is_empty() => step,
        above => format!("{above}.{step}"),
    }
}

/// A query string.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive, token trimmed), if
/// the request has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The client's IP address, when the server was started with connection info (tests that
/// call the router directly have none).
pub fn peer_ip(extensions: &Extensions) -> Option<String> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// For PATCH fields where `null` (clear) differs from absent (keep): absent → `None`,
/// `null` → `Some(None)`, a value → `Some(Some(v))`. Use with `#[serde(default)]`.
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        tokens: u64,
        status: Option<keygate_core::model::KeyStatus>,
    }

    #[test]
    fn errors_never_repeat_a_value() {
        for body in [
            r#"{"tokens": "kg_live_secretsecretsecretsecret123456"}"#,
            r#"{"tokens": 1, "status": "kg_live_secretsecretsecretsecret123456"}"#,
            r#"["kg_live_secretsecretsecretsecret123456"]"#,
        ] {
            let Err(ApiError::BadJson(message)) = strict_json::<Body>(body.as_bytes()) else {
                panic!("{body} was accepted");
            };
            assert!(!message.contains("secret"), "{message}");
            assert!(message.contains("expected"), "{message}");
        }
        let Err(ApiError::BadJson(message)) = strict_json::<Body>(br#"{}"#) else {
            panic!("accepted");
        };
        assert!(message.contains("missing field `tokens`"), "{message}");
    }
}

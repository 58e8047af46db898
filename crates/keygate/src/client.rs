//! A thin client for the management API, speaking the contract's types (`keygate-api`):
//! requests are built from its request types and answers read into its response types,
//! which ignore fields they do not know, so a server newer than this CLI can add fields
//! without breaking it. The `*_raw` calls return the answer as the server sent it, for
//! `--json`, which prints exactly what the server said. Every failure is sorted here into
//! "the server said no" and "no answer at all", which is what the exit codes distinguish.

use std::time::Duration;

use keygate_api::error::ErrorResponse;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Credentials;
use crate::error::{ApiFailure, CliError};

/// The query of a `GET` that takes none.
pub const NO_QUERY: &[(&str, &str)] = &[];

/// The body of the actions that take none (enable, disable, revoke, regenerate): `{}`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NoBody {}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client for `credentials`; without a token there is nothing to call the API with.
    pub fn new(credentials: &Credentials) -> Result<Self, CliError> {
        let token = credentials.api_key.clone().ok_or_else(|| {
            CliError::usage_hint(
                "no management token",
                "Run `keygate login`, set KEYGATE_API_KEY, or pass --api-key.",
            )
        })?;
        Self::with_token(&credentials.url, token)
    }

    pub fn with_token(url: &str, token: String) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("keygate-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::failed(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: url.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// `GET path?query`, the answer read into `R`.
    pub async fn get<Q, R>(&self, path: &str, query: &Q) -> Result<R, CliError>
    where
        Q: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.decode(&self.get_raw(path, query).await?)
    }

    /// `GET path?query`, the answer as the server sent it.
    pub async fn get_raw<Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<Value, CliError> {
        self.send(self.request(Method::GET, path).query(query))
            .await
    }

    /// `POST path` with `body`, the answer as the server sent it.
    pub async fn post_raw<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Value, CliError> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    /// `PATCH path` with `body`, the answer as the server sent it.
    pub async fn patch_raw<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Value, CliError> {
        self.send(self.request(Method::PATCH, path).json(body))
            .await
    }

    /// `DELETE path`; the answer has no body.
    pub async fn delete(&self, path: &str) -> Result<(), CliError> {
        self.send(self.request(Method::DELETE, path))
            .await
            .map(drop)
    }

    /// An answer (or a part of one) read into its contract type. Unknown fields are ignored
    /// at any depth. An answer that is JSON but does not fit (a newer server's new status,
    /// say) is kept whole in the error, which prints it, so nothing the server said is lost.
    pub fn decode<R: DeserializeOwned>(&self, answer: &Value) -> Result<R, CliError> {
        R::deserialize(answer).map_err(|e| CliError::Unreadable {
            answer: Box::new(answer.clone()),
            cause: format!("{e} (server {})", self.base),
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn send(&self, request: RequestBuilder) -> Result<Value, CliError> {
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        read_response(response, &self.base).await
    }

    fn transport_error(&self, e: &reqwest::Error) -> CliError {
        if e.is_builder() {
            return CliError::usage(format!("{} is not a usable server URL: {e}", self.base));
        }
        CliError::Unreachable {
            url: self.base.clone(),
            cause: root_cause(e),
        }
    }
}

/// The innermost error: "Connection refused (os error 111)" says more than reqwest's wrapper.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

async fn read_response(response: Response, base: &str) -> Result<Value, CliError> {
    let status = response.status();
    let request_id = header(&response, "request-id");
    let retry_after = header(&response, "retry-after").and_then(|v| v.trim().parse().ok());
    let bytes = response.bytes().await.map_err(|e| CliError::Unreachable {
        url: base.to_string(),
        cause: format!("the answer was cut off: {}", root_cause(&e)),
    })?;
    let body: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
        Some(Value::Null)
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    if status.is_success() {
        return body.ok_or_else(|| {
            CliError::failed_hint(
                format!("the server at {base} did not answer with JSON"),
                "Is --url pointing at a Keygate server?",
            )
        });
    }
    let body = body.unwrap_or(Value::Null);
    let (code, message, id) = error_fields(&body);
    Err(CliError::Api(Box::new(ApiFailure {
        status: status.as_u16(),
        code: code.unwrap_or_else(|| format!("http_{}", status.as_u16())),
        message: message.unwrap_or_else(|| {
            format!(
                "the server at {base} answered {status} without a Keygate error body; is --url \
                 pointing at a Keygate server?"
            )
        }),
        request_id: id.or(request_id),
        retry_after,
        body,
    })))
}

/// The code, message and request id of an error answer: read as the contract's
/// [`ErrorResponse`], or, when that fails (a code added by a newer server, or a body that is
/// not Keygate's), whichever of the three are strings where the contract puts them.
fn error_fields(body: &Value) -> (Option<String>, Option<String>, Option<String>) {
    if let Ok(ErrorResponse { error }) = ErrorResponse::deserialize(body) {
        let code = serde_json::to_value(error.code)
            .ok()
            .and_then(|code| code.as_str().map(str::to_string));
        return (code, Some(error.message), Some(error.request_id));
    }
    let error = body.get("error");
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    (field("code"), field("message"), field("request_id"))
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether an error is the server saying it has no such route (an older server), as opposed
/// to having no such object.
pub fn is_missing_route(error: &CliError) -> bool {
    matches!(error, CliError::Api(f) if f.status == 404 || f.status == 405)
}

//! Headers the proxy and the AI gateway read and strip.

use axum::http::{header, HeaderMap, HeaderName};

use crate::extract::bearer_token;

/// The customer's key: `Authorization: Bearer <key>`, else `x-api-key: <key>`.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    bearer_token(headers).or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    })
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus `host`,
/// which the client sets for the upstream it connects to.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

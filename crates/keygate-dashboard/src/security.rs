//! What protects every dashboard page: the response headers (set in one middleware), the
//! same-origin check on every POST, the sign-in throttle, and the two static files the CSP
//! allows (no inline script or style anywhere).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};

use crate::error::DashboardError;

/// `default-src 'self'` forbids inline script and style and every other origin; the rest
/// forbids framing, `<base>` tricks and forms posting elsewhere.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Sets the security headers on every dashboard response, errors and redirects included.
/// `no-store` on all of them: the simplest way to be sure a page showing a secret is never
/// cached, and nothing in the dashboard is worth caching.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Refuses a POST that says it comes from another site: `Sec-Fetch-Site` other than
/// `same-origin` (or `none`, typed by the user), or an `Origin` whose host is not this one.
/// Under `Referrer-Policy: no-referrer` browsers send `Origin: null` on same-origin form
/// posts; that is accepted only beside a `Sec-Fetch-Site` that says same-origin. A request with
/// neither header (an old browser, curl) passes here; the CSRF token in the form still has to
/// match.
pub async fn same_origin_posts(request: Request, next: Next) -> Response {
    if request.method() == Method::POST && !same_origin(request.headers()) {
        return DashboardError::CrossSite.into_response();
    }
    next.run(request).await
}

fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    if origin.as_bytes() == b"null" {
        return headers.contains_key("sec-fetch-site");
    }
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(HeaderValue::to_str),
    ) else {
        return false;
    };
    // `scheme://host[:port]`; the scheme is not compared, as TLS may end at a proxy.
    origin
        .split_once("://")
        .is_some_and(|(_, origin_host)| origin_host.eq_ignore_ascii_case(host))
}

/// Failed sign-ins per source address, in fixed windows: at most [`Throttle::MAX_FAILURES`]
/// per [`Throttle::WINDOW_MINUTES`] minutes. Per node (a cluster allows that many per node);
/// every failure is also logged and, when its workspace is known, audited.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

impl Throttle {
    pub const MAX_FAILURES: u32 = 10;
    pub const WINDOW_MINUTES: i64 = 15;

    /// Whether `source` may try to sign in now.
    pub fn allows(&self, source: &str, now: DateTime<Utc>) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(source) {
            Some((count, since)) => {
                *count < Self::MAX_FAILURES
                    || now - *since >= Duration::minutes(Self::WINDOW_MINUTES)
            }
            None => true,
        }
    }

    pub fn failed(&self, source: &str, now: DateTime<Utc>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Forget old windows so the map stays as small as the current attackers.
        if failures.len() > 10_000 {
            failures.retain(|_, (_, since)| now - *since < Duration::minutes(Self::WINDOW_MINUTES));
        }
        let entry = failures.entry(source.to_owned()).or_insert((0, now));
        if now - entry.1 >= Duration::minutes(Self::WINDOW_MINUTES) {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

pub async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/dashboard.css"),
    )
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/dashboard.js"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_this_origin_may_post() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
        ])));
        // What Chromium sends for a same-origin form under `Referrer-Policy: no-referrer`.
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
        ])));
    }

    #[test]
    fn the_throttle_closes_after_ten_failures_and_reopens_after_the_window() {
        let throttle = Throttle::default();
        let t0 = Utc::now();
        for _ in 0..Throttle::MAX_FAILURES {
            assert!(throttle.allows("10.0.0.1", t0));
            throttle.failed("10.0.0.1", t0);
        }
        assert!(!throttle.allows("10.0.0.1", t0));
        assert!(throttle.allows("10.0.0.2", t0));
        assert!(throttle.allows("10.0.0.1", t0 + Duration::minutes(15)));
    }
}

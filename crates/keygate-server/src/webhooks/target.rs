//! Where a webhook may be sent. Keygate calls URLs its users give it, so each is checked as
//! an attacker would aim it (SSRF): `https` only; a host name, not an IP address; no user or
//! password in the URL; and every address the host resolves to must be public — not loopback, private, link-local (cloud
//! metadata lives at 169.254.169.254), shared, unspecified or multicast. The check is made when
//! the endpoint is saved and again before every delivery, which then connects to the address
//! it checked (so a DNS answer cannot change between the check and the connection).
//!
//! `allow_loopback` (the server flag `--webhooks-allow-loopback`, for development and tests)
//! also admits `http` and loopback addresses — nothing else.

use std::net::{IpAddr, SocketAddr};

use reqwest::Url;

/// What a target may be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_loopback: bool,
}

/// Longest URL an endpoint may have.
pub const MAX_URL_CHARS: usize = 2048;

/// The URL's form: scheme, no credentials, a host. Says what is wrong in a sentence.
pub fn check_url(text: &str, policy: TargetPolicy) -> Result<Url, String> {
    if text.chars().count() > MAX_URL_CHARS {
        return Err(format!(
            "a webhook URL is at most {MAX_URL_CHARS} characters"
        ));
    }
    let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| "a webhook URL needs a host".to_owned())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "a webhook URL may not carry a user or password; the signature authenticates Keygate"
                .into(),
        );
    }
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_loopback && is_loopback_host(host) => {}
        _ => return Err("a webhook URL must be https".into()),
    }
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        // A host name, not an address: https certificates name hosts, and an address literal
        // is how requests are aimed inward. Only the loopback exception takes one.
        if !(policy.allow_loopback && ip.is_loopback()) {
            return Err(format!(
                "a webhook URL names a host, not an IP address ({ip})"
            ));
        }
    }
    // The form the document states, checked on the text as given (a URL parser would
    // lowercase and repair it): what the schema refuses, the server refuses.
    if !policy.allow_loopback && !keygate_api::webhooks::is_endpoint_url(text) {
        return Err(
            "a webhook URL is https://, a lowercase host name (not an IP address), an optional \
             port and a printable path"
                .into(),
        );
    }
    if !policy.allow_loopback && (host == "localhost" || host.ends_with(".localhost")) {
        return Err("webhooks are not sent to localhost: only public addresses are allowed".into());
    }
    Ok(url)
}

/// The address to connect to: the host resolved now, every answer allowed. `Err` when it does
/// not resolve or resolves to an address that is not allowed.
pub async fn resolve(url: &Url, policy: TargetPolicy) -> Result<SocketAddr, String> {
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if let Some(bad) = addresses.iter().find(|a| !allowed(a.ip(), policy)) {
        return Err(refused(bad.ip()));
    }
    addresses
        .first()
        .copied()
        .ok_or_else(|| format!("{host} resolves to no address"))
}

fn refused(ip: IpAddr) -> String {
    format!("webhooks are not sent to {ip}: only public addresses are allowed")
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a delivery may connect to `ip`.
pub fn allowed(ip: IpAddr, policy: TargetPolicy) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return policy.allow_loopback;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0xdb8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_targets_pass_by_default() {
        let strict = TargetPolicy::default();
        let lax = TargetPolicy {
            allow_loopback: true,
        };
        for bad in [
            "http://hooks.example.com/x",
            "https://user:pw@hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://localhost:8443/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://172.16.5.5/x",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "ftp://hooks.example.com/x",
            "not a url",
        ] {
            assert!(check_url(bad, strict).is_err(), "{bad} passed");
        }
        assert!(check_url("https://hooks.example.com/keygate", strict).is_ok());
        assert!(
            check_url("https://93.184.216.34/x", strict).is_err(),
            "a host name, not an address"
        );
        assert!(check_url("http://127.0.0.1:9000/x", lax).is_ok());
        assert!(
            check_url("http://10.0.0.1/x", lax).is_err(),
            "only loopback is relaxed"
        );
        assert!(check_url("http://hooks.example.com/x", lax).is_err());
    }
}

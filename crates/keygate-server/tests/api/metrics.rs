//! `/metrics` is valid Prometheus text: every line a comment or `name{labels} value`, with the
//! verification latency histograms and the usage buffer's series.

use serde_json::json;

use crate::helpers::TestApp;

/// Checks one sample line: a metric name, optional `{k="v",…}` labels, a float value.
fn is_sample(line: &str) -> bool {
    let (series, value) = match line.rsplit_once(' ') {
        Some(parts) => parts,
        None => return false,
    };
    let value_ok = value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value);
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => match rest.strip_suffix('}') {
            Some(labels) => (name, Some(labels)),
            None => return false,
        },
        None => (series, None),
    };
    let name_ok = !name.is_empty()
        && name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
    let labels_ok = labels.is_none_or(|labels| {
        labels.split(',').all(|pair| {
            pair.split_once('=').is_some_and(|(k, v)| {
                !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && v.len() >= 2
                    && v.starts_with('"')
                    && v.ends_with('"')
            })
        })
    });
    value_ok && name_ok && labels_ok
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test]
async fn metrics_parse_and_count_verifications_latency_and_usage() {
    let app = TestApp::spawn().await;
    let (_, secret) = app.new_key("measured").await;
    for _ in 0..6 {
        app.verify(json!({"key": secret})).await;
    }
    app.verify(json!({"key": "kg_live_nope"})).await;
    app.state.usage.flush().await;

    let text = app.metrics_text().await;
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP ") || line.starts_with("# TYPE ") || is_sample(line),
            "not Prometheus text: {line:?}"
        );
    }
    assert_eq!(
        value(&text, "keygate_verifications_total{outcome=\"valid\"}"),
        6.0
    );
    assert_eq!(value(&text, "keygate_verify_duration_seconds_count"), 7.0);
    assert_eq!(
        value(&text, "keygate_verify_duration_seconds_bucket{le=\"+Inf\"}"),
        7.0
    );
    assert!(value(&text, "keygate_verify_duration_seconds_sum") > 0.0);
    assert!(value(&text, "keygate_store_key_lookup_duration_seconds_count") >= 1.0);
    assert_eq!(value(&text, "keygate_limiter_duration_seconds_count"), 6.0);
    assert_eq!(value(&text, "keygate_usage_events_total"), 7.0);
    assert_eq!(value(&text, "keygate_usage_events_flushed_total"), 7.0);
    assert_eq!(value(&text, "keygate_usage_events_dropped_total"), 0.0);
    assert_eq!(value(&text, "keygate_usage_buffer_depth"), 0.0);
    assert!(text.contains("# TYPE keygate_verify_duration_seconds histogram"));
    app.stop().await;
}

#[test]
fn the_sample_checker_rejects_what_prometheus_would() {
    assert!(is_sample("a_b{x=\"1\",y=\"z\"} 3"));
    assert!(is_sample("a 1.5e-3"));
    assert!(!is_sample("a{x=1} 3"));
    assert!(!is_sample("1a 3"));
    assert!(!is_sample("a three"));
}

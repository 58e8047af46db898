//! What a limit is, and the calendar arithmetic of reset periods. Counting lives in the
//! `keygate-limits` crate; this module only says what is counted and when a period starts.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::expiry::parse_duration;
use crate::money::Micros;

/// At most `limit` requests in any rolling window of `window_secs` seconds.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateWindow {
    /// At least 1.
    #[cfg_attr(feature = "schema", schema(schema_with = crate::schema::rate_limit_schema))]
    #[serde(deserialize_with = "crate::whole::whole_u64")]
    pub limit: u64,
    #[serde(rename = "window")]
    pub window: WindowLength,
}

/// A window length in whole seconds, written as "1m", "1h", "30s" or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowLength(pub u64);

impl WindowLength {
    pub fn secs(self) -> u64 {
        self.0
    }
    /// In milliseconds, saturating (a `u64` of seconds can exceed `i64` milliseconds; a
    /// cast would turn it negative).
    pub fn millis(self) -> i64 {
        i64::try_from(self.0)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000)
    }
}

impl fmt::Display for WindowLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
            if s >= len && s.is_multiple_of(len) {
                return write!(f, "{}{unit}", s / len);
            }
        }
        write!(f, "{s}s")
    }
}

impl Serialize for WindowLength {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WindowLength {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let secs = match value {
            serde_json::Value::Number(n) => crate::whole::whole_number(&n).ok_or_else(|| {
                serde::de::Error::custom("a window is a whole number of seconds or \"1m\"")
            })?,
            serde_json::Value::String(s) => parse_duration(&s)
                .map_err(serde::de::Error::custom)?
                .num_seconds() as u64,
            _ => {
                return Err(serde::de::Error::custom(
                    "a window is a whole number of seconds or a duration such as \"1m\"",
                ))
            }
        };
        if secs == 0 || secs > 31 * 86_400 {
            return Err(serde::de::Error::custom(
                "a rate window is between 1 second and 31 days",
            ));
        }
        Ok(WindowLength(secs))
    }
}

/// When a token or cost budget starts again. Calendar periods are in UTC.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResetPeriod {
    Daily,
    Weekly,
    #[default]
    Monthly,
    Never,
}

impl ResetPeriod {
    /// Start of the period containing `now` (ISO weeks start on Monday). `Never` has one
    /// period, starting at the epoch.
    pub fn period_start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let day = now.date_naive();
        let start = match self {
            ResetPeriod::Daily => day,
            ResetPeriod::Weekly => {
                day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
            }
            ResetPeriod::Monthly => day.with_day(1).unwrap_or(day),
            ResetPeriod::Never => NaiveDate::default(),
        };
        midnight(start)
    }

    /// The next instant the budget resets after `now`, or `None` for `Never`.
    pub fn next_reset(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = self.period_start(now).date_naive();
        let next = match self {
            ResetPeriod::Daily => start + Duration::days(1),
            ResetPeriod::Weekly => start + Duration::days(7),
            ResetPeriod::Monthly => {
                let (y, m) = if start.month() == 12 {
                    (start.year() + 1, 1)
                } else {
                    (start.year(), start.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1)?
            }
            ResetPeriod::Never => return None,
        };
        Some(midnight(next))
    }
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// A token budget per reset period.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLimit {
    #[serde(deserialize_with = "crate::whole::whole_u64")]
    #[cfg_attr(feature = "schema", schema(schema_with = crate::schema::token_limit_schema))]
    pub limit: u64,
    #[serde(default)]
    pub reset: ResetPeriod,
}

/// A cost budget (USD) per reset period.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostLimit {
    pub limit: Micros,
    #[serde(default)]
    pub reset: ResetPeriod,
}

/// Every limit a key can carry. An empty `rate_limits` means "the workspace default".
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyLimits {
    /// At most 10 windows, all of which must pass.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(max_items = 10))]
    pub rate_limits: Vec<RateWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_limit: Option<TokenLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_limit: Option<CostLimit>,
    /// Resets at 00:00 UTC every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_spend_cap: Option<Micros>,
}

impl KeyLimits {
    pub fn is_empty(&self) -> bool {
        self.rate_limits.is_empty()
            && self.token_limit.is_none()
            && self.cost_limit.is_none()
            && self.daily_spend_cap.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_huge_windows_saturate_instead_of_going_negative() {
        assert_eq!(WindowLength(u64::MAX).millis(), i64::MAX);
        assert_eq!(WindowLength(60).millis(), 60_000);
    }

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 30, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn periods_start_and_reset_on_utc_boundaries() {
        // 2026-11-25 is a Wednesday.
        let now = at(2026, 11, 25, 15);
        assert_eq!(
            ResetPeriod::Daily.period_start(now),
            at(2026, 11, 25, 0) - Duration::minutes(30)
        );
        assert_eq!(
            ResetPeriod::Weekly.next_reset(now),
            Some(at(2026, 11, 30, 0) - Duration::minutes(30))
        );
        assert_eq!(
            ResetPeriod::Monthly.next_reset(at(2026, 12, 31, 23)),
            Some(at(2027, 1, 1, 0) - Duration::minutes(30))
        );
        assert_eq!(ResetPeriod::Never.next_reset(now), None);
    }

    #[test]
    fn windows_read_and_write_durations() {
        let w: RateWindow = serde_json::from_str(r#"{"limit":60,"window":"1m"}"#).expect("json");
        assert_eq!(w.window.secs(), 60);
        assert_eq!(
            serde_json::to_string(&w).expect("ser"),
            r#"{"limit":60,"window":"1m"}"#
        );
        let w: RateWindow = serde_json::from_str(r#"{"limit":5,"window":90}"#).expect("json");
        assert_eq!(w.window.to_string(), "90s");
        assert!(serde_json::from_str::<RateWindow>(r#"{"limit":5,"window":0}"#).is_err());
    }
}

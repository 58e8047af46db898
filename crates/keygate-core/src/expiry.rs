//! Human durations ("30d", "90d", "1y", "24h") for key expiry and rotation grace periods, and
//! the one reader of written durations ([`split_duration`]) every other duration setting uses.

use chrono::{DateTime, Duration, Utc};

/// Why a duration or expiry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryError {
    #[error(
        "a duration is a number and a unit (s, m, h, d, w, y), such as \"30d\", \"24h\" or \"1y\""
    )]
    BadDuration,
    #[error("a duration must be more than zero and at most 100 years")]
    OutOfRange,
    #[error("expires_at must be an RFC 3339 time such as \"2027-01-31T00:00:00Z\"")]
    BadTimestamp,
    #[error("expires_at is in the past")]
    InThePast,
    #[error("give either expires_in or expires_at, not both")]
    Both,
}

/// The unit of a written duration. Every duration Keygate reads — key expiry, grace periods,
/// rate windows, reservation TTLs, the gateway's timeouts — is a whole number followed by one
/// of these, read by [`split_duration`]; each reader then says which units it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationUnit {
    /// `ms`
    Millis,
    /// `s`
    Seconds,
    /// `m` or `min`
    Minutes,
    /// `h`
    Hours,
    /// `d`
    Days,
    /// `w`
    Weeks,
    /// `y`: 365 days. Expiry is a security bound, not a calendar.
    Years,
}

impl DurationUnit {
    /// The unit's length in milliseconds.
    pub const fn millis(self) -> u64 {
        match self {
            DurationUnit::Millis => 1,
            DurationUnit::Seconds => 1_000,
            DurationUnit::Minutes => 60_000,
            DurationUnit::Hours => 3_600_000,
            DurationUnit::Days => 86_400_000,
            DurationUnit::Weeks => 7 * 86_400_000,
            DurationUnit::Years => 365 * 86_400_000,
        }
    }
}

/// Reads `"<digits><unit>"` (surrounding whitespace ignored) into the number and its unit;
/// `None` when the text has another shape or the number does not fit a `u64`.
pub fn split_duration(text: &str) -> Option<(u64, DurationUnit)> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let unit = match unit {
        "ms" => DurationUnit::Millis,
        "s" => DurationUnit::Seconds,
        "m" | "min" => DurationUnit::Minutes,
        "h" => DurationUnit::Hours,
        "d" => DurationUnit::Days,
        "w" => DurationUnit::Weeks,
        "y" => DurationUnit::Years,
        _ => return None,
    };
    Some((n, unit))
}

/// Parses "30d" and friends in whole seconds (units s to y; no `ms`), from 1 second to 100
/// years.
pub fn parse_duration(text: &str) -> Result<Duration, ExpiryError> {
    let (n, unit) = split_duration(text)
        .filter(|(_, unit)| *unit != DurationUnit::Millis)
        .ok_or(ExpiryError::BadDuration)?;
    let n = i64::try_from(n).map_err(|_| ExpiryError::BadDuration)?;
    let unit_secs = (unit.millis() / 1_000) as i64;
    let secs = n.checked_mul(unit_secs).ok_or(ExpiryError::OutOfRange)?;
    if secs <= 0 || secs > 100 * 365 * 86_400 {
        return Err(ExpiryError::OutOfRange);
    }
    Ok(Duration::seconds(secs))
}

/// Resolves the two ways a client may give an expiry into an absolute time, or `None` for never.
/// `Ok(None)` with both absent means "never" too.
pub fn resolve_expiry(
    expires_in: Option<&str>,
    expires_at: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ExpiryError> {
    match (expires_in, expires_at) {
        (Some(_), Some(_)) => Err(ExpiryError::Both),
        (Some(text), None) if text.trim() == "never" => Ok(None),
        (Some(text), None) => Ok(Some(now + parse_duration(text)?)),
        (None, Some(text)) => {
            let at = DateTime::parse_from_rfc3339(text.trim())
                .map_err(|_| ExpiryError::BadTimestamp)?
                .with_timezone(&Utc);
            if at <= now {
                Err(ExpiryError::InThePast)
            } else {
                Ok(Some(at))
            }
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_duration("30d"), Ok(Duration::days(30)));
        assert_eq!(parse_duration("90d"), Ok(Duration::days(90)));
        assert_eq!(parse_duration("1y"), Ok(Duration::days(365)));
        assert_eq!(parse_duration("24h"), Ok(Duration::hours(24)));
        assert_eq!(parse_duration("0d"), Err(ExpiryError::OutOfRange));
        assert_eq!(parse_duration("d"), Err(ExpiryError::BadDuration));
        assert_eq!(parse_duration("5 parsecs"), Err(ExpiryError::BadDuration));
        assert_eq!(
            parse_duration("999999999999y"),
            Err(ExpiryError::OutOfRange)
        );
        assert_eq!(parse_duration("500ms"), Err(ExpiryError::BadDuration));
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(ExpiryError::BadDuration)
        );
        assert_eq!(split_duration(" 500ms "), Some((500, DurationUnit::Millis)));
        assert_eq!(split_duration("2min"), Some((2, DurationUnit::Minutes)));
    }

    #[test]
    fn resolves_expiry() {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("time");
        assert_eq!(resolve_expiry(Some("never"), None, now), Ok(None));
        assert_eq!(
            resolve_expiry(Some("30d"), None, now),
            Ok(Some(now + Duration::days(30)))
        );
        assert_eq!(
            resolve_expiry(None, Some("2025-01-01T00:00:00Z"), now),
            Err(ExpiryError::InThePast)
        );
        assert!(resolve_expiry(None, Some("2027-01-01T00:00:00+02:00"), now).is_ok());
        assert_eq!(
            resolve_expiry(Some("1d"), Some("2027-01-01T00:00:00Z"), now),
            Err(ExpiryError::Both)
        );
    }
}

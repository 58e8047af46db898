//! Money is integer micro-dollars everywhere: a float cannot hold 0.1 exactly, and a budget
//! that drifts by rounding is a budget that can be overspent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of US dollars in millionths (1 USD = 1,000,000 micros). Never negative when it
/// comes from a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Micros(pub i64);

/// Why an amount of money could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("an amount must be a decimal number of US dollars such as \"0.03\"")]
    NotANumber,
    #[error("an amount cannot be negative")]
    Negative,
    #[error("an amount has at most 6 decimal places (one micro-dollar)")]
    TooPrecise,
    #[error("the amount is too large")]
    TooLarge,
}

impl Micros {
    pub const ZERO: Micros = Micros(0);
    pub const PER_DOLLAR: i64 = 1_000_000;

    /// Reads a decimal dollar amount ("0.03", "12", "1.5") exactly, without going through a float.
    pub fn parse_dollars(text: &str) -> Result<Self, MoneyError> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let text = text.strip_prefix('+').unwrap_or(text);
        if text.contains(['e', 'E']) {
            return Self::parse_exponent(text);
        }
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        if (whole.is_empty() && frac.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(MoneyError::NotANumber);
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > 6 {
            return Err(MoneyError::TooPrecise);
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| MoneyError::TooLarge)?
        };
        let mut frac_micros: i64 = 0;
        for (i, digit) in frac.bytes().enumerate() {
            frac_micros += i64::from(digit - b'0') * 10_i64.pow(5 - i as u32);
        }
        whole
            .checked_mul(Self::PER_DOLLAR)
            .and_then(|w| w.checked_add(frac_micros))
            .map(Micros)
            .ok_or(MoneyError::TooLarge)
    }

    /// JSON numbers such as `1e-5` arrive in exponent form; they are rare, so they take the
    /// slow road through a decimal string.
    fn parse_exponent(text: &str) -> Result<Self, MoneyError> {
        let value: f64 = text.parse().map_err(|_| MoneyError::NotANumber)?;
        if !value.is_finite() {
            return Err(MoneyError::NotANumber);
        }
        let micros = value * Self::PER_DOLLAR as f64;
        if (micros - micros.round()).abs() > 1e-6 {
            return Err(MoneyError::TooPrecise);
        }
        if micros.abs() > i64::MAX as f64 / 2.0 {
            return Err(MoneyError::TooLarge);
        }
        Ok(Micros(micros.round() as i64))
    }

    /// Saturating sum; budgets never wrap around.
    pub fn saturating_add(self, other: Micros) -> Micros {
        Micros(self.0.saturating_add(other.0))
    }

    /// Saturating difference.
    pub fn saturating_sub(self, other: Micros) -> Micros {
        Micros(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Micros {
    /// Dollars with six decimals trimmed of trailing zeros (but at least two): "0.03", "1.50".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / 1_000_000;
        let frac = format!("{:06}", abs % 1_000_000);
        let mut frac = frac.trim_end_matches('0').to_string();
        while frac.len() < 2 {
            frac.push('0');
        }
        write!(f, "{sign}{whole}.{frac}")
    }
}

impl FromStr for Micros {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_dollars(s)
    }
}

/// Serialized as a decimal string of dollars ("0.03") so no client reads it as a float.
impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Accepts a JSON number (`0.03`) or a decimal string (`"0.03"`), both read exactly.
impl<'de> Deserialize<'de> for Micros {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let text = match &value {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.clone(),
            _ => return Err(serde::de::Error::custom(MoneyError::NotANumber)),
        };
        Micros::parse_dollars(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_dollars_exactly() {
        assert_eq!(Micros::parse_dollars("0.03"), Ok(Micros(30_000)));
        assert_eq!(Micros::parse_dollars("1"), Ok(Micros(1_000_000)));
        assert_eq!(Micros::parse_dollars("1.5"), Ok(Micros(1_500_000)));
        assert_eq!(Micros::parse_dollars(".000001"), Ok(Micros(1)));
        assert_eq!(Micros::parse_dollars("0.100000"), Ok(Micros(100_000)));
        assert_eq!(Micros::parse_dollars("1e-5"), Ok(Micros(10)));
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!(Micros::parse_dollars("-1"), Err(MoneyError::Negative));
        assert_eq!(
            Micros::parse_dollars("0.0000001"),
            Err(MoneyError::TooPrecise)
        );
        assert_eq!(Micros::parse_dollars("abc"), Err(MoneyError::NotANumber));
        assert_eq!(Micros::parse_dollars(""), Err(MoneyError::NotANumber));
        assert_eq!(Micros::parse_dollars("."), Err(MoneyError::NotANumber));
        assert_eq!(
            Micros::parse_dollars("99999999999999999"),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn json_number_and_string_agree() {
        let a: Micros = serde_json::from_str("0.03").expect("number");
        let b: Micros = serde_json::from_str("\"0.03\"").expect("string");
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).expect("ser"), "\"0.03\"");
    }

    #[test]
    fn displays_dollars() {
        assert_eq!(Micros(30_000).to_string(), "0.03");
        assert_eq!(Micros(1_500_000).to_string(), "1.50");
        assert_eq!(Micros(1).to_string(), "0.000001");
    }
}

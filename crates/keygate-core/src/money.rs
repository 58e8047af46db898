//! Money is integer micro-dollars everywhere: a float cannot hold 0.1 exactly, and a budget
//! that drifts by rounding is a budget that can be overspent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of US dollars in millionths (1 USD = 1,000,000 micros).
///
/// Every amount that comes from outside — a JSON body, a query, the CLI, the gateway config —
/// is read by [`Micros::parse_dollars`] (directly, through `FromStr`, or through
/// `Deserialize`), so it is never negative and never above [`Micros::MAX`]. The field stays
/// public because the store and the limiters rebuild amounts they wrote themselves; sums of
/// amounts use the saturating operations below, so they cannot wrap around either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Micros(pub i64);

/// Why an amount of money could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("an amount must be a decimal number of US dollars such as \"0.03\" (digits, at most one point, no sign)")]
    NotANumber,
    #[error("an amount cannot be negative")]
    Negative,
    #[error("an amount has at most 6 decimal places (one micro-dollar)")]
    TooPrecise,
    #[error("an amount can be at most $1,000,000,000")]
    TooLarge,
}

/// Longest text looked at as an amount; anything longer is not a sane amount, and refusing it
/// before reading it keeps a hostile body from costing more than a few comparisons.
const MAX_TEXT_LEN: usize = 64;

impl Micros {
    pub const ZERO: Micros = Micros(0);
    pub const PER_DOLLAR: i64 = 1_000_000;
    /// The largest amount anyone may send: $1,000,000,000. Far above any real budget or price,
    /// and 9,000 times below `i64::MAX`, so sums of accepted amounts stay exact long before
    /// they would have to saturate.
    pub const MAX: Micros = Micros(1_000_000_000 * Self::PER_DOLLAR);

    /// The one money parser. Reads a decimal dollar amount exactly, without going through a
    /// float: `"0.03"`, `"12"`, `"1.5"`, `"0.100000"`, and the exponent form a JSON number
    /// may print as (`"1e-5"`, `"2.5E3"`). Refused: any sign (`-1`, `+1`, `+-5e0`), more than
    /// 6 decimal places, more than [`Micros::MAX`], whitespace, non-ASCII digits, `NaN`, `inf`,
    /// hex, and anything else that is not `digits [. digits] [e [+|-] digits]`.
    pub fn parse_dollars(text: &str) -> Result<Self, MoneyError> {
        if text.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        if text.len() > MAX_TEXT_LEN {
            return Err(MoneyError::NotANumber);
        }
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(at) => (&text[..at], parse_exponent(&text[at + 1..])?),
            None => (text, 0),
        };
        let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(frac) {
            return Err(MoneyError::NotANumber);
        }
        if mantissa.ends_with('.') {
            return Err(MoneyError::NotANumber);
        }
        // The value is 0.DIGITS × 10^point: `point` counts the digits before the decimal point.
        let digits = format!("{whole}{frac}");
        let mut point = whole.len() as i64 + exponent;
        let significant = digits.trim_start_matches('0');
        point -= (digits.len() - significant.len()) as i64;
        let significant = significant.trim_end_matches('0');
        if significant.is_empty() {
            return Ok(Micros::ZERO);
        }
        let decimals = significant.len() as i64 - point;
        if decimals > 6 {
            return Err(MoneyError::TooPrecise);
        }
        // At most 10 digits before the point ($1,000,000,000 has 10): with at most 6 after it,
        // the integer below has at most 16 digits and cannot overflow an i64.
        if point > 10 {
            return Err(MoneyError::TooLarge);
        }
        let mut micros: i64 = 0;
        for b in significant.bytes() {
            micros = micros * 10 + i64::from(b - b'0');
        }
        for _ in decimals..6 {
            micros *= 10;
        }
        let amount = Micros(micros);
        if amount > Self::MAX {
            return Err(MoneyError::TooLarge);
        }
        Ok(amount)
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

/// The exponent of an amount in exponent form: an optional sign and 1 to 4 digits (an amount
/// within range never needs more; more would only make the arithmetic above overflow).
fn parse_exponent(text: &str) -> Result<i64, MoneyError> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MoneyError::NotANumber);
    }
    let digits = digits.trim_start_matches('0');
    if digits.len() > 4 {
        return Err(if negative {
            MoneyError::TooPrecise
        } else {
            MoneyError::TooLarge
        });
    }
    let value: i64 = digits.parse().unwrap_or(0);
    Ok(if negative { -value } else { value })
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
    use proptest::prelude::*;

    #[test]
    fn parses_decimal_dollars_exactly() {
        assert_eq!(Micros::parse_dollars("0.03"), Ok(Micros(30_000)));
        assert_eq!(Micros::parse_dollars("1"), Ok(Micros(1_000_000)));
        assert_eq!(Micros::parse_dollars("1.5"), Ok(Micros(1_500_000)));
        assert_eq!(Micros::parse_dollars("0.000001"), Ok(Micros(1)));
        assert_eq!(Micros::parse_dollars("0.100000"), Ok(Micros(100_000)));
        assert_eq!(Micros::parse_dollars("0.1000000000"), Ok(Micros(100_000)));
        assert_eq!(Micros::parse_dollars("007.50"), Ok(Micros(7_500_000)));
        assert_eq!(Micros::parse_dollars("0"), Ok(Micros::ZERO));
        assert_eq!(Micros::parse_dollars("1e-5"), Ok(Micros(10)));
        assert_eq!(Micros::parse_dollars("2.5E3"), Ok(Micros(2_500_000_000)));
        assert_eq!(Micros::parse_dollars("1e+2"), Ok(Micros(100_000_000)));
        assert_eq!(Micros::parse_dollars("1000000000"), Ok(Micros::MAX));
        assert_eq!(Micros::parse_dollars("1e9"), Ok(Micros::MAX));
    }

    #[test]
    fn security_money_refuses_signs_exponents_and_overflow() {
        for negative in ["-1", "-0", "-0.0", "-1e0", "--1"] {
            assert_eq!(
                Micros::parse_dollars(negative),
                Err(MoneyError::Negative),
                "{negative}"
            );
        }
        for not_a_number in [
            "+-5e0", "+-1000e0", "+1", "+0", "abc", "", ".", ".5", "1.", "1..2", "1.2.3", "e5",
            "1e", "1e+", "1e-", "1e5e5", " 1", "1 ", "0x10", "NaN", "inf", "infinity", "1_000",
            "1,5", "١٢", "１", "1e\u{0}", "\u{0}",
        ] {
            assert_eq!(
                Micros::parse_dollars(not_a_number),
                Err(MoneyError::NotANumber),
                "{not_a_number:?}"
            );
        }
        for too_precise in ["0.0000001", "1e-7", "0.0000015", "1e-99999"] {
            assert_eq!(
                Micros::parse_dollars(too_precise),
                Err(MoneyError::TooPrecise),
                "{too_precise}"
            );
        }
        for too_large in [
            "1000000000.000001",
            "1000000001",
            "99999999999999999",
            "99999999999999999999999999",
            "1e10",
            "1e400",
            "1e99999",
            "9223372036854775807",
            "18446744073709551616",
        ] {
            assert_eq!(
                Micros::parse_dollars(too_large),
                Err(MoneyError::TooLarge),
                "{too_large}"
            );
        }
        let long = "1".repeat(100_000);
        assert!(Micros::parse_dollars(&long).is_err());
    }

    #[test]
    fn json_number_and_string_agree() {
        let a: Micros = serde_json::from_str("0.03").expect("number");
        let b: Micros = serde_json::from_str("\"0.03\"").expect("string");
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).expect("ser"), "\"0.03\"");
        let tiny: Micros = serde_json::from_str("0.000001").expect("number");
        assert_eq!(tiny, Micros(1));
    }

    #[test]
    fn security_json_cannot_smuggle_a_negative_or_huge_amount() {
        for json in [
            "-5",
            "-0.0",
            "-1e-3",
            "\"-1\"",
            "\"+-5e0\"",
            "1e10",
            "1e-7",
            "1e400",
            "true",
            "null",
            "[1]",
            "{}",
        ] {
            assert!(serde_json::from_str::<Micros>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn displays_dollars() {
        assert_eq!(Micros(30_000).to_string(), "0.03");
        assert_eq!(Micros(1_500_000).to_string(), "1.50");
        assert_eq!(Micros(1).to_string(), "0.000001");
        assert_eq!(Micros::MAX.to_string(), "1000000000.00");
    }

    /// Any accepted text is an amount in range whose display reads back as the same amount.
    fn accepted_is_sane(text: &str) -> Result<(), TestCaseError> {
        if let Ok(amount) = Micros::parse_dollars(text) {
            prop_assert!(amount >= Micros::ZERO, "{text:?} → {amount:?}");
            prop_assert!(amount <= Micros::MAX, "{text:?} → {amount:?}");
            prop_assert!(
                !text.contains(['-', '+']) || text.contains(['e', 'E']),
                "{text:?}"
            );
            prop_assert_eq!(Micros::parse_dollars(&amount.to_string()), Ok(amount));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn security_no_random_string_parses_negative_or_out_of_range(
            text in prop_oneof![any::<String>(), "[-+0-9.eE ]{0,24}", "[-+0-9]{0,4}[.eE][-+0-9]{0,8}"],
        ) {
            accepted_is_sane(&text)?;
        }

        #[test]
        fn security_no_near_miss_parses_negative_or_out_of_range(
            sign in prop_oneof![
                Just(""), Just("+"), Just("-"), Just("+-"), Just("-+"), Just("++"), Just(" "),
                Just("\u{2212}"), Just("0-"),
            ],
            whole in prop_oneof![
                4 => "[0-9]{1,12}",
                1 => "[0-9]{13,80}",
                1 => "[0-9٠-٩０-９]{1,6}",
                1 => Just(String::new()),
            ],
            frac in proptest::option::of("[0-9]{0,12}"),
            exponent in proptest::option::of(("[eE]", "[-+]{0,2}", "[0-9]{0,7}")),
            tail in prop_oneof![8 => Just(""), 1 => Just(" "), 1 => Just("\u{0}")],
        ) {
            let mut text = format!("{sign}{whole}");
            if let Some(frac) = frac {
                text.push('.');
                text.push_str(&frac);
            }
            if let Some((e, sign, digits)) = exponent {
                text.push_str(&format!("{e}{sign}{digits}"));
            }
            text.push_str(tail);
            accepted_is_sane(&text)?;
        }

        #[test]
        fn security_huge_digit_runs_and_exponents_never_overflow(
            whole in "[0-9]{1,64}",
            frac in "[0-9]{0,64}",
            exponent in any::<i32>(),
        ) {
            accepted_is_sane(&format!("{whole}.{frac}"))?;
            accepted_is_sane(&format!("{whole}e{exponent}"))?;
            accepted_is_sane(&format!("{whole}.{frac}E{exponent}"))?;
        }

        #[test]
        fn every_amount_in_range_round_trips(micros in 0..=Micros::MAX.0) {
            let amount = Micros(micros);
            prop_assert_eq!(Micros::parse_dollars(&amount.to_string()), Ok(amount));
            let json = serde_json::to_string(&amount).expect("ser");
            prop_assert_eq!(serde_json::from_str::<Micros>(&json).expect("de"), amount);
        }

        #[test]
        fn json_numbers_read_as_their_decimal_value(micros in 0..=10_000_000_000_i64) {
            // A JSON number is an f64; its shortest form reads back to the same micros.
            let dollars = micros as f64 / 1e6;
            let json = serde_json::to_string(&dollars).expect("ser");
            let parsed: Micros = serde_json::from_str(&json).expect("number");
            prop_assert_eq!(parsed, Micros(micros));
        }

        #[test]
        fn saturating_arithmetic_never_wraps(a in any::<i64>(), b in any::<i64>()) {
            let sum = Micros(a).saturating_add(Micros(b));
            prop_assert_eq!(sum.0, a.saturating_add(b));
            let difference = Micros(a).saturating_sub(Micros(b));
            prop_assert_eq!(difference.0, a.saturating_sub(b));
        }
    }
}

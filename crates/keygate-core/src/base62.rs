//! The one base62 alphabet (`0-9A-Za-z`, in that order) of keys, their checksums and ids.
//!
//! The order is part of every issued key's checksum and every request id's sort order: never
//! change it.

use rand::Rng;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Appends `count` random base62 characters drawn from `rng`.
pub(crate) fn push_random(out: &mut String, rng: &mut impl Rng, count: usize) {
    for _ in 0..count {
        out.push(ALPHABET[rng.gen_range(0..62)] as char);
    }
}

/// Appends `n` as exactly `width` base62 digits, most significant first (so fixed-width numbers
/// sort as text); digits above `width` are dropped.
pub(crate) fn push_fixed(out: &mut String, n: u64, width: usize) {
    let mut rest = n;
    let start = out.len();
    for _ in 0..width {
        out.insert(start, ALPHABET[(rest % 62) as usize] as char);
        rest /= 62;
    }
}

/// The value of one base62 digit.
pub(crate) fn digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'Z' => Some(b - b'A' + 10),
        b'a'..=b'z' => Some(b - b'a' + 36),
        _ => None,
    }
}

/// The number written by base62 digits, most significant first; `None` if any is not a digit.
/// For at most 10 digits (62^10 < 2^64), which is all a checksum or a timestamp needs.
pub(crate) fn decode(digits: &[u8]) -> Option<u64> {
    digits
        .iter()
        .try_fold(0u64, |acc, &b| Some(acc * 62 + u64::from(digit(b)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_numbers_round_trip_and_sort_as_text() {
        let mut a = String::from("x");
        push_fixed(&mut a, 61, 3);
        assert_eq!(a, "x00z");
        let mut b = String::new();
        push_fixed(&mut b, 62, 3);
        assert_eq!(b, "010");
        assert!(a[1..] < b[..]);
        assert_eq!(decode(b.as_bytes()), Some(62));
        assert_eq!(decode(b"0-1"), None);
        let mut max = String::new();
        push_fixed(&mut max, u64::from(u32::MAX), 6);
        assert_eq!(decode(max.as_bytes()), Some(u64::from(u32::MAX)));
    }
}

//! Byte sizes and fractions as operators write them, and byte counts for logs.
//!
//! [`parse_size`] reads a memory budget such as `1073741824`, `1GiB`,
//! `512 MiB` or `1.5G`; [`parse_fraction`] reads a threshold such as `0.8`;
//! [`format_bytes`] writes a byte count such as `1.00 GiB`.
//!
//! # Accepted sizes
//!
//! A size is a number, optional white space, and an optional unit:
//!
//! | unit (any case)          | meaning       |
//! |--------------------------|---------------|
//! | none, `B`                | bytes         |
//! | `K`, `Ki`, `KiB`         | 1024 bytes    |
//! | `M`, `Mi`, `MiB`         | 1024² bytes   |
//! | `G`, `Gi`, `GiB`         | 1024³ bytes   |
//! | `T`, `Ti`, `TiB`         | 1024⁴ bytes   |
//! | `KB`, `MB`, `GB`, `TB`   | 1000, 1000², 1000³, 1000⁴ bytes (SI) |
//!
//! Single letters are binary, as in most server configuration (`-Xmx1g`,
//! `ulimit`); the two-letter `…B` forms are decimal, as the SI prefixes say.
//! Units are case-insensitive: there are no bits here, so `1gb` and `1GB` are
//! the same size.
//!
//! The number is decimal digits, optionally with a fraction (`1.5`). A
//! fraction is accepted only when the result is a whole number of bytes:
//! `1.5GiB` is 1610612736 bytes, `0.3B` is refused. Zero, negative sizes,
//! signs, exponents and sizes above `u64::MAX` bytes are refused.

use std::fmt;

/// The largest number of significant digits accepted after the decimal point.
///
/// With the largest unit (1024⁴ = 2⁴⁰) the exactness check multiplies a
/// fraction below 10²⁴ by 2⁴⁰, which stays below `u128::MAX` (about 3.4·10³⁸);
/// no one writes a budget with more digits than this.
const MAX_FRACTION_DIGITS: usize = 24;

/// The forms a size may take, repeated in every error message.
const SIZE_FORMS: &str = "a whole number of bytes such as 1073741824, or a number and a unit \
     such as 512MiB, 1.5GiB or 2G (binary: B, K/KiB, M/MiB, G/GiB, T/TiB; decimal: KB, MB, GB, TB)";

/// What a fraction may be, repeated in every error message.
const FRACTION_FORMS: &str = "a decimal number greater than 0 and at most 1, such as 0.8";

/// Units by their upper-case spelling, with their size; "" is no unit.
///
/// Units stop at tera: a peta budget is far beyond any process, so `P` and
/// `E` are refused as unknown rather than read as something huge.
const UNITS: [(&str, u64); 18] = [
    ("", 1),
    ("B", 1),
    ("K", 1 << 10),
    ("KI", 1 << 10),
    ("KIB", 1 << 10),
    ("M", 1 << 20),
    ("MI", 1 << 20),
    ("MIB", 1 << 20),
    ("G", 1 << 30),
    ("GI", 1 << 30),
    ("GIB", 1 << 30),
    ("T", 1 << 40),
    ("TI", 1 << 40),
    ("TIB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

/// Binary units used by [`format_bytes`], largest first.
const FORMAT_UNITS: [(&str, u64); 6] = [
    ("EiB", 1 << 60),
    ("PiB", 1 << 50),
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
];

/// Why a string is not a byte size.
///
/// The message names the value and the forms that are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError {
    input: String,
    kind: SizeErrorKind,
}

/// Why a string is not a threshold fraction.
///
/// The message names the value and the range that is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FractionError {
    input: String,
    kind: FractionErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SizeErrorKind {
    Empty,
    Negative,
    Malformed,
    UnknownUnit(String),
    TooManyFractionDigits,
    NotWholeBytes,
    Zero,
    Overflow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FractionErrorKind {
    Malformed,
    Percentage,
    NotFinite,
    OutOfRange,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = &self.input;
        match &self.kind {
            SizeErrorKind::Empty => write!(f, "memory size is empty: expected {SIZE_FORMS}"),
            SizeErrorKind::Negative => {
                write!(
                    f,
                    "memory size \"{input}\" is negative: expected {SIZE_FORMS}"
                )
            }
            SizeErrorKind::Malformed => {
                write!(f, "invalid memory size \"{input}\": expected {SIZE_FORMS}")
            }
            SizeErrorKind::UnknownUnit(unit) => write!(
                f,
                "invalid memory size \"{input}\": unknown unit \"{unit}\", expected {SIZE_FORMS}"
            ),
            SizeErrorKind::TooManyFractionDigits => write!(
                f,
                "invalid memory size \"{input}\": at most {MAX_FRACTION_DIGITS} digits are \
                 allowed after the decimal point"
            ),
            SizeErrorKind::NotWholeBytes => write!(
                f,
                "memory size \"{input}\" is not a whole number of bytes: use fewer decimal \
                 places or a smaller unit"
            ),
            SizeErrorKind::Zero => write!(
                f,
                "memory size \"{input}\" is zero: a memory budget must be at least 1 byte"
            ),
            SizeErrorKind::Overflow => write!(
                f,
                "memory size \"{input}\" is too large: the most is {} bytes",
                u64::MAX
            ),
        }
    }
}

impl std::error::Error for SizeError {}

impl fmt::Display for FractionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = &self.input;
        match self.kind {
            FractionErrorKind::Malformed => {
                write!(f, "invalid fraction \"{input}\": expected {FRACTION_FORMS}")
            }
            FractionErrorKind::Percentage => write!(
                f,
                "invalid fraction \"{input}\": percentages are not accepted, expected \
                 {FRACTION_FORMS} (0.8 means 80%)"
            ),
            FractionErrorKind::NotFinite => {
                write!(
                    f,
                    "fraction \"{input}\" is not a finite number: expected {FRACTION_FORMS}"
                )
            }
            FractionErrorKind::OutOfRange => {
                write!(
                    f,
                    "fraction \"{input}\" is out of range: expected {FRACTION_FORMS}"
                )
            }
        }
    }
}

impl std::error::Error for FractionError {}

/// Parses a byte size such as `1073741824`, `1GiB`, `512 MiB` or `1.5G`.
///
/// Leading and trailing white space is ignored; white space between the
/// number and the unit is optional. See the [module docs](self) for the
/// units and their meaning.
///
/// # Errors
///
/// Returns a [`SizeError`] naming the value when it is empty, negative,
/// malformed, has an unknown unit, is not a whole number of bytes, is zero
/// or is larger than `u64::MAX` bytes.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let fail = |kind| SizeError {
        input: input.to_owned(),
        kind,
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(fail(SizeErrorKind::Empty));
    }
    if text.starts_with('-') {
        return Err(fail(SizeErrorKind::Negative));
    }

    // Split into the number and the unit, which may be separated by spaces.
    let number_len = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(number_len);
    let unit = rest.trim_start();
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    let has_point = number.contains('.');
    if whole.is_empty() || (has_point && fraction.is_empty()) || fraction.contains('.') {
        return Err(fail(SizeErrorKind::Malformed));
    }
    let Some(multiplier) = unit_multiplier(unit) else {
        let kind = if unit.starts_with(|c: char| c.is_ascii_alphabetic()) {
            SizeErrorKind::UnknownUnit(unit.to_owned())
        } else {
            SizeErrorKind::Malformed
        };
        return Err(fail(kind));
    };

    // Whole part times the unit, in u128 so overflow is caught once below.
    let whole_bytes = digits_value(whole)
        .and_then(|value| value.checked_mul(u128::from(multiplier)))
        .ok_or_else(|| fail(SizeErrorKind::Overflow))?;

    // The fraction must contribute a whole number of bytes.
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > MAX_FRACTION_DIGITS {
        return Err(fail(SizeErrorKind::TooManyFractionDigits));
    }
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction_scaled = digits_value(fraction).unwrap_or(0) * u128::from(multiplier);
    if !fraction_scaled.is_multiple_of(scale) {
        return Err(fail(SizeErrorKind::NotWholeBytes));
    }

    let total = whole_bytes
        .checked_add(fraction_scaled / scale)
        .ok_or_else(|| fail(SizeErrorKind::Overflow))?;
    match u64::try_from(total) {
        Ok(0) => Err(fail(SizeErrorKind::Zero)),
        Ok(bytes) => Ok(bytes),
        Err(_) => Err(fail(SizeErrorKind::Overflow)),
    }
}

/// Parses a threshold fraction in (0, 1], such as `0.8` or `1`.
///
/// Leading and trailing white space is ignored.
///
/// # Errors
///
/// Returns a [`FractionError`] naming the value when it is not a number, is a
/// percentage, is NaN or infinite, or lies outside (0, 1].
pub fn parse_fraction(input: &str) -> Result<f64, FractionError> {
    let fail = |kind| FractionError {
        input: input.to_owned(),
        kind,
    };
    let text = input.trim();
    if text.ends_with('%') {
        return Err(fail(FractionErrorKind::Percentage));
    }
    let value: f64 = text
        .parse()
        .map_err(|_| fail(FractionErrorKind::Malformed))?;
    if !value.is_finite() {
        return Err(fail(FractionErrorKind::NotFinite));
    }
    if value <= 0.0 || value > 1.0 {
        return Err(fail(FractionErrorKind::OutOfRange));
    }
    Ok(value)
}

/// Formats a byte count for logs with two decimals in the largest binary
/// unit that fits, such as `1.00 GiB`, `1.50 MiB` or `512 B`.
///
/// The result is an approximation for reading; [`parse_size`] reads it back
/// exactly when the count is a whole number of hundredths of its unit.
pub fn format_bytes(bytes: u64) -> String {
    for (name, size) in FORMAT_UNITS {
        if bytes >= size {
            return format!("{:.2} {name}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} B")
}

/// Returns the size of a unit spelled in any case, or `None` if unknown.
fn unit_multiplier(unit: &str) -> Option<u64> {
    let upper = unit.to_ascii_uppercase();
    UNITS
        .iter()
        .find(|(name, _)| *name == upper)
        .map(|&(_, size)| size)
}

/// Returns the value of a string of ASCII digits, or `None` past `u128::MAX`.
///
/// The empty string is 0.
fn digits_value(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |value, digit| {
        value.checked_mul(10)?.checked_add(u128::from(digit - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GIB: u64 = 1 << 30;

    fn size_err(input: &str) -> String {
        match parse_size(input) {
            Ok(bytes) => panic!("{input:?} parsed as {bytes}, expected an error"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn plain_bytes_parse_as_bytes() {
        assert_eq!(parse_size("1073741824"), Ok(GIB));
        assert_eq!(parse_size("1"), Ok(1));
        assert_eq!(parse_size(" 42 "), Ok(42));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn binary_units_are_powers_of_1024() {
        assert_eq!(parse_size("1B"), Ok(1));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1GiB"), Ok(GIB));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("2Gi"), Ok(2 * GIB));
    }

    #[test]
    fn single_letters_are_binary_and_two_letters_are_decimal() {
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("1G"), Ok(GIB));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("1KB"), Ok(1_000));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
    }

    #[test]
    fn units_ignore_case_and_allow_spaces() {
        assert_eq!(parse_size("1gib"), Ok(GIB));
        assert_eq!(parse_size("1GIB"), Ok(GIB));
        assert_eq!(parse_size("1g"), Ok(GIB));
        assert_eq!(parse_size("1 GiB"), Ok(GIB));
        assert_eq!(parse_size("1   gb"), Ok(1_000_000_000));
        assert_eq!(parse_size("512 b"), Ok(512));
    }

    #[test]
    fn fractions_are_accepted_when_exact() {
        assert_eq!(parse_size("1.5GiB"), Ok(GIB + GIB / 2));
        assert_eq!(parse_size("0.5K"), Ok(512));
        assert_eq!(parse_size("1.000B"), Ok(1));
        assert_eq!(parse_size("0.001KB"), Ok(1));
        assert_eq!(parse_size("0.0009765625KiB"), Ok(1));
    }

    #[test]
    fn inexact_fractions_are_rejected() {
        assert!(size_err("0.3B").contains("is not a whole number of bytes"));
        assert!(size_err("1.5").contains("\"1.5\" is not a whole number of bytes"));
        assert!(size_err("0.0001KB").contains("not a whole number"));
        let long = format!("1.{}1GiB", "0".repeat(30));
        assert!(size_err(&long).contains("at most 24 digits"));
    }

    #[test]
    fn zero_negative_and_empty_are_rejected() {
        assert!(size_err("0").contains("memory size \"0\" is zero"));
        assert!(size_err("0GiB").contains("is zero"));
        assert!(size_err("0.0 MiB").contains("is zero"));
        assert!(size_err("-1GiB").contains("memory size \"-1GiB\" is negative"));
        assert!(size_err("").contains("memory size is empty"));
        assert!(size_err("   ").contains("memory size is empty"));
    }

    #[test]
    fn overflow_is_rejected() {
        assert!(size_err("18446744073709551616").contains("is too large"));
        assert!(size_err("16777216TiB").contains("is too large"));
        assert!(size_err(&"9".repeat(60)).contains("is too large"));
    }

    #[test]
    fn malformed_sizes_name_value_and_forms() {
        for input in [
            "abc", "GiB", "+1", "1e9", ".5G", "1.G", "1.2.3", "1 000", "1_000",
        ] {
            let message = size_err(input);
            assert!(message.contains(&format!("\"{input}\"")), "{message}");
            assert!(message.contains("512MiB"), "{message}");
        }
        assert!(size_err("5XB").contains("unknown unit \"XB\""));
        assert!(size_err("1PiB").contains("unknown unit \"PiB\""));
    }

    #[test]
    fn fractions_in_range_parse() {
        assert_eq!(parse_fraction("0.8"), Ok(0.8));
        assert_eq!(parse_fraction("1"), Ok(1.0));
        assert_eq!(parse_fraction(" 0.05 "), Ok(0.05));
        assert_eq!(parse_fraction("1e-3"), Ok(0.001));
    }

    #[test]
    fn fractions_out_of_range_or_not_numbers_are_rejected() {
        let message = |input: &str| parse_fraction(input).unwrap_err().to_string();
        assert!(message("0").contains("fraction \"0\" is out of range"));
        assert!(message("-0.5").contains("is out of range"));
        assert!(message("1.01").contains("is out of range"));
        assert!(message("NaN").contains("\"NaN\" is not a finite number"));
        assert!(message("inf").contains("is not a finite number"));
        assert!(message("abc").contains("invalid fraction \"abc\""));
        assert!(message("").contains("invalid fraction \"\""));
        assert!(message("80%").contains("percentages are not accepted"));
        assert!(message("abc").contains("greater than 0 and at most 1"));
    }

    #[test]
    fn format_bytes_picks_the_largest_binary_unit() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.00 KiB");
        assert_eq!(format_bytes(GIB), "1.00 GiB");
        assert_eq!(format_bytes(GIB + GIB / 2), "1.50 GiB");
        assert_eq!(format_bytes(u64::MAX), "16.00 EiB");
    }

    proptest! {
        #[test]
        fn formatted_whole_unit_sizes_parse_back(count in 1u64..1024, shift in 0usize..5) {
            let unit = [1u64, 1 << 10, 1 << 20, 1 << 30, 1 << 40][shift];
            let bytes = count * unit;
            prop_assert_eq!(parse_size(&format_bytes(bytes)), Ok(bytes));
        }

        #[test]
        fn arbitrary_strings_never_panic(input in any::<String>()) {
            let _ = parse_size(&input);
            let _ = parse_fraction(&input);
        }

        #[test]
        fn size_like_strings_never_panic(input in "[-+ 0-9.]{0,30}[ ]?[kKmMgGtTiIbBxX]{0,4}") {
            if let Ok(bytes) = parse_size(&input) {
                prop_assert!(bytes > 0);
            }
        }
    }
}

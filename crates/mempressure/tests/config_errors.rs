//! Size and fraction parsing on arbitrary text, unicode included: an error
//! or a value, never a panic, and an error always names the input.

use mempressure::size::{parse_fraction, parse_size};
use proptest::prelude::*;

/// Text built from the pieces size and fraction strings are made of, so that
/// near-valid inputs are common: digits, points, signs, units, space and
/// unicode digits, letters and white space.
fn size_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[0-9]{1,25}",
        Just(".".to_owned()),
        Just("-".to_owned()),
        Just("+".to_owned()),
        Just(" ".to_owned()),
        Just("e".to_owned()),
        Just("%".to_owned()),
        prop::sample::select(vec![
            "B", "K", "KiB", "KB", "M", "MiB", "MB", "G", "GiB", "GB", "T", "TiB", "TB", "kib",
            "XB", "inf", "NaN",
        ])
        .prop_map(str::to_owned),
        // Unicode: Arabic-Indic and full-width digits, a non-breaking and an
        // ideographic space, a combining mark, an emoji, the micro sign.
        prop::sample::select(vec![
            "٣", "１", "\u{a0}", "\u{3000}", "\u{301}", "🧠", "µ", "Ｍ"
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn parse_size_never_panics_on_any_string(input in any::<String>()) {
        if let Err(error) = parse_size(&input) {
            prop_assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn parse_size_never_panics_on_size_like_text(input in size_like()) {
        match parse_size(&input) {
            Ok(bytes) => prop_assert!(bytes > 0),
            Err(error) if input.trim().is_empty() => {
                prop_assert!(error.to_string().contains("empty"), "{error}");
            }
            Err(error) => prop_assert!(
                error.to_string().contains(input.trim()),
                "{error} does not name {input:?}"
            ),
        }
    }

    #[test]
    fn parse_fraction_never_panics_on_any_string(input in any::<String>()) {
        if let Ok(value) = parse_fraction(&input) {
            prop_assert!(value > 0.0 && value <= 1.0);
        }
    }

    #[test]
    fn parse_fraction_never_panics_on_fraction_like_text(input in size_like()) {
        match parse_fraction(&input) {
            Ok(value) => prop_assert!(value > 0.0 && value <= 1.0),
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }
}

#[test]
fn unicode_digits_and_units_are_refused_not_misread() {
    for input in ["٣MiB", "１GiB", "1Ｍ", "1µB", "🧠", "1G\u{301}"] {
        let error = parse_size(input).expect_err(input);
        assert!(
            error.to_string().contains(input.trim()),
            "{error} does not name {input:?}"
        );
    }
    for input in ["٠.٥", "０.５", "0.5\u{301}", "½"] {
        assert!(parse_fraction(input).is_err(), "{input:?} was accepted");
    }
}

#[test]
fn unicode_white_space_counts_as_white_space() {
    // Rust's trim knows Unicode white space; so does the unit separator.
    assert_eq!(parse_size("1\u{a0}GiB").unwrap(), 1 << 30);
    assert_eq!(parse_size("\u{3000}2M\u{3000}").unwrap(), 2 << 20);
    assert_eq!(parse_fraction("\u{a0}0.5").unwrap(), 0.5);
}

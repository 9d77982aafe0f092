//! Property tests of the RESP2 parser on hostile input: arbitrary bytes and
//! mutated valid requests never panic nor claim more bytes than given, and a
//! complete request parses the same whatever follows it.

use proptest::prelude::*;
use streamlet::resp::{parse, parse_into, Limits, Request};

/// The default limits and tight ones, so both the ordinary paths and the
/// limit checks are hit.
fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        (1usize..64, 0usize..8, 0usize..32).prop_map(|(bulk, array, inline)| Limits {
            max_bulk_bytes: bulk,
            max_array_len: array,
            max_inline_bytes: inline,
        }),
    ]
}

/// A few arguments of any bytes, the command name first.
fn args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 1..5)
}

/// Arguments an inline line carries as they are: no white space, quotes or
/// backslashes, and not starting with `*` (which makes an array).
fn inline_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec("[a-zA-Z0-9_:.+-][a-zA-Z0-9_:.+*-]{0,11}", 1..5)
        .prop_map(|args| args.into_iter().map(String::into_bytes).collect())
}

fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Damage done to a valid request.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    Truncate {
        at: usize,
    },
    /// Repeats the length line starting at the `nth` `*` or `$`.
    DuplicateLengthLine {
        nth: usize,
    },
    /// Replaces the digits after the `nth` `*` or `$` with this number.
    HugeNumber {
        nth: usize,
        number: String,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge = prop_oneof![
        Just("9223372036854775807".to_owned()),
        Just("9223372036854775808".to_owned()),
        Just("-9223372036854775808".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("99999999999999999999999999999".to_owned()),
        Just("-2".to_owned()),
        Just("+5".to_owned()),
        Just("".to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        any::<usize>().prop_map(|nth| Mutation::DuplicateLengthLine { nth }),
        (any::<usize>(), huge).prop_map(|(nth, number)| Mutation::HugeNumber { nth, number }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

/// Positions of the `*` and `$` that open length lines.
fn length_lines(buf: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        if (buf[pos] == b'*' || buf[pos] == b'$') && (pos == 0 || buf[pos - 1] == b'\n') {
            starts.push(pos);
        }
        pos += 1;
    }
    starts
}

fn line_end(buf: &[u8], start: usize) -> usize {
    buf[start..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(buf.len(), |at| start + at + 2)
}

fn apply(mut buf: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    if buf.is_empty() {
        return buf;
    }
    let lines = length_lines(&buf);
    match mutation {
        Mutation::FlipBit { at, bit } => {
            let at = at % buf.len();
            buf[at] ^= 1 << bit;
        }
        Mutation::Truncate { at } => buf.truncate(at % buf.len()),
        Mutation::DuplicateLengthLine { nth } if !lines.is_empty() => {
            let start = lines[nth % lines.len()];
            let line = buf[start..line_end(&buf, start)].to_vec();
            buf.splice(start..start, line);
        }
        Mutation::HugeNumber { nth, number } if !lines.is_empty() => {
            let start = lines[nth % lines.len()];
            let end = line_end(&buf, start).saturating_sub(2).max(start + 1);
            buf.splice(start + 1..end, number.bytes());
        }
        Mutation::Insert { at, bytes } => {
            let at = at % (buf.len() + 1);
            buf.splice(at..at, bytes.iter().copied());
        }
        _ => {}
    }
    buf
}

/// Parses and checks what every outcome must satisfy.
fn parse_checked(buf: &[u8], limits: &Limits) -> Option<(Request, usize)> {
    match parse(buf, limits) {
        Ok(Some((request, used))) => {
            assert!(used > 0, "a parse that used nothing would loop forever");
            assert!(
                used <= buf.len(),
                "used {used} of {} bytes: {:?}",
                buf.len(),
                String::from_utf8_lossy(buf)
            );
            Some((request, used))
        }
        Ok(None) | Err(_) => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic_nor_overrun(
        buf in prop::collection::vec(any::<u8>(), 0..256),
        limits in limits(),
    ) {
        parse_checked(&buf, &limits);
    }

    #[test]
    fn protocol_shaped_bytes_never_panic_nor_overrun(
        pieces in prop::collection::vec(
            prop_oneof![
                Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()),
                Just(b"\n".to_vec()), Just(b"\"".to_vec()), Just(b"'".to_vec()),
                Just(b"\\x".to_vec()), Just(b"-1".to_vec()), Just(b" ".to_vec()),
                "[0-9]{1,20}".prop_map(String::into_bytes),
                "[a-z]{1,4}".prop_map(String::into_bytes),
            ],
            0..40,
        ),
        limits in limits(),
    ) {
        parse_checked(&pieces.concat(), &limits);
    }

    #[test]
    fn mutated_requests_never_panic_nor_overrun(
        args in args(),
        mutations in prop::collection::vec(mutation(), 1..4),
        limits in limits(),
    ) {
        let mut buf = multibulk(&args);
        for mutation in &mutations {
            buf = apply(buf, mutation);
        }
        // Scan it the way a connection does: request after request.
        let mut consumed = 0;
        while let Some((_, used)) = parse_checked(&buf[consumed..], &limits) {
            consumed += used;
        }
    }

    #[test]
    fn a_complete_request_parses_the_same_whatever_follows(
        (args, inline) in prop_oneof![
            args().prop_map(|args| (args, false)),
            inline_args().prop_map(|args| (args, true)),
        ],
        suffix in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let limits = Limits::default();
        let request = if inline {
            let mut line = args.join(&b' ');
            line.extend_from_slice(b"\r\n");
            line
        } else {
            multibulk(&args)
        };
        let alone = parse(&request, &limits).unwrap().unwrap();
        prop_assert_eq!(alone.1, request.len());
        prop_assert_eq!(alone.0.args(), &args[..]);
        let mut followed = request.clone();
        followed.extend_from_slice(&suffix);
        let with_suffix = parse(&followed, &limits).unwrap().unwrap();
        prop_assert_eq!(with_suffix, alone);
    }

    #[test]
    fn a_reused_request_parses_every_request_as_a_fresh_one(
        requests in prop::collection::vec(
            prop_oneof![
                args().prop_map(|args| (args, false)),
                inline_args().prop_map(|args| (args, true)),
            ],
            1..8,
        ),
    ) {
        // One buffer of several requests, parsed one after another into the
        // same request, recycled between them as a connection does.
        let limits = Limits::default();
        let mut buf = Vec::new();
        for (args, inline) in &requests {
            if *inline {
                buf.extend_from_slice(&args.join(&b' '));
                buf.extend_from_slice(b"\r\n");
            } else {
                buf.extend_from_slice(&multibulk(args));
            }
        }
        let mut reused = Request::default();
        let mut at = 0;
        for (args, _) in &requests {
            let used = parse_into(&buf[at..], &limits, &mut reused).unwrap().unwrap();
            let (fresh, fresh_used) = parse(&buf[at..], &limits).unwrap().unwrap();
            prop_assert_eq!(used, fresh_used);
            prop_assert_eq!(reused.args(), fresh.args());
            prop_assert_eq!(reused.args(), &args[..]);
            reused.recycle();
            at += used;
        }
        prop_assert_eq!(at, buf.len());
    }
}

//! Property tests of the RESP2 parser: no input panics it, and a pipelined
//! stream parses to the same requests however it is split.

use proptest::prelude::*;
use streamlet::resp::{parse, Limits, Request};

/// Encodes arguments as an array of bulk strings.
fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parses everything complete in `buf`, dropping consumed bytes as a server
/// would; returns the non-empty requests and the unconsumed rest.
fn drain(buf: &mut Vec<u8>, limits: &Limits, out: &mut Vec<Request>) {
    while let Some((request, used)) = parse(buf, limits).unwrap() {
        assert!(used > 0, "a parsed request must consume bytes");
        buf.drain(..used);
        if !request.is_empty() {
            out.push(request);
        }
    }
}

fn arg() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn inline_word() -> impl Strategy<Value = Vec<u8>> {
    "[A-Za-z0-9_:-]{1,12}".prop_map(String::into_bytes)
}

/// A request and its bytes, in either wire form.
fn request() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<u8>)> {
    prop_oneof![
        proptest::collection::vec(arg(), 1..6).prop_map(|args| {
            let bytes = multibulk(&args);
            (args, bytes)
        }),
        (
            proptest::collection::vec(inline_word(), 1..5),
            any::<bool>()
        )
            .prop_map(|(words, crlf)| {
                let mut bytes = words.join(&b' ');
                bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                (words, bytes)
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes give a request, an error or "need more", never a
    /// panic, and a reported length never exceeds the input.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let limits = Limits { max_bulk_bytes: 64, max_array_len: 8, max_inline_bytes: 32 };
        if let Ok(Some((_, used))) = parse(&bytes, &limits) {
            prop_assert!(used <= bytes.len());
        }
        let _ = parse(&bytes, &Limits::default());
    }

    /// Bytes that look almost like requests (random prefixes of valid ones,
    /// with a byte changed) never panic either.
    #[test]
    fn mutated_requests_never_panic(
        (_, bytes) in request(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = bytes;
        let at = at.index(bytes.len());
        bytes[at] = byte;
        let _ = parse(&bytes, &Limits::default());
        let _ = parse(&bytes[..at], &Limits::default());
    }

    /// A pipelined stream parses to the same requests whether it arrives
    /// whole or in pieces split at arbitrary points.
    #[test]
    fn any_split_of_a_pipeline_parses_the_same(
        requests in proptest::collection::vec(request(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let stream: Vec<u8> = requests.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
        let expected: Vec<Vec<Vec<u8>>> = requests.into_iter().map(|(args, _)| args).collect();
        let limits = Limits::default();

        let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
        points.sort_unstable();
        points.push(stream.len());
        let mut buf = Vec::new();
        let mut parsed = Vec::new();
        let mut from = 0;
        for point in points {
            buf.extend_from_slice(&stream[from..point]);
            from = point;
            drain(&mut buf, &limits, &mut parsed);
        }

        prop_assert!(buf.is_empty());
        let parsed: Vec<Vec<Vec<u8>>> = parsed.into_iter().map(Request::into_args).collect();
        prop_assert_eq!(parsed, expected);
    }
}

/// A client that declares a huge bulk and sends nothing more is only
/// "incomplete": the parser neither fails nor needs the declared bytes.
#[test]
fn declared_bulk_without_data_is_incomplete() {
    let limits = Limits {
        max_bulk_bytes: 1 << 30,
        ..Limits::default()
    };
    assert_eq!(parse(b"*1\r\n$1073741824\r\n", &limits).unwrap(), None);
}

/// A bulk over the limit is refused as soon as its length line arrives.
#[test]
fn bulk_over_the_limit_is_refused_from_its_header() {
    let error = parse(b"*1\r\n$16777217\r\n", &Limits::default()).unwrap_err();
    assert_eq!(error.to_string(), "Protocol error: invalid bulk length");
}

/// An array longer than the limit is refused before any element arrives.
#[test]
fn array_over_the_limit_is_refused_from_its_header() {
    let limits = Limits {
        max_array_len: 3,
        ..Limits::default()
    };
    let error = parse(b"*4\r\n", &limits).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Protocol error: invalid multibulk length"
    );
    assert!(parse(b"*3\r\n", &limits).unwrap().is_none());
}

/// Inline requests keep Redis's quoting, e.g. from redis-cli pipe mode.
#[test]
fn inline_quotes_are_decoded() {
    let (request, used) = parse(b"XADD s * f \"two words\"\r\n", &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(used, 24);
    assert_eq!(request.args()[4], b"two words");
}

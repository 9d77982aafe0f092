//! The command line every variant binary shares.

use core::fmt;

/// What `--help` and an argument error print.
pub(crate) const USAGE: &str = "usage: <variant> --workload W [--threads N] [--ops K]
                 [--size-bytes S] [--live L] [--count-flushes]
                 [--sample-accuracy]

  --workload W      tight | ring | prodcons | server | accuracy
  --threads N       threads running the workload at once, each its own work;
                    for prodcons, producer/consumer pairs (2N threads) [1]
  --ops K           operation pairs per thread (per pair for prodcons; map
                    entries for server and accuracy) [1000000]
  --size-bytes S    fixed allocation size for tight, ring and prodcons;
                    0 mixes 16-512 bytes [0]
  --live L          live objects in the ring [1024]
  --count-flushes   ring on a tracking allocator: count counter flushes in
                    an untimed pass first and print flushes_per_op
  --sample-accuracy on a tracking allocator: run tight, ring, prodcons or
                    server untimed (repeated until 50 samples or 2.5 s)
                    while a thread compares the tracked total with
                    jemalloc's stats.allocated every 2 ms; print one
                    accuracy_sampled line instead of the result line";

/// Allocation sizes above this are refused: the ring keeps `live` of them.
const MAX_SIZE_BYTES: usize = 16 << 20;
/// More threads than this is a typo on the machines these benchmarks target.
const MAX_THREADS: usize = 1024;
/// The ring's live set is bounded so a large size cannot exhaust memory.
const MAX_LIVE: usize = 1 << 20;

/// Which loop a run executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Allocate and at once free small mixed sizes.
    Tight,
    /// Keep a ring of live objects, freeing the oldest for each new one.
    Ring,
    /// Allocate on producer threads and free on consumer threads.
    ProdCons,
    /// Build, reshape and drop a `HashMap<String, Vec<u8>>`.
    Server,
    /// Compare the tracked total with jemalloc's `stats.allocated`.
    Accuracy,
}

impl Workload {
    /// The name on the command line and in result lines.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Tight => "tight",
            Workload::Ring => "ring",
            Workload::ProdCons => "prodcons",
            Workload::Server => "server",
            Workload::Accuracy => "accuracy",
        }
    }

    fn from_name(name: &str) -> Option<Workload> {
        [
            Workload::Tight,
            Workload::Ring,
            Workload::ProdCons,
            Workload::Server,
            Workload::Accuracy,
        ]
        .into_iter()
        .find(|w| w.name() == name)
    }
}

/// One run's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The loop to run.
    pub workload: Workload,
    /// Threads (pairs for prodcons) running it at once.
    pub threads: usize,
    /// Operation pairs per thread.
    pub ops: u64,
    /// Fixed allocation size, or 0 for the mixed 16-512 byte sequence.
    pub size_bytes: usize,
    /// Live objects in the ring.
    pub live: usize,
    /// Whether to count flushes in an untimed pass first.
    pub count_flushes: bool,
    /// Whether to sample the tracked total against jemalloc's figure while
    /// the workload runs untimed, instead of timing it.
    pub sample_accuracy: bool,
}

/// A command line that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgsError {
    message: String,
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ArgsError {}

fn error(message: String) -> ArgsError {
    ArgsError { message }
}

impl Args {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    ///
    /// An [`ArgsError`] naming the flag and what it allows, for an unknown
    /// flag, a missing or malformed value, or a value out of range.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, ArgsError> {
        let mut workload = None;
        let mut parsed = Args {
            workload: Workload::Tight,
            threads: 1,
            ops: 1_000_000,
            size_bytes: 0,
            live: 1024,
            count_flushes: false,
            sample_accuracy: false,
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "--count-flushes" => {
                    parsed.count_flushes = true;
                    continue;
                }
                "--sample-accuracy" => {
                    parsed.sample_accuracy = true;
                    continue;
                }
                _ => {}
            }
            let value = match flag.as_str() {
                "--workload" | "--threads" | "--ops" | "--size-bytes" | "--live" => args
                    .next()
                    .ok_or_else(|| error(format!("{flag} needs a value")))?,
                other => return Err(error(format!("unknown argument {other:?}"))),
            };
            match flag.as_str() {
                "--workload" => {
                    workload = Some(Workload::from_name(&value).ok_or_else(|| {
                        error(format!(
                            "--workload {value:?}: expected tight, ring, prodcons, server or \
                             accuracy"
                        ))
                    })?);
                }
                "--threads" => parsed.threads = number(&flag, &value, 1, MAX_THREADS as u64)?,
                "--ops" => parsed.ops = number(&flag, &value, 1, u64::MAX / 2)?,
                "--size-bytes" => {
                    parsed.size_bytes = number(&flag, &value, 0, MAX_SIZE_BYTES as u64)?
                }
                _ => parsed.live = number(&flag, &value, 1, MAX_LIVE as u64)?,
            }
        }
        parsed.workload = workload.ok_or_else(|| error("--workload is required".into()))?;
        if parsed.sample_accuracy {
            if parsed.workload == Workload::Accuracy {
                return Err(error(
                    "--sample-accuracy samples a timed workload: use it with tight, ring, \
                     prodcons or server"
                        .into(),
                ));
            }
            if parsed.count_flushes {
                return Err(error(
                    "--sample-accuracy and --count-flushes are separate runs: pass one".into(),
                ));
            }
        }
        Ok(parsed)
    }
}

/// Parses `value` as an integer in `min..=max` for `flag`.
fn number<T: TryFrom<u64>>(flag: &str, value: &str, min: u64, max: u64) -> Result<T, ArgsError> {
    let out_of_range = || {
        error(format!(
            "{flag} {value:?}: expected an integer in {min}..={max}"
        ))
    };
    let n: u64 = value.parse().map_err(|_| out_of_range())?;
    if !(min..=max).contains(&n) {
        return Err(out_of_range());
    }
    T::try_from(n).map_err(|_| out_of_range())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, ArgsError> {
        Args::parse(line.split_whitespace().map(String::from))
    }

    #[test]
    fn every_flag_is_read() {
        let args = parse(
            "--workload ring --threads 2 --ops 500 --size-bytes 4096 --live 64 --count-flushes",
        )
        .unwrap();
        assert_eq!(args.workload, Workload::Ring);
        assert_eq!(
            (args.threads, args.ops, args.size_bytes, args.live),
            (2, 500, 4096, 64)
        );
        assert!(args.count_flushes);
    }

    #[test]
    fn sample_accuracy_is_read_with_a_timed_workload() {
        let args = parse("--workload prodcons --ops 2000 --sample-accuracy").unwrap();
        assert!(args.sample_accuracy);
        assert_eq!((args.workload, args.ops), (Workload::ProdCons, 2000));
        assert!(!parse("--workload ring").unwrap().sample_accuracy);
    }

    #[test]
    fn sample_accuracy_refuses_the_accuracy_workload() {
        let err = parse("--workload accuracy --sample-accuracy").unwrap_err();
        assert!(err.to_string().starts_with("--sample-accuracy"), "{err}");
        assert!(err.to_string().contains("server"), "{err}");
    }

    #[test]
    fn sample_accuracy_refuses_a_flush_count_in_the_same_run() {
        let err = parse("--workload ring --sample-accuracy --count-flushes").unwrap_err();
        assert!(err.to_string().contains("--count-flushes"), "{err}");
    }

    #[test]
    fn missing_workload_is_an_error() {
        let err = parse("--threads 2").unwrap_err();
        assert!(err.to_string().contains("--workload"), "{err}");
    }

    #[test]
    fn zero_threads_names_the_allowed_range() {
        let err = parse("--workload tight --threads 0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--threads \"0\": expected an integer in 1..=1024"
        );
    }

    #[test]
    fn unknown_workload_lists_the_known_ones() {
        let err = parse("--workload fast").unwrap_err();
        assert!(err.to_string().contains("prodcons"), "{err}");
    }

    #[test]
    fn a_flag_without_its_value_is_an_error() {
        let err = parse("--workload tight --ops").unwrap_err();
        assert_eq!(err.to_string(), "--ops needs a value");
    }
}

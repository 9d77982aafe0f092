//! The `cap` variant: `cap::Cap` over jemalloc with no limit.

#[global_allocator]
static ALLOC: cap::Cap<tikv_jemallocator::Jemalloc> =
    cap::Cap::new(tikv_jemallocator::Jemalloc, usize::MAX);

fn main() -> std::process::ExitCode {
    mempressure_benches::run(mempressure_benches::variants::CAP)
}

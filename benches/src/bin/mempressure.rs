//! The `mempressure` variant: the tracking allocator over jemalloc, no scope.

#[global_allocator]
static ALLOC: mempressure_alloc::Allocator = mempressure_alloc::Allocator::jemalloc();

fn main() -> std::process::ExitCode {
    mempressure_benches::run(mempressure_benches::variants::MEMPRESSURE)
}

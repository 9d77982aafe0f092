//! The `mempressure_scoped` variant: the tracking allocator with every
//! workload thread inside a component's scope.

#[global_allocator]
static ALLOC: mempressure_alloc::Allocator = mempressure_alloc::Allocator::jemalloc();

fn main() -> std::process::ExitCode {
    mempressure_benches::run(mempressure_benches::variants::MEMPRESSURE_SCOPED)
}

//! The `jemalloc` variant: bare jemalloc, the floor.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    mempressure_benches::run(mempressure_benches::variants::JEMALLOC)
}

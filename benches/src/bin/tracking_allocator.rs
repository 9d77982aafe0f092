//! The `tracking_allocator` variant: the tracking-allocator crate over
//! jemalloc, with a tracker installed and tracking enabled.

#[global_allocator]
static ALLOC: tracking_allocator::Allocator<tikv_jemallocator::Jemalloc> =
    tracking_allocator::Allocator::from_allocator(tikv_jemallocator::Jemalloc);

fn main() -> std::process::ExitCode {
    mempressure_benches::run(mempressure_benches::variants::TRACKING_ALLOCATOR)
}

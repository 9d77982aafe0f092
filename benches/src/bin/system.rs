//! The `system` variant: the platform's malloc.

#[global_allocator]
static ALLOC: std::alloc::System = std::alloc::System;

fn main() -> std::process::ExitCode {
    mempressure_benches::run(mempressure_benches::variants::SYSTEM)
}

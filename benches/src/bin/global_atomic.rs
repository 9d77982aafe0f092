//! The `global_atomic` variant: jemalloc plus one shared atomic counter.

#[global_allocator]
static ALLOC: mempressure_benches::GlobalAtomic = mempressure_benches::GlobalAtomic;

fn main() -> std::process::ExitCode {
    mempressure_benches::run(mempressure_benches::variants::GLOBAL_ATOMIC)
}

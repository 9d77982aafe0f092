//! Shows the counters and a scope at work: a buffer made in one component,
//! handed to another thread, moved to a cache and freed.

use std::thread;

use mempressure_alloc::{scope, snapshot, transfer_vec, ComponentId, ComponentSet};

#[global_allocator]
static ALLOC: mempressure_alloc::Allocator = mempressure_alloc::Allocator::jemalloc();

mempressure_alloc::components! {
    /// Where this example's memory goes.
    pub enum Component {
        Connections => "connections",
        RequestBuffers => "request_buffers",
        SegmentCache => "segment_cache",
        IndexCache => "index_cache",
    }
}

fn show(step: &str) {
    let snap = snapshot();
    let parts: Vec<String> = Component::NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let id = ComponentId::new(i).unwrap_or(ComponentId::OTHER);
            format!("{name}={}", snap.component_bytes(id))
        })
        .collect();
    println!(
        "{step:<44} total={:<9} {}",
        snap.total_bytes(),
        parts.join(" ")
    );
}

fn main() {
    show("start");

    let request = {
        let _scope = scope!(Component::RequestBuffers);
        vec![0u8; 256 * 1024]
    };
    show("256 KiB read under request_buffers");

    let request = thread::spawn(move || {
        let _scope = scope!(Component::Connections);
        let mut request = request;
        request.truncate(100 * 1024);
        request.shrink_to_fit();
        request
    })
    .join()
    .expect("worker thread panicked");
    show("shrunk to 100 KiB on another thread");

    match transfer_vec(&request, Component::SegmentCache.into()) {
        Ok(from) => println!("moved from component {} without copying", from.index()),
        Err(err) => println!("could not move: {err}"),
    }
    show("kept as a segment_cache entry");

    let index: Vec<u64> = {
        let _scope = scope!(Component::IndexCache);
        (0..10_000).collect()
    };
    show("an index of 10 000 entries");

    drop(request);
    drop(index);
    show("all freed");
}

//! Project tasks (being written).

fn main() {}

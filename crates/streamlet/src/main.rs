//! streamlet (being written).

fn main() {}

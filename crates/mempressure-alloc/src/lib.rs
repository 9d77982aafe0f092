//! Allocator shim (being written).

//! Alignments up to and beyond the page size are respected and counted.

mod common;

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};

use common::{bytes_of, Component};
use mempressure_alloc::scope;

#[test]
fn large_alignments_are_respected_and_counted() {
    let _scope = scope!(Component::SegmentCache);
    for shift in 3..=16 {
        let align = 1usize << shift;
        for size in [1usize, 1000, 4096, 70_000] {
            let layout = Layout::from_size_align(size, align).unwrap();
            let before = bytes_of(Component::SegmentCache);

            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe {
                if shift % 2 == 0 {
                    alloc(layout)
                } else {
                    alloc_zeroed(layout)
                }
            };
            assert!(!ptr.is_null());
            assert_eq!(ptr as usize % align, 0, "size {size} align {align}");
            let owned = if size >= mempressure_alloc::TAG_MIN_BYTES {
                size as u64
            } else {
                0
            };
            assert_eq!(bytes_of(Component::SegmentCache), before + owned);

            // SAFETY: `ptr` came from `alloc` with `layout`; the new size is
            // non-zero and does not overflow when rounded to `align`.
            let grown = unsafe { realloc(ptr, layout, size * 2) };
            assert!(!grown.is_null());
            assert_eq!(grown as usize % align, 0);
            let grown_layout = Layout::from_size_align(size * 2, align).unwrap();
            let owned = if size * 2 >= mempressure_alloc::TAG_MIN_BYTES {
                (size * 2) as u64
            } else {
                0
            };
            assert_eq!(bytes_of(Component::SegmentCache), before + owned);

            // SAFETY: `grown` is live with `grown_layout`.
            unsafe { dealloc(grown, grown_layout) };
            assert_eq!(bytes_of(Component::SegmentCache), before);
        }
    }
}

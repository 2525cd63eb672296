//! Arbitrary bytes through every path of the escaping scan (`scan::Path::available()`:
//! scalar, SSE2, AVX2 where the CPU has it; scalar and NEON on aarch64) and through
//! `scan::specials`, each at every offset of the first 32 bytes (so that blocks fall at
//! every alignment): each must find exactly the special bytes and the non-ASCII answer of
//! the byte-by-byte definition.

#![no_main]

use flb_out_cloudwatch::scan::{self, Path};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for offset in 0..data.len().min(32) {
        let bytes = &data[offset..];
        let want = scan::reference(bytes);
        for path in Path::available() {
            assert_eq!(path.found(bytes), want, "{path:?} at offset {offset}");
        }
        let mut at = Vec::new();
        let non_ascii = scan::specials(bytes, |i| at.push(i));
        assert_eq!((at, non_ascii), want, "specials at offset {offset}");
    }
});

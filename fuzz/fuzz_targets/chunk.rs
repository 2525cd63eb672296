//! Arbitrary bytes as a chunk: `prepare::prepare` (three configurations), then
//! `batch::plan` on each stream's events. The invariants are in `../check.rs`, shared with
//! the stable smoke test `tests/it/hostile_.rs`.

#![no_main]

#[path = "../check.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::chunk("fuzz", data);
});

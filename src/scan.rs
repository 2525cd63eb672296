//! The escaping scan: where a string needs JSON escaping, and whether it holds a byte that
//! is not ASCII. The one hot loop of [`crate::encode`], vectorised.
//!
//! [`specials`] calls back with the index of every byte that must be escaped inside a JSON
//! string (`"`, `\` and the control characters below 0x20), in increasing order, and returns
//! whether any byte is 0x80 or above (only then does the encoder check UTF-8). Every path
//! below gives exactly the same calls and answer; [`scalar`] is the reference:
//!
//! - x86-64: 32 bytes at a time with AVX2 when the CPU has it (detected at run time, once,
//!   by std), else 16 at a time with SSE2 (part of x86-64 itself); strings shorter than one
//!   block take the scalar path.
//! - aarch64: 16 bytes at a time with NEON (part of every aarch64 CPU that Linux runs on,
//!   and detected the same way: std answers at compile time where the target has it);
//!   strings shorter than one block take the scalar path.
//! - anything else: the scalar path, eight bytes per word with bit arithmetic.
//!
//! # Safety
//!
//! This module and `abi` are the only ones allowed `unsafe`. Here it is used for exactly
//! these things, each argued where it happens:
//! - unaligned vector loads of `bytes[at..at + N]`, only ever with `at + N <= bytes.len()`
//!   (asserted; every block is inside the slice, and the last block of a string overlaps
//!   the one before it instead of reading past the end);
//! - calling the function compiled for AVX2 only after `is_x86_feature_detected!("avx2")`
//!   said the CPU has it;
//! - calling the function compiled for SSE2, which every x86-64 CPU has;
//! - calling the function compiled for NEON only after `is_aarch64_feature_detected!("neon")`
//!   said the CPU has it.
//!
//! Nothing is written through a pointer, nothing is stored, and the callback is plain safe
//! code. Tests compare every path with a byte-by-byte definition (proptest, and every special
//! byte at every position of every length up to 100); `fuzz/fuzz_targets/scan.rs` does the
//! same for any input.

/// Whether `b` must be escaped inside a JSON string: `"`, `\` and control characters.
#[inline]
pub fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Calls `special(i)`, in increasing order of `i`, for every `i` where `bytes[i]`
/// [`needs_escape`]; returns whether any byte of `bytes` is not ASCII.
///
/// The callback is passed on by reference: a closure copied by value into a function that
/// is not inlined costs a store-forwarding stall per call (perf showed it as the largest
/// cost of encoding, most strings being short).
#[inline(always)]
pub fn specials(bytes: &[u8], mut special: impl FnMut(usize)) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if bytes.len() >= x86::AVX2_BLOCK && std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (just checked), and the slice holds a whole block.
            return unsafe { x86::avx2(bytes, &mut special) };
        }
        if bytes.len() >= x86::SSE2_BLOCK {
            // SAFETY: SSE2 is part of every x86-64 CPU; the slice holds a whole block.
            return unsafe { x86::sse2(bytes, &mut special) };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if bytes.len() >= neon::BLOCK && std::arch::is_aarch64_feature_detected!("neon") {
            // SAFETY: the CPU has NEON (just checked), and the slice holds a whole block.
            return unsafe { neon::neon(bytes, &mut special) };
        }
    }
    scalar(bytes, &mut special)
}

/// [`specials`] without vector instructions: eight bytes per word, two words per step; the
/// special bytes of a word are found at once, exactly, by bit arithmetic. The last word of a
/// string of 8 bytes or more is its last 8 bytes, with those already seen masked off; a
/// shorter string is one word padded with spaces.
#[inline]
pub fn scalar(bytes: &[u8], special: &mut impl FnMut(usize)) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut seen = 0;
    let mut base = 0;
    let word_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .map_or(0, |w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
    };
    let mut each = |base: usize, mut found: u64| {
        while found != 0 {
            special(base + (found.trailing_zeros() / 8) as usize);
            found &= found - 1;
        }
    };
    // Two words per step while there are two: one test for both in the common case.
    while base + 16 <= bytes.len() {
        let (lo, hi) = (word_at(base), word_at(base + 8));
        seen |= lo | hi;
        let (found_lo, found_hi) = (to_escape(lo), to_escape(hi));
        if found_lo | found_hi != 0 {
            each(base, found_lo);
            each(base + 8, found_hi);
        }
        base += 16;
    }
    // At most one whole word is left.
    if base + 8 <= bytes.len() {
        let word = word_at(base);
        seen |= word;
        each(base, to_escape(word));
        base += 8;
    }
    if base < bytes.len() {
        let (word, from, done) = if bytes.len() >= 8 {
            let from = bytes.len() - 8;
            (word_at(from), from, base - from)
        } else {
            let mut word = u64::from_le_bytes([b' '; 8]);
            for (i, &b) in bytes.iter().enumerate() {
                word ^= u64::from(b ^ b' ') << (8 * i);
            }
            (word, 0, 0)
        };
        seen |= word;
        each(from, to_escape(word) & (!0u64 << (8 * done)));
    }
    seen & HIGH != 0
}

/// The high bit of each byte of `word` that is `"`, `\` or below 0x20, and no other bit.
#[inline]
fn to_escape(word: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // The high bit of each byte of `x` that is not zero (exact: no carry crosses bytes).
    let nonzero = |x: u64| (((x & LOW7) + LOW7) | x) & HIGH;
    let plain = nonzero(word ^ (ONES * u64::from(b'"')))
        & nonzero(word ^ (ONES * u64::from(b'\\')))
        & nonzero(word & (ONES * 0xe0));
    !plain & HIGH
}

/// The paths of x86-64. A block's special bytes become one bit each in a mask
/// (`movemask`), as do its high bits; the callback runs once per set bit.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    pub(super) const SSE2_BLOCK: usize = 16;
    pub(super) const AVX2_BLOCK: usize = 32;

    /// Calls `special` for each set bit of `mask`, as an offset from `base`.
    #[inline(always)]
    fn each(base: usize, mut mask: u32, special: &mut impl FnMut(usize)) {
        while mask != 0 {
            special(base + mask.trailing_zeros() as usize);
            mask &= mask - 1;
        }
    }

    /// The special bytes of a 16-byte block (one bit each), and the block itself.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn block16(bytes: &[u8], at: usize) -> (u32, __m128i) {
        assert!(at + SSE2_BLOCK <= bytes.len());
        // SAFETY: `bytes[at..at + 16]` is inside the slice (asserted above, and the callers
        // only ask for such blocks, so the check folds away); the load is unaligned.
        let v = unsafe { _mm_loadu_si128(bytes.as_ptr().add(at).cast()) };
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `v <= 0x1f`: max(v, 0x1f) is 0x1f only then.
        let limit = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, limit), limit);
        let mask = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control));
        (mask as u32, v)
    }

    /// 16 bytes at a time. `bytes` holds 16 bytes or more.
    ///
    /// SSE2 is part of x86-64 itself (`cfg(target_feature = "sse2")` holds on every x86-64
    /// target), so this needs no detection; the attribute only lets the intrinsics be
    /// called as the safe functions they are there.
    #[target_feature(enable = "sse2")]
    #[inline]
    pub(super) fn sse2(bytes: &[u8], special: &mut impl FnMut(usize)) -> bool {
        let len = bytes.len();
        debug_assert!(len >= SSE2_BLOCK);
        let mut high = _mm_setzero_si128();
        let mut at = 0;
        while at + SSE2_BLOCK <= len {
            let (mask, v) = block16(bytes, at);
            high = _mm_or_si128(high, v);
            each(at, mask, special);
            at += SSE2_BLOCK;
        }
        if at < len {
            // The last 16 bytes, without those already seen.
            let from = len - SSE2_BLOCK;
            let (mask, v) = block16(bytes, from);
            high = _mm_or_si128(high, v);
            each(from, mask & (!0u32 << (at - from)), special);
        }
        _mm_movemask_epi8(high) != 0
    }

    /// The special bytes of a 32-byte block (one bit each), and the block itself.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn block32(bytes: &[u8], at: usize) -> (u32, __m256i) {
        assert!(at + AVX2_BLOCK <= bytes.len());
        // SAFETY: `bytes[at..at + 32]` is inside the slice (asserted above, and the callers
        // only ask for such blocks, so the check folds away); the load is unaligned.
        let v = unsafe { _mm256_loadu_si256(bytes.as_ptr().add(at).cast()) };
        let quote = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'"' as i8));
        let backslash = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\\' as i8));
        // Unsigned `v <= 0x1f`.
        let limit = _mm256_set1_epi8(0x1f);
        let control = _mm256_cmpeq_epi8(_mm256_max_epu8(v, limit), limit);
        let found = _mm256_or_si256(_mm256_or_si256(quote, backslash), control);
        (_mm256_movemask_epi8(found) as u32, v)
    }

    /// 32 bytes at a time. `bytes` holds 32 bytes or more.
    ///
    /// Safe to call only where AVX2 is known to be there: after
    /// `is_x86_feature_detected!("avx2")` (the caller's `unsafe` block says so).
    #[target_feature(enable = "avx2")]
    pub(super) fn avx2(bytes: &[u8], special: &mut impl FnMut(usize)) -> bool {
        let len = bytes.len();
        debug_assert!(len >= AVX2_BLOCK);
        let mut high = _mm256_setzero_si256();
        let mut at = 0;
        while at + AVX2_BLOCK <= len {
            let (mask, v) = block32(bytes, at);
            high = _mm256_or_si256(high, v);
            each(at, mask, special);
            at += AVX2_BLOCK;
        }
        if at < len {
            // The last 32 bytes, without those already seen.
            let from = len - AVX2_BLOCK;
            let (mask, v) = block32(bytes, from);
            high = _mm256_or_si256(high, v);
            each(from, mask & (!0u32 << (at - from)), special);
        }
        _mm256_movemask_epi8(high) != 0
    }
}

/// The path of aarch64. NEON has no `movemask`: a block's comparison (0x00 or 0xff per
/// byte) is narrowed to four bits per byte (`shrn`), of which one is kept, so that a block's
/// special bytes are one bit each in a `u64`, every fourth bit; the callback runs once per
/// set bit, as on x86-64.
#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    pub(super) const BLOCK: usize = 16;

    /// One bit per byte of a narrowed mask: the top bit of each byte's nibble.
    const NIBBLE_TOPS: u64 = 0x8888_8888_8888_8888;

    /// Calls `special` for each set bit of `mask` (byte `i` of the block is bit `4 * i + 3`),
    /// as an offset from `base`.
    #[inline(always)]
    fn each(base: usize, mut mask: u64, special: &mut impl FnMut(usize)) {
        while mask != 0 {
            special(base + (mask.trailing_zeros() / 4) as usize);
            mask &= mask - 1;
        }
    }

    /// The special bytes of a 16-byte block (bit `4 * i + 3` for byte `i`), and the block.
    #[target_feature(enable = "neon")]
    #[inline]
    fn block16(bytes: &[u8], at: usize) -> (u64, uint8x16_t) {
        assert!(at + BLOCK <= bytes.len());
        // SAFETY: `bytes[at..at + 16]` is inside the slice (asserted above, and the callers
        // only ask for such blocks, so the check folds away); `vld1q_u8` needs no alignment.
        let v = unsafe { vld1q_u8(bytes.as_ptr().add(at)) };
        let quote = vceqq_u8(v, vdupq_n_u8(b'"'));
        let backslash = vceqq_u8(v, vdupq_n_u8(b'\\'));
        // NEON compares unsigned bytes directly: `v < 0x20`.
        let control = vcltq_u8(v, vdupq_n_u8(0x20));
        let found = vorrq_u8(vorrq_u8(quote, backslash), control);
        // Each 16-bit lane shifted right by 4 and narrowed to 8 bits keeps the high nibble
        // of its low byte and the low nibble of its high byte: byte `i` of the block becomes
        // bits `4 * i .. 4 * i + 4` of the 64-bit result, all set or all clear.
        let narrowed = vshrn_n_u16::<4>(vreinterpretq_u16_u8(found));
        let nibbles = vget_lane_u64::<0>(vreinterpret_u64_u8(narrowed));
        (nibbles & NIBBLE_TOPS, v)
    }

    /// 16 bytes at a time. `bytes` holds 16 bytes or more.
    ///
    /// Safe to call only where NEON is known to be there: after
    /// `is_aarch64_feature_detected!("neon")` (the caller's `unsafe` block says so).
    #[target_feature(enable = "neon")]
    #[inline]
    pub(super) fn neon(bytes: &[u8], special: &mut impl FnMut(usize)) -> bool {
        let len = bytes.len();
        debug_assert!(len >= BLOCK);
        let mut high = vdupq_n_u8(0);
        let mut at = 0;
        while at + BLOCK <= len {
            let (mask, v) = block16(bytes, at);
            high = vorrq_u8(high, v);
            each(at, mask, special);
            at += BLOCK;
        }
        if at < len {
            // The last 16 bytes, without those already seen (four mask bits a byte).
            let from = len - BLOCK;
            let (mask, v) = block16(bytes, from);
            high = vorrq_u8(high, v);
            each(from, mask & (!0u64 << (4 * (at - from))), special);
        }
        vmaxvq_u8(high) >= 0x80
    }
}

/// One way to run [`specials`], for tests, fuzzing and benches to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Sse2,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Path {
    /// The paths this CPU can run, [`Path::Scalar`] first.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(unused_mut)
    )]
    pub fn available() -> Vec<Path> {
        let mut paths = vec![Path::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            paths.push(Path::Sse2);
            if std::is_x86_feature_detected!("avx2") {
                paths.push(Path::Avx2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            paths.push(Path::Neon);
        }
        paths
    }

    pub fn name(self) -> &'static str {
        match self {
            Path::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Path::Sse2 => "sse2",
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => "avx2",
            #[cfg(target_arch = "aarch64")]
            Path::Neon => "neon",
        }
    }

    /// [`specials`] on this path only. A string shorter than the path's block takes the
    /// scalar path, as in [`specials`]; so does [`Path::Avx2`] on a CPU without AVX2 (and
    /// `Path::Neon` on one without NEON).
    pub fn run(self, bytes: &[u8], mut special: impl FnMut(usize)) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Sse2 if bytes.len() >= x86::SSE2_BLOCK => {
                // SAFETY: SSE2 is part of every x86-64 CPU; the slice holds a whole block.
                unsafe { x86::sse2(bytes, &mut special) }
            }
            #[cfg(target_arch = "x86_64")]
            Path::Avx2
                if bytes.len() >= x86::AVX2_BLOCK && std::is_x86_feature_detected!("avx2") =>
            {
                // SAFETY: the CPU has AVX2 (just checked), and the slice holds a whole block.
                unsafe { x86::avx2(bytes, &mut special) }
            }
            #[cfg(target_arch = "aarch64")]
            Path::Neon
                if bytes.len() >= neon::BLOCK
                    && std::arch::is_aarch64_feature_detected!("neon") =>
            {
                // SAFETY: the CPU has NEON (just checked), and the slice holds a whole block.
                unsafe { neon::neon(bytes, &mut special) }
            }
            _ => scalar(bytes, &mut special),
        }
    }

    /// What this path finds in `bytes`, in [`reference`]'s form.
    pub fn found(self, bytes: &[u8]) -> (Vec<usize>, bool) {
        let mut at = Vec::new();
        let non_ascii = self.run(bytes, |i| at.push(i));
        (at, non_ascii)
    }
}

/// The definition [`specials`] must agree with, byte by byte: the special indices and
/// whether any byte is not ASCII. For tests and fuzzing.
pub fn reference(bytes: &[u8]) -> (Vec<usize>, bool) {
    let at = (0..bytes.len())
        .filter(|&i| needs_escape(bytes[i]))
        .collect();
    (at, bytes.iter().any(|&b| b >= 0x80))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(bytes: &[u8]) {
        let want = reference(bytes);
        for path in Path::available() {
            assert_eq!(path.found(bytes), want, "{path:?}: {bytes:?}");
        }
        let mut at = Vec::new();
        let non_ascii = specials(bytes, |i| at.push(i));
        assert_eq!((at, non_ascii), want, "specials: {bytes:?}");
    }

    #[test]
    fn every_special_and_high_byte_at_every_position_of_every_length() {
        let odd = [
            b'"', b'\\', 0x00, 0x1f, b'\n', 0x7f, 0x80, 0xff, b' ', 0x20, 0xc3,
        ];
        for len in 0..100 {
            for at in 0..len {
                for &b in &odd {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    agree(&bytes);
                    // And a second one further on (or before).
                    bytes[(at * 7 + 3) % len] = b'"';
                    agree(&bytes);
                }
            }
        }
    }

    #[test]
    fn every_byte_value_is_classified_as_json_requires() {
        for b in 0..=255u8 {
            for len in [1, 15, 16, 17, 31, 32, 33, 64, 65] {
                agree(&vec![b; len]);
            }
        }
    }

    #[test]
    fn the_scalar_path_comes_first_and_x86_64_always_has_sse2() {
        #[cfg(target_arch = "x86_64")]
        assert!(Path::available().contains(&Path::Sse2));
        assert_eq!(Path::available()[0].name(), "scalar");
    }

    /// Every aarch64 CPU that Linux runs on has NEON (the emulator's too): the vector path
    /// is there, so `specials` takes it and the tests above compare it.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn aarch64_has_the_neon_path() {
        assert_eq!(Path::available(), [Path::Scalar, Path::Neon]);
        assert_eq!(Path::Neon.name(), "neon");
        assert!(std::arch::is_aarch64_feature_detected!("neon"));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_agree_on_every_path(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    6 => 0x20u8..0x7f,
                    1 => proptest::num::u8::ANY,
                    1 => proptest::sample::select(vec![b'"', b'\\', b'\n', 0x00, 0x1f]),
                ],
                0..300,
            ),
            offset in 0usize..32,
        ) {
            // Every alignment of the same bytes.
            agree(&bytes[offset.min(bytes.len())..]);
        }
    }
}

//! The plugin's allocator: big blocks in mappings of their own, kept for reuse while
//! flushes run and given back to the system when they pause; the rest from the system's
//! `malloc`.
//!
//! A flush of a 2 MB chunk holds a few megabytes in big buffers (the chunk's messages in
//! their wire form, request bodies) for a moment. Through glibc's `malloc` they come from
//! the flushing thread's arena once glibc has raised its mmap threshold (it does so the
//! first time a big block is freed), and when one of them sat at the end of the arena it
//! went back into the arena's *top*, which neither `free` (below a threshold glibc raises
//! too) nor `malloc_trim` gives back for the arenas of threads other than the main one:
//! after a burst, each flush thread's arena could keep ~3 MiB for good, depending on the
//! order in which the buffers happened to be allocated (in about a third of the runs of a
//! test of four concurrent flushes, more often on a busy machine).
//!
//! Here a block of [`BIG`] bytes or more is a mapping of its own. A freed one goes to a small
//! cache, from which the next big block is taken with its pages already in memory (mapping
//! every block afresh cost ~30 % more CPU per event in page faults), and a block grows in
//! place while its mapping has room. [`release`] unmaps the cache: `runtime::BigFlush`
//! calls it once big flushes pause, with `malloc_trim` for the small blocks.
//!
//! Invariants:
//! - A block's origin follows from its layout alone ([`is_mapped`]): its size is at least
//!   [`BIG`] and its alignment at most the page size. `GlobalAlloc` hands `dealloc` and
//!   `realloc` the layout the block was allocated with, so each block is freed by the
//!   allocator that made it, and a `realloc` across [`BIG`] moves the block between them.
//! - A mapped block starts one page into its mapping; the first word of that page holds the
//!   mapping's length, a multiple of the page size and at least one page more than the block.
//! - A mapping is in the cache or holds exactly one live block, never both.
//! - Nothing here allocates or panics; the cache's lock is held only to read or write its
//!   slots. The page size is read once with `sysconf` and kept in an atomic.
//!
//! Elsewhere than Linux every block comes from the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::{Mutex, PoisonError};

/// Blocks this big or bigger are mapped: glibc's own default mmap threshold.
pub const BIG: usize = 128 << 10;
/// Freed mappings kept for reuse, at most.
const CACHED: usize = 16;
/// Bytes of freed mappings kept for reuse, at most (their pages in memory count less: only
/// the ones a block touched).
const CACHED_BYTES: usize = 64 << 20;

/// The allocator of the library (`#[global_allocator]` in `lib.rs`).
pub struct Allocator;

/// Whether a block of this layout is (or would be) in a mapping of its own.
pub fn is_mapped(size: usize, align: usize) -> bool {
    cfg!(target_os = "linux") && size >= BIG && align <= page_size()
}

/// Unmaps the cached mappings: the memory of the big blocks freed since is given back.
pub fn release() {
    loop {
        let taken = cache().pop();
        match taken {
            Some(m) => unmap(m),
            None => return,
        }
    }
}

/// A mapping: its first address and its length.
#[derive(Clone, Copy)]
struct Mapping {
    base: usize,
    len: usize,
}

struct Cache {
    slots: [Mapping; CACHED],
    len: usize,
}

impl Cache {
    /// The smallest cached mapping at least `len` long, taken out.
    fn take(&mut self, len: usize) -> Option<Mapping> {
        let (at, _) = self.slots[..self.len]
            .iter()
            .enumerate()
            .filter(|(_, m)| m.len >= len)
            .min_by_key(|(_, m)| m.len)?;
        Some(self.remove(at))
    }

    fn pop(&mut self) -> Option<Mapping> {
        self.len.checked_sub(1).map(|last| self.remove(last))
    }

    fn remove(&mut self, at: usize) -> Mapping {
        let m = self.slots[at];
        self.len -= 1;
        self.slots[at] = self.slots[self.len];
        m
    }

    /// Keeps `m` if there is room, else hands it back.
    fn put(&mut self, m: Mapping) -> Result<(), Mapping> {
        let bytes: usize = self.slots[..self.len].iter().map(|c| c.len).sum();
        if self.len == CACHED || bytes + m.len > CACHED_BYTES {
            return Err(m);
        }
        self.slots[self.len] = m;
        self.len += 1;
        Ok(())
    }
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    slots: [Mapping { base: 0, len: 0 }; CACHED],
    len: 0,
});

fn cache() -> std::sync::MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A mapping for a block of `size` bytes: a cached one, else a new one.
fn take_or_map(size: usize) -> Option<Mapping> {
    let len = page_size() + pages(size);
    let cached = cache().take(len);
    cached.or_else(|| map(len))
}

/// Gives a mapping up: to the cache, or to the system when the cache is full.
fn give_up(m: Mapping) {
    let refused = cache().put(m);
    if let Err(m) = refused {
        unmap(m);
    }
}

/// The block of a mapping, with the mapping's length written in its header.
fn block_of(m: Mapping) -> *mut u8 {
    let header = m.base as *mut usize;
    // SAFETY: the mapping is ours, at least two pages long, and page-aligned.
    unsafe { header.write(m.len) };
    (m.base + page_size()) as *mut u8
}

/// The mapping of a block `block_of` returned.
fn mapping_of(block: *mut u8) -> Mapping {
    let base = block as usize - page_size();
    // SAFETY: the header `block_of` wrote, one page before the block (module invariants).
    let len = unsafe { (base as *const usize).read() };
    Mapping { base, len }
}

// SAFETY: every block is allocated and freed by one allocator, chosen by its layout alone
// (module invariants); `System` keeps its own contract for the small ones; a mapped block
// is page-aligned, hence aligned for any layout `is_mapped` accepts, and its mapping
// extends at least `size` bytes past it.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_mapped(layout.size(), layout.align()) {
            take_or_map(layout.size()).map_or(std::ptr::null_mut(), block_of)
        } else {
            // SAFETY: the caller's layout, passed on.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_mapped(layout.size(), layout.align()) {
            // SAFETY: the caller's layout, passed on.
            let p = unsafe { self.alloc(layout) };
            if !p.is_null() {
                // A cached mapping holds what its last block left.
                // SAFETY: a new block of `layout.size()` bytes.
                unsafe { std::ptr::write_bytes(p, 0, layout.size()) };
            }
            p
        } else {
            // SAFETY: the caller's layout, passed on.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_mapped(layout.size(), layout.align()) {
            give_up(mapping_of(ptr));
        } else {
            // SAFETY: a block System allocated with this layout (module invariants).
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        match (is_mapped(layout.size(), align), is_mapped(new_size, align)) {
            // SAFETY: a block System allocated with this layout, resized by System.
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            (true, true) if page_size() + new_size <= mapping_of(ptr).len => ptr,
            (true, true) => {
                let m = mapping_of(ptr);
                let len = page_size() + pages(new_size);
                match remap(m, len) {
                    Some(m) => block_of(m),
                    None => std::ptr::null_mut(),
                }
            }
            _ => {
                // Across BIG: a new block from the other allocator, the bytes that fit, the
                // old block freed.
                // SAFETY: `new_size` is non-zero and, rounded up to `align`, does not
                // overflow `isize` (GlobalAlloc::realloc's contract).
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
                // SAFETY: a valid, non-zero layout.
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are live, distinct, and at least this long.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn page_size() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf reads a constant of the system.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
                .ok()
                .filter(|p| p.is_power_of_two())
                .unwrap_or(4096);
            PAGE.store(page, Ordering::Relaxed);
            page
        }
        page => page,
    }
}

#[cfg(not(target_os = "linux"))]
fn page_size() -> usize {
    4096
}

/// `size` rounded up to whole pages (no overflow: `size` ≤ `isize::MAX`).
fn pages(size: usize) -> usize {
    let page = page_size();
    (size + page - 1) & !(page - 1)
}

#[cfg(target_os = "linux")]
fn map(len: usize) -> Option<Mapping> {
    // SAFETY: a new private anonymous mapping, at an address the kernel picks.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(Mapping {
        base: p as usize,
        len,
    })
}

#[cfg(target_os = "linux")]
fn unmap(m: Mapping) {
    // SAFETY: a mapping `map` or `remap` made, given up by its owner (module invariants).
    // munmap fails only for a range that is not a mapping.
    unsafe { libc::munmap(m.base as *mut libc::c_void, m.len) };
}

/// `m` at `len` bytes, moved if it cannot grow in place; `None` (and `m` as it was) if the
/// system has no room.
#[cfg(target_os = "linux")]
fn remap(m: Mapping, len: usize) -> Option<Mapping> {
    // SAFETY: a mapping of ours holding one live block, whose owner resizes it.
    let p = unsafe {
        libc::mremap(
            m.base as *mut libc::c_void,
            m.len,
            len,
            libc::MREMAP_MAYMOVE,
        )
    };
    (p != libc::MAP_FAILED).then_some(Mapping {
        base: p as usize,
        len,
    })
}

// Never reached: `is_mapped` is false elsewhere than Linux.
#[cfg(not(target_os = "linux"))]
fn map(_: usize) -> Option<Mapping> {
    None
}

#[cfg(not(target_os = "linux"))]
fn unmap(_: Mapping) {}

#[cfg(not(target_os = "linux"))]
fn remap(_: Mapping, _: usize) -> Option<Mapping> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One block: where it is, its layout, and the byte it was filled with.
    struct Block {
        ptr: *mut u8,
        layout: Layout,
        fill: u8,
    }

    fn check(b: &Block) {
        // SAFETY: a live block of this layout, filled with `fill`.
        let bytes = unsafe { std::slice::from_raw_parts(b.ptr, b.layout.size()) };
        assert!(bytes.iter().all(|&x| x == b.fill), "a block lost its bytes");
        assert_eq!(b.ptr as usize % b.layout.align(), 0, "misaligned");
    }

    fn fill(b: &Block) {
        // SAFETY: a live block of this layout.
        unsafe { std::ptr::write_bytes(b.ptr, b.fill, b.layout.size()) };
    }

    fn size() -> impl Strategy<Value = usize> {
        prop_oneof![1..BIG, BIG - 64..BIG + 64, BIG..4 * BIG, Just(BIG)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Blocks allocated, grown, shrunk (across `BIG` too) and freed in any order keep
        /// their bytes and their alignment, whichever allocator holds them.
        #[test]
        fn blocks_keep_their_bytes_across_the_threshold(
            steps in prop::collection::vec(
                (0..3u8, size(), prop::sample::select(vec![1usize, 8, 16, 4096]), any::<u8>()),
                1..40,
            ),
        ) {
            let mut live: Vec<Block> = Vec::new();
            for (op, size, align, byte) in steps {
                match op {
                    0 => {
                        let layout = Layout::from_size_align(size, align).unwrap();
                        // SAFETY: a valid non-zero layout.
                        let ptr = unsafe { Allocator.alloc(layout) };
                        prop_assert!(!ptr.is_null());
                        let b = Block { ptr, layout, fill: byte };
                        fill(&b);
                        live.push(b);
                    }
                    1 if !live.is_empty() => {
                        let b = live.swap_remove(byte as usize % live.len());
                        check(&b);
                        // SAFETY: a live block of this layout, resized to a non-zero size.
                        let ptr = unsafe { Allocator.realloc(b.ptr, b.layout, size) };
                        prop_assert!(!ptr.is_null());
                        let kept = b.layout.size().min(size);
                        // SAFETY: the block is at least `kept` long.
                        let bytes = unsafe { std::slice::from_raw_parts(ptr, kept) };
                        prop_assert!(bytes.iter().all(|&x| x == b.fill), "realloc lost bytes");
                        let layout = Layout::from_size_align(size, b.layout.align()).unwrap();
                        let b = Block { ptr, layout, fill: byte };
                        fill(&b);
                        live.push(b);
                    }
                    _ if !live.is_empty() => {
                        let b = live.swap_remove(byte as usize % live.len());
                        check(&b);
                        // SAFETY: a live block of this layout, given up.
                        unsafe { Allocator.dealloc(b.ptr, b.layout) };
                    }
                    _ => {}
                }
            }
            for b in live {
                check(&b);
                // SAFETY: a live block of this layout, given up.
                unsafe { Allocator.dealloc(b.ptr, b.layout) };
            }
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_on_both_sides_of_the_threshold() {
        for size in [16, BIG - 1, BIG, 3 * BIG + 5] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: a valid non-zero layout; the block is freed below.
            unsafe {
                let p = Allocator.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&x| x == 0));
                Allocator.dealloc(p, layout);
            }
        }
    }

    fn maps_entry(start: usize) -> Option<(usize, usize)> {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter_map(|l| {
                let (range, _) = l.split_once(' ')?;
                let (a, b) = range.split_once('-')?;
                Some((
                    usize::from_str_radix(a, 16).ok()?,
                    usize::from_str_radix(b, 16).ok()?,
                ))
            })
            .find(|&(a, b)| a <= start && start < b)
    }

    /// A freed big block's mapping is kept until `release`, then unmapped. (The tests of
    /// this process share the allocator: the block is of a size none of them asks for.)
    #[cfg(target_os = "linux")]
    #[test]
    fn a_freed_big_block_is_unmapped_on_release() {
        let size = (40 << 20) + 123;
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: a valid non-zero layout; the block is freed below.
        let p = unsafe { Allocator.alloc(layout) };
        assert!(!p.is_null());
        assert_eq!(p as usize % page_size(), 0);
        let (a, b) = maps_entry(p as usize).expect("mapped");
        assert!(b - a >= page_size() + pages(size));
        // SAFETY: the block made above, given up.
        unsafe { Allocator.dealloc(p, layout) };
        assert_eq!(maps_entry(p as usize), Some((a, b)), "kept for reuse");
        release();
        assert_ne!(
            maps_entry(p as usize),
            Some((a, b)),
            "still mapped after release"
        );
    }

    /// A block grows in place while its mapping has room, and the cache hands out the
    /// smallest mapping that fits.
    #[test]
    fn the_cache_reuses_the_smallest_mapping_that_fits() {
        let m = |len| Mapping { base: len, len };
        let mut c = Cache {
            slots: [m(0); CACHED],
            len: 0,
        };
        for len in [8 << 20, 1 << 20, 3 << 20] {
            assert!(c.put(m(len)).is_ok());
        }
        assert_eq!(c.take(2 << 20).map(|m| m.len), Some(3 << 20));
        assert_eq!(c.take(9 << 20).map(|m| m.len), None);
        assert_eq!(c.take(1).map(|m| m.len), Some(1 << 20));
        assert_eq!(c.pop().map(|m| m.len), Some(8 << 20));
        assert!(c.pop().is_none());
        // Full by count, then by bytes: the mapping is handed back.
        for _ in 0..CACHED {
            assert!(c.put(m(4096)).is_ok());
        }
        assert!(c.put(m(4096)).is_err());
        c.len = 0;
        assert!(c.put(m(CACHED_BYTES)).is_ok());
        assert!(c.put(m(4096)).is_err());
    }
}

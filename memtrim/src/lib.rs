//! Gives freed heap memory back to the operating system — or, for a
//! process that moves data all the time, keeps it.
//!
//! glibc's allocator keeps memory that a burst of allocations freed: a
//! gateway that held 10,000 half-open handshakes for a minute would keep
//! their ~100 MB resident for good, though nothing uses it. `malloc_trim`
//! hands the free pages of every arena back (`madvise(MADV_DONTNEED)`).
//! The gateway calls [`release_free_memory`] after a burst of connections
//! has gone (see `lifeline_gateway::server`).
//!
//! The applet and the console do the opposite ([`keep_freed_memory`]): a
//! transfer allocates and frees its 64 KiB frames continually, and glibc
//! hands the top of a heap back as soon as 128 KiB are free there — so the
//! next frames fault the same pages in again, zeroed. Measured on a direct
//! TCP link test: about a tenth of the CPU went to those page faults
//! (`benches/README.md`, `linktest_goodput`).
//!
//! This is the only crate of the workspace that allows `unsafe`: calls
//! into the C library, with no arguments that could be wrong, isolated so
//! that every other crate keeps `#![forbid(unsafe_code)]`. On platforms
//! without glibc they do nothing.
#![deny(unsafe_op_in_unsafe_fn)]

/// Returns freed heap memory to the operating system; `true` if some was
/// returned. A no-op (returning `false`) where the C library has no
/// `malloc_trim`.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a padding size and touches only the
        // allocator's own free lists and the pages they cover; it is
        // thread-safe (each arena is locked while it is trimmed). Rust's
        // global allocator on this target is the same glibc malloc.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Keeps up to `bytes` of freed memory at the top of each heap instead of
/// returning it at once (glibc's trim threshold; it also fixes the mmap
/// threshold at its default, 128 KiB, so frames stay on the heaps). What a
/// session holds at its busiest is bounded (windows, the resend buffer),
/// so this bounds what stays resident after it. `true` if the C library
/// took the setting.
pub fn keep_freed_memory(bytes: usize) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets allocator parameters (the process's
        // own, under the allocator's lock); any value is accepted or
        // refused with 0. Rust's global allocator here is glibc malloc.
        unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, bytes) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = bytes;
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_trim_threshold_is_taken() {
        let took = super::keep_freed_memory(64 << 20);
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(took);
        }
    }

    #[test]
    fn freed_memory_can_be_released() {
        // Fragment the heap with many small blocks, free most of them,
        // and ask for the pages back: this must not crash, and on glibc
        // there is something to return.
        let blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 4096]).collect();
        let keep: Vec<Vec<u8>> = blocks.into_iter().step_by(100).collect();
        let released = super::release_free_memory();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(released);
        }
        assert_eq!(keep.len(), 200);
    }
}

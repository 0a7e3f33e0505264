//! Gives freed heap memory back to the operating system.
//!
//! glibc's allocator keeps memory that a burst of allocations freed: a
//! gateway that held 10,000 half-open handshakes for a minute would keep
//! their ~100 MB resident for good, though nothing uses it. `malloc_trim`
//! hands the free pages of every arena back (`madvise(MADV_DONTNEED)`).
//! The gateway calls [`release_free_memory`] after a burst of connections
//! has gone (see `lifeline_gateway::server`).
//!
//! This is the only crate of the workspace that allows `unsafe`: one call
//! into the C library, with no arguments that could be wrong, isolated so
//! that every other crate keeps `#![forbid(unsafe_code)]`. On platforms
//! without glibc it does nothing.
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

#[cfg(test)]
mod tests {
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

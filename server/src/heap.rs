//! What the server asks of the C allocator (glibc) so that its memory follows what it holds, not
//! what it once held: large blocks go back to the system as soon as they are freed, and before a
//! password is hashed the heap gives back the free pages it kept.
//!
//! The only unsafe code of the library: two calls into glibc, each safe at any time.
#![allow(unsafe_code)]

/// glibc raises its mmap threshold to the largest block freed so far, after which blocks of that
/// size come from the heap and stay resident once freed: every login's 19 MiB argon2 block, and
/// every large pull page, would add to the server's memory for the life of the process. A fixed
/// threshold hands each large block back to the system as soon as it is freed (the server's
/// peak memory in W1 fell from 171 MB to 65 MB; BENCHMARKS.md). Called once, at start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_large_blocks() {
    // glibc's default threshold, fixed.
    const THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only sets a parameter of the allocator and takes its lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
    }
}

/// Gives back to the system the free pages inside the heap. A burst of pushes leaves the heap
/// holding freed memory it keeps for later, and a login's argon2 block (19 MiB, mapped apart)
/// then comes on top of it: trimmed first, the login's peak is what the server holds plus the
/// block (W1's peak on SQLite fell from 72 MB to 63 MB; BENCHMARKS.md). It takes tens of
/// microseconds, against the tens of milliseconds of the hash.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_free_pages() {
    // SAFETY: malloc_trim takes the allocator's locks and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_blocks() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_free_pages() {}

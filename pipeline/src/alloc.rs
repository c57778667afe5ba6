//! The process's allocator settings (jemalloc, the binary's global allocator by default).

/// For the query commands: jemalloc keeps freed pages for reuse instead of returning them
/// to the kernel over its 10 s decay. Aggregates that collect values (percentiles, distinct
/// sets) free and re-fault hundreds of MB a query; with purging on, a fifth of q03's time
/// was page faults (interleaved A/B: q03 −40 %, q04 −16 %, geometric mean −7 to −10 %). The
/// cost, a server that stays at its high-water mark, is paid back by `release_idle_memory`. Ingest keeps the defaults: no gain
/// there, +3 % peak memory. `_RJEM_MALLOC_CONF`, when set, decides instead.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
pub fn keep_freed_pages() {
    if std::env::var_os("_RJEM_MALLOC_CONF").is_some() {
        return;
    }
    let set = |name: &str, value: isize| {
        let Ok(name) = std::ffi::CString::new(name) else {
            return;
        };
        let mut value = value;
        // SAFETY: a NUL-terminated name and a pointer to an `ssize_t`-sized value with its
        // size, as jemalloc's `mallctl` documents for these `ssize_t` settings; no old value
        // is read. A failure (an arena not yet created) leaves that arena as it was.
        unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                (&raw mut value).cast(),
                std::mem::size_of::<isize>(),
            );
        }
    };
    // Arenas created from now on, then every arena slot there is (created lazily, one per
    // thread group; at this point only the main thread's).
    set("arenas.dirty_decay_ms", -1);
    set("arenas.muzzy_decay_ms", -1);
    let mut narenas: u32 = 0;
    let mut len = std::mem::size_of::<u32>();
    // SAFETY: reads `arenas.narenas` (an `unsigned`) into a `u32` of the given size.
    let read = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arenas.narenas".as_ptr(),
            (&raw mut narenas).cast(),
            &raw mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if read != 0 {
        return;
    }
    for i in 0..narenas {
        set(&format!("arena.{i}.dirty_decay_ms"), -1);
        set(&format!("arena.{i}.muzzy_decay_ms"), -1);
    }
}

#[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
pub fn keep_freed_pages() {}

/// Freed pages the server keeps for reuse before it returns them (`release_idle_memory`).
pub const KEEP_IDLE_BYTES: usize = 256 << 20;

/// For the server, when no query runs: returns jemalloc's freed pages to the kernel once
/// more than [`KEEP_IDLE_BYTES`] of them are held. With purging off (`keep_freed_pages`) a
/// server's memory otherwise stayed at its high-water mark: eight joins, each refused by
/// the memory limit, took it from 0.8 to 3.9 GB for good.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
pub fn release_idle_memory() {
    let read = |name: &std::ffi::CStr| -> Option<usize> {
        let mut v: usize = 0;
        let mut len = std::mem::size_of::<usize>();
        // SAFETY: reads a `size_t` statistic into a `usize` of the given size.
        let r = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&raw mut v).cast(),
                &raw mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        (r == 0).then_some(v)
    };
    let mut epoch: u64 = 1;
    // SAFETY: writes a `uint64_t` to `epoch`, which refreshes the statistics read below.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            c"epoch".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            (&raw mut epoch).cast(),
            std::mem::size_of::<u64>(),
        );
    }
    let (Some(resident), Some(allocated)) = (read(c"stats.resident"), read(c"stats.allocated"))
    else {
        // jemalloc built without statistics (tikv-jemalloc-sys's `stats` feature).
        tracing::debug!("no allocator statistics: freed memory is not returned");
        return;
    };
    if resident.saturating_sub(allocated) <= KEEP_IDLE_BYTES {
        return;
    }
    // SAFETY: `arena.<MALLCTL_ARENAS_ALL>.purge` takes no value; 4096 is jemalloc's
    // MALLCTL_ARENAS_ALL.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
    tracing::debug!(
        resident_mb = resident >> 20,
        allocated_mb = allocated >> 20,
        "returned freed memory to the kernel"
    );
}

#[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
pub fn release_idle_memory() {}

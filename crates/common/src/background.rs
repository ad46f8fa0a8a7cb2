//! Bulk work (an indexing job in a server, and the decoding pool it uses) steps aside for the
//! threads answering requests. Measured on two cores (`bench/jobs/run.sh` and a spinning
//! thread beside a loop of searches by id): one busy thread at nice 10 left the searches' p99
//! within 2x of idle, two busy threads at any priority made it 5x or more, and the idle
//! scheduling class was worse than a nice value (the kernel then treats the busy core as idle
//! and wakes requests onto it). So a server both keeps a core free of bulk threads (see
//! `imgsearch serve`) and lowers their priority with this.

/// Cores this process may run on (the affinity mask and cgroup quota, as the standard library
/// reads them); 1 where that cannot be read. The one place the machine's size is asked.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Threads for bulk work beside request threads: every core but one, and at least one (a server
/// keeps a core free of bulk threads; see the measurements above).
pub fn bulk_threads() -> usize {
    cores().saturating_sub(1).max(1)
}

/// The nice value bulk threads take: a request thread competing with one wins most of the CPU,
/// and the bulk thread still gets every cycle nobody else wants.
pub const BULK_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`BULK_NICE`] (never raises it). Only the calling
/// thread is affected: on Linux the nice value belongs to the thread. Elsewhere this does nothing,
/// as the same call would lower the whole process there. Returns whether the thread now runs at
/// bulk priority; a thread that keeps its priority still works, so callers only log a `false`.
pub fn lower_current_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        let now = current_nice();
        if now >= BULK_NICE {
            return true;
        }
        // SAFETY: `setpriority` takes plain integers and touches no memory of ours; `who` 0 with
        // PRIO_PROCESS names the calling thread on Linux, so no other thread is affected.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BULK_NICE) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
fn current_nice() -> i32 {
    // SAFETY: `getpriority` takes plain integers and touches no memory of ours; `who` 0 with
    // PRIO_PROCESS names the calling thread on Linux. (-1 is also a valid nice value; a failure
    // reads as -1 too, which only makes `lower_current_thread` try to set it.)
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn lowers_only_the_calling_thread() {
        let before = current_nice();
        let inside = std::thread::spawn(|| (lower_current_thread(), current_nice()))
            .join()
            .unwrap();
        assert_eq!(inside, (true, BULK_NICE.max(before)));
        assert_eq!(current_nice(), before);
    }
}

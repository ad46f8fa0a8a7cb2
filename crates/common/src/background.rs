//! Bulk work (an indexing job, and the decoding pool a server keeps for it) runs at the idle
//! scheduling class, below every thread that answers requests. A search by id needs well under a
//! millisecond of CPU; on a machine whose every core is decoding and embedding it would
//! otherwise wait for the scheduler to end a bulk thread's time slice, several times per
//! request, which multiplied its latency tenfold on two cores. A lower nice value is not enough:
//! the scheduler still lets the running bulk thread finish its slice. A thread of the idle class
//! is preempted as soon as any other thread wakes up, and still gets every cycle nobody else
//! wants, so an indexing job on an otherwise quiet machine runs as fast as before.

/// Moves the calling thread to the idle scheduling class (`SCHED_IDLE`). Only the calling thread
/// is affected. Returns whether it now runs there: elsewhere than on Linux, or if the kernel
/// refuses, the thread keeps its class, which costs latency, not correctness, so callers only log
/// a `false`.
pub fn lower_current_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` reads the `sched_param` we pass by reference, which lives
        // for the call; pid 0 names the calling thread, so no other thread is touched.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn class() -> i32 {
        // SAFETY: `sched_getscheduler` takes a pid (0: the calling thread) and touches no memory.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn moves_only_the_calling_thread_to_the_idle_class() {
        let before = class();
        assert_ne!(before, libc::SCHED_IDLE);
        let inside = std::thread::spawn(|| (lower_current_thread(), class()))
            .join()
            .unwrap();
        assert_eq!(inside, (true, libc::SCHED_IDLE));
        assert_eq!(class(), before);
    }
}

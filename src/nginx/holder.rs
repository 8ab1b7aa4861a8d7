//! A process named in one word of shared memory: its pid and start time,
//! so that whoever finds the word can ask whether that process still runs
//! (a pid the kernel gave again names another process: its start time
//! differs). The dyups registry's lock word names its holder so
//! (`dyups::registry_lock`); a health record being added names its claimer
//! so (`zone::health`'s `PENDING` records), so that the records a process
//! killed inside a change leaves are freed.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use crate::nginx::process;

/// A process as a shared word names it: its pid in the low [`PID_BITS`]
/// bits (Linux's `pid_max` is at most 2^22), its start time in clock ticks
/// since boot above (42 bits: over a century at 100 ticks a second; 0 when
/// /proc does not say). One word, so that a takeover is one
/// compare-and-swap against the holder that was found dead. Never 0 (no
/// process has pid 0).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Holder(u64);

const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;

impl Holder {
    fn new(pid: u32, start: u64) -> Self {
        Holder(start << PID_BITS | u64::from(pid) & PID_MASK)
    }

    /// This process (its start time read once per process: a worker
    /// inherits its master's memory, so the pid says whose it is). Reads
    /// /proc the first time in a process: call it before taking a lock.
    pub fn me() -> Self {
        static ME: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        let known = Holder(ME.load(SeqCst));
        if known.0 != 0 && known.pid() == pid {
            return known;
        }
        let me = Holder::new(pid, process::my_start_time() & (u64::MAX >> PID_BITS));
        ME.store(me.0, SeqCst);
        me
    }

    /// The process a word made by [`Holder::word`] names.
    pub fn from_word(word: u64) -> Self {
        Holder(word)
    }

    /// The word that names it.
    pub fn word(self) -> u64 {
        self.0
    }

    pub fn pid(self) -> u32 {
        (self.0 & PID_MASK) as u32
    }

    fn start(self) -> u64 {
        self.0 >> PID_BITS
    }

    /// Whether this process no longer runs. Reads /proc: never call it
    /// under a lock. (The word keeps 42 bits of the start time: a start
    /// past them, after centuries of uptime, would read as another
    /// process.)
    pub fn gone(self) -> bool {
        process::gone(self.pid() as i32, self.start())
    }
}

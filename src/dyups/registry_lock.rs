//! The dyups registry's lock: a spin lock in the registry's shared memory
//! that names the process holding it, so that a holder killed inside
//! (`kill -9`, the OOM killer) does not stop every later change.
//!
//! nginx's own rwlock is a bare counter: after a worker died holding it,
//! every other worker spun on it for ever (and a binary upgrade's new
//! master with them). nginx frees a dead worker's slab mutexes
//! (`ngx_unlock_mutexes`), not a module's own locks. Here the lock word is
//! the holder's pid and start time ([`Holder`]); a waiter that finds the
//! word unchanged for a while asks whether that process still runs
//! ([`Holder::gone`]) and, if not, takes the lock over with one
//! compare-and-swap against the word it judged (which fails if anyone else
//! took it meanwhile).
//!
//! The lock is exclusive: the registry's readers only copy fixed-size
//! records out, and a dead reader must be as recoverable as a dead writer
//! (a reader count names nobody). A process that holds the lock may take
//! it again (a worker is one thread): only the outermost hold releases it.
//!
//! A holder that changes the registry says so first ([`Held::changing`]);
//! the mark is cleared when the lock is released. Whoever takes the lock
//! over from a dead holder that had marked it learns that a change may be
//! half made ([`Held::needs_repair`]) and repairs the registry before
//! anything else (the registry knows how: `registry::repair`); the mark
//! stays until that repair's own release, so a repairer killed in turn
//! leaves it for the next one.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crate::nginx::holder::Holder;
use crate::nginx::log::log;

/// The lock, in shared memory (zeroed: free).
#[repr(C)]
pub struct RegistryLock {
    /// 0 when free, else the holder's [`Holder`] word.
    holder: AtomicU64,
    /// Non-zero while the holder changes what the lock guards.
    changing: AtomicU64,
}

/// The layout of the lock, for the registry's zone fingerprint.
pub const LAYOUT: [usize; 4] = [
    core::mem::size_of::<RegistryLock>(),
    core::mem::align_of::<RegistryLock>(),
    core::mem::offset_of!(RegistryLock, holder),
    core::mem::offset_of!(RegistryLock, changing),
];

/// How long [`RegistryLock::acquire`] waits for a running holder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Patience {
    /// One try (and a takeover if the holder is gone).
    None,
    For(Duration),
    Forever,
}

/// How long a waiter lets a holder keep the lock before asking whether it
/// still runs, and then again between two such checks.
const CHECK_EVERY: Duration = Duration::from_millis(2);

impl RegistryLock {
    /// Takes the lock, waiting for as long as a running process holds it.
    pub fn hold(&self) -> Held<'_> {
        loop {
            if let Some(held) = self.acquire(Patience::Forever) {
                return held;
            }
        }
    }

    /// Takes the lock unless a running process holds it.
    pub fn try_hold(&self) -> Option<Held<'_>> {
        self.acquire(Patience::None)
    }

    /// Takes the lock, waiting at most `limit` for a running holder.
    pub fn hold_within(&self, limit: Duration) -> Option<Held<'_>> {
        self.acquire(Patience::For(limit))
    }

    /// This lock's name in the table of [`holds`].
    fn key(&self) -> usize {
        self as *const RegistryLock as usize
    }

    fn acquire(&self, patience: Patience) -> Option<Held<'_>> {
        let me = Holder::me();
        if holds::nest(self.key()) {
            return Some(Held { lock: self, me, outermost: false, repair: false });
        }
        let started = Instant::now();
        let mut next_check = started + CHECK_EVERY;
        let mut spins = 0u32;
        loop {
            let seen = match self.holder.compare_exchange(0, me.word(), SeqCst, SeqCst) {
                Ok(_) => return Some(self.outermost(me)),
                Err(seen) => Holder::from_word(seen),
            };
            let now = Instant::now();
            // This process's word without a hold of this process: a dead
            // process's whose pid this one got (with no start time to tell).
            if seen == me || patience == Patience::None || now >= next_check {
                if seen == me || seen.gone() {
                    if let Some(held) = self.take_over(seen, me) {
                        return Some(held);
                    }
                    continue;
                }
                next_check = now + CHECK_EVERY;
            }
            match patience {
                Patience::None => return None,
                Patience::For(limit) if now.duration_since(started) >= limit => return None,
                _ => {}
            }
            // As nginx's own spin locks: a few pauses, then give the CPU up.
            if spins < 64 {
                spins += 1;
                for _ in 0..1 << (spins / 8) {
                    core::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Takes the lock from `dead`, which was found gone while it held it.
    /// Logs before the swap (nothing is held yet); None if another process
    /// changed the word first.
    fn take_over(&self, dead: Holder, me: Holder) -> Option<Held<'_>> {
        let changing = self.changing.load(SeqCst) != 0;
        log(
            ngx::ffi::NGX_LOG_WARN,
            &format!(
                "dynamic upstream: process {} ended while it held the upstream registry's lock; taking the lock over{}",
                dead.pid(),
                if changing {
                    " and repairing the registry (it died inside a change: every worker reloads it)"
                } else {
                    ""
                }
            ),
        );
        self.holder.compare_exchange(dead.word(), me.word(), SeqCst, SeqCst).ok()?;
        Some(self.outermost(me))
    }

    /// The outermost hold of a lock just taken. The change mark, read under
    /// the lock (only a holder sets it), is still set if the last holder
    /// died inside a change or panicked out of one: repair first.
    fn outermost(&self, me: Holder) -> Held<'_> {
        holds::enter(self.key());
        Held { lock: self, me, outermost: true, repair: self.changing.load(SeqCst) != 0 }
    }
}

/// The locks this process holds (named by their address), with how deep
/// (a worker is one thread; a fixed table: nothing is allocated while a
/// lock is taken). A process holds one registry's lock at a time; the
/// table allows a few.
mod holds {
    use std::cell::Cell;

    const MAX: usize = 4;

    thread_local! {
        static HOLDS: Cell<[(usize, u32); MAX]> = const { Cell::new([(0, 0); MAX]) };
    }

    /// One more hold of the lock `key` if this process holds it already.
    pub fn nest(key: usize) -> bool {
        update(key, |depth| *depth += 1)
    }

    /// The first hold of the lock `key`.
    pub fn enter(key: usize) {
        HOLDS.with(|holds| {
            let mut table = holds.get();
            // Never full: a process holds one registry's lock at a time (a
            // panic here would leave the lock held).
            if let Some(entry) = table.iter_mut().find(|(k, d)| *k == key || *d == 0) {
                *entry = (key, 1);
            }
            holds.set(table);
        });
    }

    /// One hold of the lock `key` fewer.
    pub fn leave(key: usize) {
        update(key, |depth| *depth -= 1);
    }

    /// Applies `f` to the depth of the lock `key`; false if this process
    /// does not hold it.
    fn update(key: usize, f: impl FnOnce(&mut u32)) -> bool {
        HOLDS.with(|holds| {
            let mut table = holds.get();
            let Some((_, depth)) = table.iter_mut().find(|(k, d)| *k == key && *d > 0) else {
                return false;
            };
            f(depth);
            holds.set(table);
            true
        })
    }
}

/// A hold of the [`RegistryLock`]; the outermost one releases it when
/// dropped.
pub struct Held<'a> {
    lock: &'a RegistryLock,
    me: Holder,
    outermost: bool,
    repair: bool,
}

impl Held<'_> {
    /// Marks the start of a change: until the lock is released, a takeover
    /// repairs what it finds.
    pub fn changing(&self) {
        self.lock.changing.store(1, SeqCst);
    }

    /// Whether the registry must be repaired before anything else: the last
    /// holder died inside a change (or panicked out of one). The mark stays
    /// set until this hold is released.
    pub fn needs_repair(&self) -> bool {
        self.repair
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        holds::leave(self.lock.key());
        if !self.outermost {
            return;
        }
        if self.lock.holder.load(SeqCst) != self.me.word() {
            // Taken over while this process held it (judged dead): the
            // lock and its mark are the new holder's.
            log(
                ngx::ffi::NGX_LOG_ERR,
                "dynamic upstream: the upstream registry's lock was taken over while this process held it",
            );
            return;
        }
        // A panic out of a change leaves the mark: the next holder repairs.
        // Otherwise it is cleared first: a holder killed between the two
        // stores had finished its change.
        if !std::thread::panicking() {
            self.lock.changing.store(0, SeqCst);
        }
        self.lock.holder.store(0, SeqCst);
    }
}

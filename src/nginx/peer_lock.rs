//! nginx's locks on shared peer lists, as RAII guards.
//!
//! `ngx_http_upstream_rr_peers_wlock()` and friends are C macros, absent
//! from the bindings; these guards do what they expand to. Every change to a
//! peer list or a peer's fields holds the list's write lock, as nginx's own
//! balancers do (`ngx_http_upstream_get_round_robin_peer` takes it for
//! writing). Slab allocations additionally hold the zone's slab mutex,
//! always taken after the rwlock, never before.
//!
//! A guard does no allocation and cannot panic, so no early return or error
//! leaves a lock held.

use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use ngx::ffi::{
    ngx_atomic_t, ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_rwlock_rlock, ngx_rwlock_unlock,
    ngx_rwlock_wlock, ngx_shmtx_force_unlock, ngx_shmtx_lock, ngx_shmtx_trylock, ngx_shmtx_unlock, ngx_slab_pool_t,
    NGX_LOG_WARN,
};

use crate::nginx::log::log;
use crate::nginx::process::ended;

/// Holds an nginx rwlock (`ngx_atomic_t` in shared memory) for writing.
pub struct WriteLocked {
    lock: *mut ngx_atomic_t,
}

impl WriteLocked {
    /// Locks `peers->rwlock`.
    ///
    /// # Safety
    /// `peers` must be a live peer list in a shared zone (`shpool` set), and
    /// the caller must not already hold its lock.
    pub unsafe fn new(peers: *mut ngx_http_upstream_rr_peers_t) -> Self {
        // SAFETY: per the contract.
        unsafe { Self::on(ptr::addr_of_mut!((*peers).rwlock)) }
    }

    /// # Safety
    /// `lock` must be an rwlock word in mapped shared memory that this
    /// process does not hold.
    pub unsafe fn on(lock: *mut ngx_atomic_t) -> Self {
        // SAFETY: per the contract.
        unsafe { ngx_rwlock_wlock(lock) };
        Self { lock }
    }
}

/// nginx's `NGX_RWLOCK_WLOCK` (a cast macro bindgen does not see): the
/// word of an rwlock held for writing.
const RWLOCK_WRITE_HELD: usize = usize::MAX;

impl WriteLocked {
    /// As [`WriteLocked::on`], as `ngx_rwlock_wlock` takes it, but giving up
    /// at `deadline`: nginx never releases an rwlock whose holder was killed
    /// (the OOM killer, `kill -9` inside a balancer's `get`).
    ///
    /// # Safety
    /// As for [`WriteLocked::on`].
    unsafe fn on_before(lock: *mut ngx_atomic_t, deadline: Instant) -> Option<Self> {
        // SAFETY: per the contract: nginx's rwlock word, a machine word
        // (`ngx_atomic_t`) that every process changes only atomically.
        let word = unsafe { AtomicUsize::from_ptr(lock.cast::<usize>()) };
        loop {
            if word.load(SeqCst) == 0 && word.compare_exchange(0, RWLOCK_WRITE_HELD, SeqCst, SeqCst).is_ok() {
                return Some(Self { lock });
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for WriteLocked {
    fn drop(&mut self) {
        // SAFETY: locked in new()/on(); the word outlives the guard.
        unsafe { ngx_rwlock_unlock(self.lock) };
    }
}

/// Both write locks of a zone upstream, in the order every change takes
/// them: its primary list's, then its backup list's (if it has one at the
/// time of locking). Dropped in reverse order.
pub struct ListsWriteLocked<'a> {
    _backup: Option<WriteLocked>,
    _primary: WriteLocked,
    primary: *mut ngx_http_upstream_rr_peers_t,
    _lists: PhantomData<&'a ZoneLists>,
}

impl ListsWriteLocked<'_> {
    /// # Safety
    /// As for [`WriteLocked::new`], for `primary` and its backup list.
    pub unsafe fn new(primary: *mut ngx_http_upstream_rr_peers_t) -> Self {
        // SAFETY: per the contract; `next` is read under the primary's lock,
        // which every change to it holds.
        unsafe {
            let primary_lock = WriteLocked::new(primary);
            let backup = (*primary).next;
            Self {
                _backup: (!backup.is_null()).then(|| WriteLocked::new(backup)),
                _primary: primary_lock,
                primary,
                _lists: PhantomData,
            }
        }
    }

    /// As [`ListsWriteLocked::new`], giving up (None, nothing held) if the
    /// locks stay held for `wait`: a holder that never lets go must not
    /// stop the caller for good. The backup list's lock is only tried
    /// while the primary's is held: if it is busy, the primary's is let go
    /// before trying again (nginx's balancers hold one list's lock at a
    /// time: a dead holder of the backup's must not stall the primaries'
    /// requests meanwhile).
    ///
    /// # Safety
    /// As for [`ListsWriteLocked::new`].
    pub unsafe fn within(primary: *mut ngx_http_upstream_rr_peers_t, wait: Duration) -> Option<Self> {
        let deadline = Instant::now() + wait;
        loop {
            // SAFETY: per the contract; `next` is read under the primary's
            // lock, which every change to it holds.
            unsafe {
                let primary_lock = WriteLocked::on_before(ptr::addr_of_mut!((*primary).rwlock), deadline)?;
                let backup = (*primary).next;
                if backup.is_null() {
                    return Some(Self { _backup: None, _primary: primary_lock, primary, _lists: PhantomData });
                }
                // One try (a deadline already passed) while the primary is held.
                if let Some(backup_lock) = WriteLocked::on_before(ptr::addr_of_mut!((*backup).rwlock), Instant::now()) {
                    return Some(Self {
                        _backup: Some(backup_lock),
                        _primary: primary_lock,
                        primary,
                        _lists: PhantomData,
                    });
                }
                drop(primary_lock);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::yield_now();
        }
    }

    /// The locked lists, for as long as the guard holds them (one view at
    /// a time: `&mut`).
    pub fn lists(&mut self) -> LockedLists<'_> {
        // SAFETY: the guard holds both write locks of a live zone
        // upstream's lists (new()'s contract) while the view is used. A
        // backup list linked since new() is one a change made under these
        // locks, in this process.
        unsafe { LockedLists::assume(self.primary) }
    }
}

/// The shared peer lists of a zone upstream: its primary list
/// (`uscf->peer.data`, in the zone's slab) and the backup list its `next`
/// links. A handle is made (unsafely) only for such a list, and used only
/// while its configuration lives, as [`crate::nginx::upstreams::Upstream`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ZoneLists {
    primary: *mut ngx_http_upstream_rr_peers_t,
}

impl ZoneLists {
    /// # Safety
    /// `primary` is the primary peer list of a zone upstream (in the
    /// zone's slab, `shpool` set), whose configuration (and zone) outlives
    /// every use of the handle and of its copies: an upstream of the cycle
    /// of the process that uses it (or, in init_module, of the new cycle).
    pub unsafe fn new(primary: *mut ngx_http_upstream_rr_peers_t) -> Self {
        Self { primary }
    }

    pub fn raw(self) -> *mut ngx_http_upstream_rr_peers_t {
        self.primary
    }

    /// The zone's slab pool (set when the zone module copied the list,
    /// never changed).
    pub fn shpool(self) -> *mut ngx_slab_pool_t {
        // SAFETY: a live list (new()'s contract).
        unsafe { (*self.primary).shpool }
    }

    /// Takes both write locks (primary, then backup). The lock is not
    /// reentrant: a process that already holds it waits forever.
    pub fn write_lock(&self) -> ListsWriteLocked<'_> {
        // SAFETY: a live shared list (new()'s contract).
        unsafe { ListsWriteLocked::new(self.primary) }
    }

    /// The length of the longer of the primary and the backup list, read
    /// without their locks (volatile: other processes change them under
    /// their locks), as nginx's `peer.init` reads `number`.
    pub fn longest_list(self) -> usize {
        // SAFETY: a live list (new()'s contract); the backup list, once
        // linked, lives as long as the primary.
        unsafe {
            let number = ptr::read_volatile(ptr::addr_of!((*self.primary).number));
            let backup = ptr::read_volatile(ptr::addr_of!((*self.primary).next));
            if backup.is_null() {
                number
            } else {
                number.max(ptr::read_volatile(ptr::addr_of!((*backup).number)))
            }
        }
    }
}

/// The most peers either list of a zone upstream has had (noted at start
/// and by every change that adds peers, under the lists' write locks; never
/// lowered), kept with the upstream's bookkeeping in its zone: the
/// balancers set no bit of a request's `tried` bitmap at or beyond it.
#[repr(C)]
pub struct ListLengths {
    lists: ZoneLists,
    most: AtomicUsize,
}

impl ListLengths {
    pub fn new(lists: ZoneLists) -> Self {
        Self { lists, most: AtomicUsize::new(0) }
    }

    /// Notes the lists' current lengths.
    pub fn note(&self) {
        self.most.fetch_max(self.lists.longest_list(), SeqCst);
    }

    /// The most peers noted, from any process without a lock, or more: the
    /// lists' current lengths too, read without their lock (as nginx's
    /// peer.init does), never below what was noted unless a change path
    /// failed to note (then the lengths still bound what the lists have
    /// now).
    pub fn most(&self) -> usize {
        self.most.load(SeqCst).max(self.lists.longest_list())
    }
}

/// A zone upstream's lists (or a list being built), seen while no one else
/// changes them: both write locks held ([`ListsWriteLocked::lists`]), or
/// reached by no one else. Valid for `'a`, the time that holds.
///
/// Not `Clone`: what changes the lists (in `nginx/peer_list.rs`) takes it
/// by `&mut`, so no peer or list handle borrowed from it ([`LockedList`],
/// [`LockedPeer`]) outlives a change, and no closure that a change runs can
/// change the lists itself.
pub struct LockedLists<'a> {
    primary: *mut ngx_http_upstream_rr_peers_t,
    _locked: PhantomData<&'a ListsWriteLocked<'a>>,
}

impl<'a> LockedLists<'a> {
    /// # Safety
    /// For `'a`, `primary` (not null) and its backup list are live peer
    /// lists of a shared zone (`shpool` set) that no other process or code
    /// changes (their links, their peers' names, their peers' fields but
    /// the atomic record and the fields nginx changes under the read lock
    /// plus the peer's lock): the caller holds both write locks, or no one
    /// else can reach them yet (or only ever changes them under a lock the
    /// caller holds); no other `LockedLists` of them is used meanwhile.
    /// (A list that others use meanwhile, as a published run-time list
    /// that requests still pick from, qualifies only if its links and its
    /// peers' names cannot change and the caller uses the view to read
    /// those and the atomic records only.)
    pub unsafe fn assume(primary: *mut ngx_http_upstream_rr_peers_t) -> Self {
        Self { primary, _locked: PhantomData }
    }

    pub fn primary_raw(&self) -> *mut ngx_http_upstream_rr_peers_t {
        self.primary
    }

    /// The primary list.
    pub fn primary(&self) -> LockedList<'_> {
        LockedList { list: self.primary, _locked: PhantomData }
    }

    /// The primary list, or the backup list if it has one.
    pub fn list(&self, backup: bool) -> Option<LockedList<'_>> {
        let list = if backup {
            // SAFETY: a live list that no one else changes for 'a.
            unsafe { (*self.primary).next }
        } else {
            self.primary
        };
        (!list.is_null()).then_some(LockedList { list, _locked: PhantomData })
    }

    /// Every peer, the primaries first.
    pub fn peers(&self) -> impl Iterator<Item = LockedPeer<'_>> {
        [self.list(false), self.list(true)].into_iter().flatten().flat_map(|list| list.peers())
    }
}

/// One list of [`LockedLists`], for as long as that is borrowed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LockedList<'a> {
    list: *mut ngx_http_upstream_rr_peers_t,
    _locked: PhantomData<&'a ListsWriteLocked<'a>>,
}

impl<'a> LockedList<'a> {
    pub fn raw(self) -> *mut ngx_http_upstream_rr_peers_t {
        self.list
    }

    /// Its peers, walked by `next`.
    pub fn peers(self) -> impl Iterator<Item = LockedPeer<'a>> {
        // SAFETY: a live list that no one else changes for 'a.
        let first = unsafe { (*self.list).peer };
        core::iter::successors((!first.is_null()).then_some(first), |&peer| {
            // SAFETY: every peer of such a list is live for 'a.
            let next = unsafe { (*peer).next };
            (!next.is_null()).then_some(next)
        })
        .map(|peer| LockedPeer { peer, _locked: PhantomData })
    }

    /// Its number of peers (`number`).
    pub fn number(self) -> usize {
        // SAFETY: a live list that no one else changes for 'a.
        unsafe { (*self.list).number }
    }
}

/// A peer of [`LockedLists`], live for as long as that is borrowed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LockedPeer<'a> {
    peer: *mut ngx_http_upstream_rr_peer_t,
    _locked: PhantomData<&'a ListsWriteLocked<'a>>,
}

impl<'a> LockedPeer<'a> {
    /// # Safety
    /// `peer` is a peer of a list that no one else changes for `'a`, and
    /// stays allocated for `'a`.
    pub unsafe fn assume(peer: *mut ngx_http_upstream_rr_peer_t) -> Self {
        Self { peer, _locked: PhantomData }
    }

    pub fn raw(self) -> *mut ngx_http_upstream_rr_peer_t {
        self.peer
    }

    /// Its name (`127.0.0.1:8080`), which nginx never changes while the
    /// peer lives.
    pub fn name(self) -> &'a [u8] {
        // SAFETY: a live peer for 'a; a peer's name is valid for name.len
        // bytes.
        unsafe {
            let name = &(*self.peer).name;
            if name.len == 0 || name.data.is_null() {
                return &[];
            }
            core::slice::from_raw_parts(name.data, name.len)
        }
    }
}

/// Holds an nginx rwlock for reading.
pub struct ReadLocked {
    lock: *mut ngx_atomic_t,
}

impl ReadLocked {
    /// Locks `peers->rwlock` for reading.
    ///
    /// # Safety
    /// As for [`WriteLocked::new`].
    pub unsafe fn new(peers: *mut ngx_http_upstream_rr_peers_t) -> Self {
        // SAFETY: per the contract.
        unsafe { Self::on(ptr::addr_of_mut!((*peers).rwlock)) }
    }

    /// # Safety
    /// As for [`WriteLocked::on`].
    pub unsafe fn on(lock: *mut ngx_atomic_t) -> Self {
        // SAFETY: per the contract.
        unsafe { ngx_rwlock_rlock(lock) };
        Self { lock }
    }
}

impl Drop for ReadLocked {
    fn drop(&mut self) {
        // SAFETY: locked in new()/on(); the word outlives the guard.
        unsafe { ngx_rwlock_unlock(self.lock) };
    }
}

/// Holds a zone's slab mutex (for `ngx_slab_*_locked`).
pub struct SlabLocked {
    pool: *mut ngx_slab_pool_t,
}

impl SlabLocked {
    /// # Safety
    /// `pool` must be the live slab pool of a mapped shared zone, not
    /// already locked by this process.
    pub unsafe fn new(pool: *mut ngx_slab_pool_t) -> Self {
        // SAFETY: per the contract.
        unsafe { ngx_shmtx_lock(&mut (*pool).mutex) };
        Self { pool }
    }

    /// [`SlabLocked::new`] for the master in init_module, on a zone the
    /// workers lock too (one kept across reloads). nginx frees the mutexes
    /// of a worker that died when it reaps it, and it does not reap while
    /// it reads a reload's configuration (SIGCHLD is blocked then): waiting
    /// on the mutex of a worker that dies meanwhile would stop the master
    /// for good, deaf to every signal (hunt 24). So this polls (every
    /// millisecond, not sleeping on the mutex's semaphore) and takes the
    /// mutex from a holder that has ended (no such process, or a zombie),
    /// as nginx does once it reaps it. A live holder is waited for (a
    /// worker holds it for a probe's verdict or a change): saying so once a
    /// second has passed, for one that is stopped. `zone` names the zone in
    /// those messages.
    ///
    /// # Safety
    /// As for [`SlabLocked::new`].
    pub unsafe fn in_master(pool: *mut ngx_slab_pool_t, zone: &str) -> Self {
        let started = Instant::now();
        let mut said = false;
        loop {
            // SAFETY: per the contract: the pool's mutex is live.
            let (taken, holder) = unsafe {
                let mutex = ptr::addr_of_mut!((*pool).mutex);
                (ngx_shmtx_trylock(mutex) != 0, ptr::read_volatile((*mutex).lock) as ngx::ffi::ngx_pid_t)
            };
            if taken {
                return Self { pool };
            }
            // No lock is held here: /proc may be read, and the log written.
            if holder > 0 && ended(holder) {
                // SAFETY: as above; unlocks only if `holder` still holds it.
                if unsafe { ngx_shmtx_force_unlock(ptr::addr_of_mut!((*pool).mutex), holder) } != 0 {
                    log(
                        NGX_LOG_WARN,
                        &format!(
                            "dynamic upstream: shared zone \"{zone}\" was locked by process {holder}, which has \
                             ended: unlocked"
                        ),
                    );
                }
                continue;
            }
            if !said && started.elapsed() >= Duration::from_secs(1) {
                said = true;
                log(
                    NGX_LOG_WARN,
                    &format!(
                        "dynamic upstream: shared zone \"{zone}\" has been locked by process {holder} for 1 s (a \
                         stopped process?): the reload waits for it"
                    ),
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn pool(&self) -> *mut ngx_slab_pool_t {
        self.pool
    }
}

impl Drop for SlabLocked {
    fn drop(&mut self) {
        // SAFETY: locked in new().
        unsafe { ngx_shmtx_unlock(&mut (*self.pool).mutex) };
    }
}

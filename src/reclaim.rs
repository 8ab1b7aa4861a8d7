//! Freeing removed peers only once no request can still use them.
//!
//! nginx 1.22 has no reference count on peers. A request that picked a peer
//! keeps `rrp->current` and writes to the peer when it finishes (`conns--`,
//! `fails++` in `ngx_http_upstream_free_round_robin_peer`), and its log
//! phase reads the peer's name through `$upstream_addr`. So a removed peer
//! is only unlinked; its memory is reclaimed by a two-phase grace period
//! over the requests of the zone (the scheme of sleepable RCU):
//!
//! * every request that uses the upstream registers in one of two
//!   counters, `active[phase]`, before it first reads the peer list (in the
//!   `peer.init` hook), and leaves it when its pool is destroyed, after its
//!   log phase;
//! * removed peers collect in `pending`. When nothing is `waiting`, the
//!   reaper moves `pending` to `waiting` and flips `phase`: requests that
//!   start from then on register in the other counter and cannot reach the
//!   waiting peers, which were unlinked before the flip;
//! * once the old phase's counter is seen at zero, every request that could
//!   have reached a waiting peer has finished: they are freed.
//!
//! A request re-checks the phase after registering (and moves if it
//! flipped meanwhile), so no late registration can hide in a drained
//! counter. The reaper runs after every change through the API, in any
//! worker.
//!
//! The counters are kept per process (a slot claimed by pid), so that a
//! worker killed while its requests were registered does not stop
//! reclamation forever: the slot of a process that no longer exists
//! (`kill(pid, 0)` fails with ESRCH) counts as drained, and a new process
//! reuses it. A recycled pid only delays reclamation; it never frees early.
//! Past the state's slots, further live processes share an overflow
//! counter that is never taken for dead.
//!
//! The slots follow the state in the same slab block. An upstream zone
//! lives for one configuration cycle (nginx never reuses it on reload), so
//! its state needs a slot per worker of that cycle plus spares for
//! respawned ones; the dyups registry's state outlives reloads and takes
//! [`REGISTRY_SLOTS`].

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::cell::RefCell;

use ngx::ffi::{ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_slab_calloc, ngx_slab_pool_t};

use crate::balancer::ZoneUpstream;
use crate::peer_lock::SlabLocked;
use crate::zone_peers::{free_list, free_peer};

/// Slots of the dyups registry's state, which the workers of every cycle
/// share (old workers during a reload, helpers): more than any sane
/// configuration runs at once.
pub const REGISTRY_SLOTS: usize = 64;

/// Slots of an upstream zone's state beyond one per worker: for workers
/// respawned while a dead one's slot still looks alive (recycled pid) and
/// for helper processes.
const SPARE_SLOTS: usize = 4;

/// One process's registered requests, per phase.
#[repr(C)]
struct ProcessSlot {
    /// 0: free.
    pid: AtomicI32,
    active: [AtomicUsize; 2],
}

impl ProcessSlot {
    /// Whether this slot's counts may still matter: its process may exist.
    fn owner_alive(&self) -> bool {
        let pid = self.pid.load(SeqCst);
        pid != 0 && process_exists(pid)
    }
}

fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// What a request registered with, to leave with.
#[derive(Clone, Copy)]
pub struct Ticket {
    slot: usize,
    phase: usize,
}

/// Per-zone bookkeeping, in the zone's own shared memory.
#[repr(C)]
pub struct ZoneState {
    phase: AtomicUsize,
    /// `slot_count` slots right after this struct, in the same block (shared
    /// memory is mapped at the same address in every process).
    slots: *mut ProcessSlot,
    slot_count: usize,
    /// For processes past the slots; never taken for dead.
    overflow: ProcessSlot,
    /// Set when a request's balancer data could not be recognised, so its
    /// `tried` bitmap could not be enlarged (see `request_hook`).
    pub unknown_request_data: AtomicBool,
    // The lists below are guarded by the zone's slab mutex. Retired peers
    // are chained through their `next`, retired peer lists (with all their
    // peers, backup list and name) through their `zone_next`.
    pending: Retired,
    waiting: Retired,
    waiting_phase: usize,
}

#[repr(C)]
struct Retired {
    peers: *mut ngx_http_upstream_rr_peer_t,
    lists: *mut ngx_http_upstream_rr_peers_t,
}

impl Retired {
    fn is_empty(&self) -> bool {
        self.peers.is_null() && self.lists.is_null()
    }

    fn take(&mut self) -> Retired {
        Retired {
            peers: core::mem::replace(&mut self.peers, ptr::null_mut()),
            lists: core::mem::replace(&mut self.lists, ptr::null_mut()),
        }
    }
}

impl ZoneState {
    /// Bytes of `count` slots.
    pub const fn slots_bytes(count: usize) -> usize {
        count * size_of::<ProcessSlot>()
    }

    /// Allocates the state of an upstream zone whose cycle runs `workers`
    /// workers (in the master's init_module).
    ///
    /// The block is at least as large as a peer so that it shares the slab
    /// pages of the zone's peers: a block of its own size class would take
    /// a 4 KiB page for itself. The slots fill the whole block.
    ///
    /// # Safety
    /// `pool` must be the slab pool of an initialised zone.
    pub unsafe fn create(pool: *mut ngx_slab_pool_t, workers: usize) -> *mut ZoneState {
        let size = (size_of::<ZoneState>() + Self::slots_bytes(workers + SPARE_SLOTS))
            .max(size_of::<ngx_http_upstream_rr_peer_t>());
        let slots = (size - size_of::<ZoneState>()) / size_of::<ProcessSlot>();
        // SAFETY: ngx_slab_calloc takes the slab mutex itself; the block
        // is zeroed and `size` covers the state and its slots.
        unsafe {
            let state = ngx_slab_calloc(pool, size).cast::<ZoneState>();
            if !state.is_null() {
                // A state's size is a multiple of its alignment, which is
                // the slots' alignment.
                Self::place_slots(state, state.add(1).cast(), slots);
            }
            state
        }
    }

    /// Completes a zeroed state (otherwise valid as it is: atomics at 0,
    /// empty lists) with its `count` zeroed slots at `tail`.
    ///
    /// # Safety
    /// `tail` is 8-byte aligned, has room for `count` slots and lives as
    /// long as the state, in the same shared memory.
    pub unsafe fn place_slots(state: *mut ZoneState, tail: *mut u8, count: usize) {
        // SAFETY: per the contract.
        unsafe {
            (*state).slots = tail.cast();
            (*state).slot_count = count;
        }
    }

    fn slots(&self) -> &[ProcessSlot] {
        if self.slots.is_null() {
            return &[];
        }
        // SAFETY: `slots` points to `slot_count` slots that live as long as
        // the state (see place_slots).
        unsafe { core::slice::from_raw_parts(self.slots, self.slot_count) }
    }

    /// Registers a starting request.
    pub fn enter(&self) -> Ticket {
        let slot = self.my_slot();
        let counters = &self.slot(slot).active;
        loop {
            let phase = self.phase.load(SeqCst) & 1;
            counters[phase].fetch_add(1, SeqCst);
            if self.phase.load(SeqCst) & 1 == phase {
                return Ticket { slot, phase };
            }
            counters[phase].fetch_sub(1, SeqCst);
        }
    }

    pub fn leave(&self, ticket: Ticket) {
        self.slot(ticket.slot).active[ticket.phase & 1].fetch_sub(1, SeqCst);
    }

    fn slot(&self, index: usize) -> &ProcessSlot {
        self.slots().get(index).unwrap_or(&self.overflow)
    }

    /// This process's slot in this zone (claimed on first use). Called for
    /// every proxied request: a process knows a handful of zones, so a
    /// linear scan beats hashing.
    fn my_slot(&self) -> usize {
        let key = self as *const ZoneState as usize;
        if let Some(slot) = MY_SLOTS.with(|m| m.borrow().iter().find(|(k, _)| *k == key).map(|&(_, slot)| slot)) {
            return slot;
        }
        let slot = self.claim_slot();
        MY_SLOTS.with(|m| m.borrow_mut().push((key, slot)));
        slot
    }

    fn claim_slot(&self) -> usize {
        let me = std::process::id() as i32;
        if let Some(i) = self.slots().iter().position(|s| s.pid.load(SeqCst) == me) {
            return i;
        }
        for (i, slot) in self.slots().iter().enumerate() {
            let owner = slot.pid.load(SeqCst);
            let reusable = owner == 0 || !process_exists(owner);
            if reusable && slot.pid.compare_exchange(owner, me, SeqCst, SeqCst).is_ok() {
                // The previous owner is gone: its counts no longer mean
                // anything.
                slot.active[0].store(0, SeqCst);
                slot.active[1].store(0, SeqCst);
                return i;
            }
        }
        if !OVERFLOW_WARNED.swap(true, SeqCst) {
            ngx::ngx_log_error!(
                ngx::ffi::NGX_LOG_WARN,
                ngx::log::ngx_cycle_log().as_ptr(),
                "dynamic upstream: more live processes than the {} grace-period slots of a zone; \
                 if one of the extra ones dies while serving, removed peers of that zone stay allocated",
                self.slot_count
            );
        }
        self.slot_count // the overflow counter
    }

    /// Whether every request registered in `phase` has left (requests of
    /// processes that no longer exist have left by definition).
    fn drained(&self, phase: usize) -> bool {
        let idle = |s: &ProcessSlot| s.active[phase].load(SeqCst) == 0 || !s.owner_alive();
        self.slots().iter().all(idle) && self.overflow.active[phase].load(SeqCst) == 0
    }

    /// Hands an unlinked peer over for deferred freeing.
    ///
    /// # Safety
    /// The caller holds the zone's slab mutex; `peer` is unlinked from
    /// every list and was allocated from this zone's slab.
    pub unsafe fn retire_peer(&mut self, peer: *mut ngx_http_upstream_rr_peer_t) {
        // SAFETY: per the contract.
        unsafe { (*peer).next = self.pending.peers };
        self.pending.peers = peer;
    }

    /// Hands a whole unreachable peer list (with its backup list, peers and
    /// name, all from this zone) over for deferred freeing.
    ///
    /// # Safety
    /// As for [`ZoneState::retire_peer`].
    pub unsafe fn retire_list(&mut self, list: *mut ngx_http_upstream_rr_peers_t) {
        // SAFETY: per the contract.
        unsafe { (*list).zone_next = self.pending.lists };
        self.pending.lists = list;
    }

    /// Frees what is safe to free and starts the next grace period.
    ///
    /// # Safety
    /// The caller holds the slab mutex of `pool`, the zone of this state.
    pub unsafe fn reap(&mut self, pool: *mut ngx_slab_pool_t) {
        if !self.waiting.is_empty() && self.drained(self.waiting_phase) {
            let done = self.waiting.take();
            // SAFETY: every request that could reach these has finished.
            unsafe { free_retired(pool, done) };
        }
        if self.waiting.is_empty() && !self.pending.is_empty() {
            self.waiting = self.pending.take();
            let old = self.phase.load(SeqCst) & 1;
            self.waiting_phase = old;
            self.phase.store(old ^ 1, SeqCst);
        }
    }
}

/// # Safety
/// The caller holds the slab mutex; nothing can reach `retired` any more.
unsafe fn free_retired(pool: *mut ngx_slab_pool_t, retired: Retired) {
    // SAFETY: per the contract.
    unsafe {
        let mut peer = retired.peers;
        while !peer.is_null() {
            let next = (*peer).next;
            free_peer(pool, peer);
            peer = next;
        }
        let mut list = retired.lists;
        while !list.is_null() {
            let next = (*list).zone_next;
            free_list(pool, list);
            list = next;
        }
    }
}

/// Set once this process has used an overflow counter (warned once).
static OVERFLOW_WARNED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This process's slot per zone state (workers are single-threaded):
    /// (zone state address, slot).
    static MY_SLOTS: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Hands an unlinked peer of a zone upstream over for deferred freeing.
///
/// # Safety
/// The caller holds the write locks of the peer's former list; `peer` is
/// unlinked and belongs to `zone`'s slab.
pub unsafe fn retire(zone: &ZoneUpstream, peer: *mut ngx_http_upstream_rr_peer_t) {
    // SAFETY: per the contract; the state lists are guarded by the slab
    // mutex, taken after the rwlocks as everywhere.
    unsafe {
        let _slab = SlabLocked::new(shpool(zone));
        (*zone.state).retire_peer(peer);
    }
}

/// Frees what is safe to free in a zone upstream's zone.
pub fn reap(zone: &ZoneUpstream) {
    // SAFETY: the state lives in the zone's shared memory; its lists are
    // changed only under the slab mutex held here.
    unsafe {
        let slab = SlabLocked::new(shpool(zone));
        (*zone.state).reap(slab.pool());
    }
}

/// # Safety
/// `zone` must be a zone upstream of the running cycle.
unsafe fn shpool(zone: &ZoneUpstream) -> *mut ngx_slab_pool_t {
    // SAFETY: a zone's shm starts with its slab pool.
    unsafe { (*(*zone.uscf).shm_zone).shm.addr.cast() }
}

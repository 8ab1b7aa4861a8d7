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
//! worker. A worker killed while requests were registered leaves its count
//! behind: that zone then stops reclaiming (a bounded leak until the next
//! reload renews the zone), never frees early.

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use ngx::ffi::{ngx_http_upstream_rr_peer_t, ngx_slab_calloc, ngx_slab_pool_t};

use crate::balancer::ZoneUpstream;
use crate::peer_lock::SlabLocked;
use crate::zone_peers::free_peer;

/// Per-zone bookkeeping, in the zone's own shared memory.
#[repr(C)]
pub struct ZoneState {
    phase: AtomicUsize,
    active: [AtomicUsize; 2],
    /// Set when a request's balancer data could not be recognised, so its
    /// `tried` bitmap could not be enlarged (see `request_hook`).
    pub unknown_request_data: AtomicBool,
    // The lists below are chained through the peers' `next` and guarded by
    // the zone's slab mutex.
    pending: *mut ngx_http_upstream_rr_peer_t,
    waiting: *mut ngx_http_upstream_rr_peer_t,
    waiting_phase: usize,
}

impl ZoneState {
    /// Allocates the state in a zone at start (master process, before the
    /// workers exist).
    ///
    /// # Safety
    /// `pool` must be the slab pool of an initialised zone.
    pub unsafe fn create(pool: *mut ngx_slab_pool_t) -> *mut ZoneState {
        // SAFETY: zeroed memory is a valid ZoneState (atomics at 0, empty
        // lists); ngx_slab_calloc takes the slab mutex itself.
        unsafe { ngx_slab_calloc(pool, core::mem::size_of::<ZoneState>()).cast() }
    }

    /// Registers a starting request; returns the phase to leave with.
    pub fn enter(&self) -> usize {
        loop {
            let phase = self.phase.load(SeqCst) & 1;
            self.active[phase].fetch_add(1, SeqCst);
            if self.phase.load(SeqCst) & 1 == phase {
                return phase;
            }
            self.active[phase].fetch_sub(1, SeqCst);
        }
    }

    pub fn leave(&self, phase: usize) {
        self.active[phase & 1].fetch_sub(1, SeqCst);
    }
}

/// Hands an unlinked peer over for deferred freeing.
///
/// # Safety
/// The caller holds the write locks of the peer's former list; `peer` is
/// unlinked and belongs to `zone`'s slab.
pub unsafe fn retire(zone: &ZoneUpstream, peer: *mut ngx_http_upstream_rr_peer_t) {
    // SAFETY: per the contract; the state lists are guarded by the slab
    // mutex, taken after the rwlocks as everywhere.
    unsafe {
        let _slab = SlabLocked::new(shpool(zone));
        let state = &mut *zone.state;
        (*peer).next = state.pending;
        state.pending = peer;
    }
}

/// Frees what is safe to free and starts the next grace period.
pub fn reap(zone: &ZoneUpstream) {
    // SAFETY: the state lives in the zone's shared memory; its lists are
    // changed only under the slab mutex held here.
    unsafe {
        let slab = SlabLocked::new(shpool(zone));
        let state = &mut *zone.state;
        if !state.waiting.is_null() && state.active[state.waiting_phase].load(SeqCst) == 0 {
            let mut peer = state.waiting;
            state.waiting = ptr::null_mut();
            while !peer.is_null() {
                let next = (*peer).next;
                free_peer(slab.pool(), peer);
                peer = next;
            }
        }
        if state.waiting.is_null() && !state.pending.is_null() {
            state.waiting = state.pending;
            state.pending = ptr::null_mut();
            let old = state.phase.load(SeqCst) & 1;
            state.waiting_phase = old;
            state.phase.store(old ^ 1, SeqCst);
        }
    }
}

/// # Safety
/// `zone` must be a zone upstream of the running cycle.
unsafe fn shpool(zone: &ZoneUpstream) -> *mut ngx_slab_pool_t {
    // SAFETY: a zone's shm starts with its slab pool.
    unsafe { (*(*zone.uscf).shm_zone).shm.addr.cast() }
}

//! Freeing removed peers of zone upstreams only once no request can still
//! use them.
//!
//! From nginx 1.27.3 on, nginx does it itself: a removed peer that requests
//! hold (`refs`) becomes a zombie that nginx frees when the last one lets
//! go, and any other is freed at once
//! ([`crate::nginx::version::NGINX_FREES_REMOVED_PEERS`]); nothing is
//! retired here then. What follows is for the versions before.
//!
//! nginx 1.22 and 1.26 have no reference count on peers. Every balancer
//! counts the requests that picked a peer in the peer's `conns`: `get`
//! increments it under the list's lock once it has picked the peer, and
//! `free` (`ngx_http_upstream_free_round_robin_peer`, where every built-in
//! balancer and `keepalive` end) decrements it under the list's read lock
//! and touches the peer no more after that. Until it picks a peer a request
//! reaches peers only through the lists, under their locks; from then until
//! `free` only through `rrp->current`. So a removed peer whose `conns`,
//! read under both lists' write locks, is zero cannot be reached by any
//! request: it is freed. The one pointer a request keeps after `free` is
//! the peer's name (`u->peer.name`, and `u->state->peer` for
//! `$upstream_addr`); the request hook wraps `free` and first moves both to
//! a copy in the request's pool ([`crate::zone::request_hook`]). A removed peer
//! thus waits only for the requests that hold it: a request that never ends
//! keeps its own peer allocated and nothing else. A worker killed while it
//! held a peer leaves that peer's `conns` counted (in stock nginx too, where
//! it skews `least_conn` and `max_conns`): that peer stays allocated if it
//! is removed; nothing else waits for it.
//!

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use ngx::ffi::{ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_slab_calloc, ngx_slab_pool_t};

use crate::nginx::peer_lock::{ListsWriteLocked, SlabLocked};
use crate::nginx::peer_stats::UpstreamCounters;
use crate::nginx::version::{peer_free_locked, NGINX_FREES_REMOVED_PEERS};

/// The length of the longer of `primary` and its backup list (read
/// volatile: other processes change them under their lock).
///
/// # Safety
/// `primary` is the primary list of a zone upstream of the running cycle.
unsafe fn longest_list(primary: *mut ngx_http_upstream_rr_peers_t) -> usize {
    // SAFETY: per the contract; the backup list, once linked, lives as
    // long as the primary.
    unsafe {
        let number = ptr::read_volatile(ptr::addr_of!((*primary).number));
        let backup = ptr::read_volatile(ptr::addr_of!((*primary).next));
        if backup.is_null() {
            number
        } else {
            number.max(ptr::read_volatile(ptr::addr_of!((*backup).number)))
        }
    }
}

/// Per-zone bookkeeping of a zone upstream, in the zone's shared memory.
#[repr(C)]
pub struct ZoneState {
    /// Set when a request's balancer data could not be recognised, so its
    /// `tried` bitmap could not be enlarged (see `request_hook`).
    pub unknown_request_data: AtomicBool,
    /// Removed peers not freed yet, chained through their `next`; guarded
    /// by the zone's slab mutex.
    retired: *mut ngx_http_upstream_rr_peer_t,
    /// The upstream's next server ID and revision (NGINX Plus API).
    pub counters: UpstreamCounters,
    /// The most peers either list of the upstream has had since the workers
    /// started (noted at start and by every change that adds peers, under
    /// the lists' write locks; never lowered): the balancers set no bit of
    /// a request's `tried` bitmap at or beyond it (see `request_hook`).
    most_peers: AtomicUsize,
}

impl ZoneState {
    /// Allocates the state of an upstream zone (in the master's
    /// init_module).
    ///
    /// The block is as large as a peer so that it shares the slab pages of
    /// the zone's peers: a block of its own size class would take a 4 KiB
    /// page for itself.
    ///
    /// # Safety
    /// `pool` must be the slab pool of an initialised zone.
    pub unsafe fn create(pool: *mut ngx_slab_pool_t) -> *mut ZoneState {
        let size = size_of::<ZoneState>().max(size_of::<ngx_http_upstream_rr_peer_t>());
        // SAFETY: ngx_slab_calloc takes the slab mutex itself; a zeroed
        // state is valid (flag clear, nothing retired).
        unsafe { ngx_slab_calloc(pool, size).cast() }
    }

    /// Hands an unlinked peer of a zone upstream over, to be freed once no
    /// request holds it: by nginx where it counts `refs`, else by
    /// [`ZoneState::reap`].
    ///
    /// Before nginx 1.27.3, only peers of the built-in balancers that follow set changes come
    /// here (round robin, `least_conn`, `ip_hash`, `hash`, with `keepalive`
    /// or not), which count every pick in `conns` until `free`:
    /// `ZoneUpstream::apply` refuses removals with 409 on the others
    /// (`random`, `hash ... consistent`, and every balancer this module does
    /// not know, whose `get` may not count: `Balancer::follows_set_changes`).
    ///
    /// # Safety
    /// `state` is the zone's state and `pool` its slab pool; the caller
    /// holds the write locks of the peer's former list; `peer` is unlinked
    /// and belongs to the zone's slab.
    pub unsafe fn retire(state: *mut ZoneState, pool: *mut ngx_slab_pool_t, peer: *mut ngx_http_upstream_rr_peer_t) {
        // SAFETY: per the contract; the retired chain is guarded by the
        // slab mutex, taken after the rwlocks as everywhere.
        unsafe {
            let slab = SlabLocked::new(pool);
            if NGINX_FREES_REMOVED_PEERS {
                peer_free_locked(slab.pool(), peer);
                return;
            }
            (*peer).next = (*state).retired;
            (*state).retired = peer;
        }
    }

    /// Notes the lengths of `primary` and its backup list in
    /// [`Self::most_peers`].
    ///
    /// # Safety
    /// `primary` is this zone upstream's primary list; the caller holds its
    /// lists' write locks, or no worker runs yet.
    pub unsafe fn note_list_lengths(&self, primary: *mut ngx_http_upstream_rr_peers_t) {
        // SAFETY: per the contract.
        let longest = unsafe { longest_list(primary) };
        self.most_peers.fetch_max(longest, SeqCst);
    }

    /// The most peers either list of the upstream whose primary list is
    /// `primary` has had (see [`Self::note_list_lengths`]), from any
    /// process without a lock.
    ///
    /// # Safety
    /// `primary` is this zone upstream's primary list.
    pub unsafe fn most_peers(&self, primary: *mut ngx_http_upstream_rr_peers_t) -> usize {
        // The lists' current lengths too, read without their lock (as
        // nginx's peer.init does): never below what was noted, unless a
        // change path failed to note (then the lengths still bound what
        // the lists have now).
        // SAFETY: per the contract.
        self.most_peers.load(SeqCst).max(unsafe { longest_list(primary) })
    }

    /// Removed peers that requests still hold (NGINX Plus's "zombies").
    ///
    /// # Safety
    /// `state` and `pool` are the state and slab pool of one zone upstream
    /// of the running cycle.
    pub unsafe fn zombies(state: *mut ZoneState, pool: *mut ngx_slab_pool_t) -> u64 {
        // SAFETY: per the contract; the retired chain is read under the
        // slab mutex that guards it, bounded by the removed peers.
        unsafe {
            let _slab = SlabLocked::new(pool);
            let mut n = 0;
            let mut peer = (*state).retired;
            while !peer.is_null() {
                n += 1;
                peer = (*peer).next;
            }
            n
        }
    }

    /// Frees the removed peers of a zone upstream that no request holds
    /// any more (see the module comment): work bounded by the removed peers.
    ///
    /// # Safety
    /// `state`, `primary` and `pool` are the state, primary list and slab
    /// pool of one zone upstream of the running cycle.
    pub unsafe fn reap(state: *mut ZoneState, primary: *mut ngx_http_upstream_rr_peers_t, pool: *mut ngx_slab_pool_t) {
        if NGINX_FREES_REMOVED_PEERS {
            return; // nothing is ever retired
        }
        // SAFETY: per the contract; the lists and the state live in the
        // zone's shared memory for the cycle. Under both lists' write locks
        // no balancer is between reading and changing a `conns`, and a
        // request in `free` holds one of them for reading until it no
        // longer touches the peer. Order: primary, backup, slab mutex, as
        // for every change.
        unsafe {
            let _locks = ListsWriteLocked::new(primary);
            let slab = SlabLocked::new(pool);
            let mut link = ptr::addr_of_mut!((*state).retired);
            while !(*link).is_null() {
                let peer = *link;
                if (*peer).conns == 0 {
                    *link = (*peer).next;
                    peer_free_locked(slab.pool(), peer);
                } else {
                    link = ptr::addr_of_mut!((*peer).next);
                }
            }
        }
    }
}

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
//! a copy in the request's pool ([`crate::zone::upstream::request_hook`]). A removed peer
//! thus waits only for the requests that hold it: a request that never ends
//! keeps its own peer allocated and nothing else. A worker killed while it
//! held a peer leaves that peer's `conns` counted (in stock nginx too, where
//! it skews `least_conn` and `max_conns`): that peer stays allocated if it
//! is removed; nothing else waits for it.
//!
//! The chain of removed peers and the freeing under the locks are
//! [`crate::nginx::peer_list::RetiredPeers`]; a peer enters it only as an
//! [`UnlinkedPeer`], which only the code that unlinked it under the lists'
//! write locks makes.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use crate::nginx::peer_list::{place_in_zone, RetiredPeers, UnlinkedPeer, PEER_SIZE};
use crate::nginx::peer_lock::{ListLengths, ZoneLists};
use crate::nginx::peer_stats::UpstreamCounters;

/// Per-zone bookkeeping of a zone upstream, in the zone's shared memory.
#[repr(C)]
pub struct ZoneState {
    /// Set when a request's balancer data could not be recognised, so its
    /// `tried` bitmap could not be enlarged (see `request_hook`).
    pub unknown_request_data: AtomicBool,
    /// Removed peers not freed yet (guarded by the zone's slab mutex), and
    /// the upstream's lists.
    retired: RetiredPeers,
    /// The upstream's next server ID and revision (NGINX Plus API).
    pub counters: UpstreamCounters,
    /// The most peers either list of the upstream has had since the workers
    /// started (see `request_hook`).
    lengths: ListLengths,
    /// REST API replaces taking the upstream over from its zone (see
    /// [`ZoneState::hand_over`]).
    hand_overs: AtomicU64,
}

impl ZoneState {
    /// Allocates the state of the zone upstream whose lists are `lists`
    /// in its zone (in the master's init_module); null if the zone has no
    /// room.
    ///
    /// The block is as large as a peer so that it shares the slab pages of
    /// the zone's peers: a block of its own size class would take a 4 KiB
    /// page for itself.
    pub fn create(lists: ZoneLists) -> *mut ZoneState {
        let state = ZoneState {
            unknown_request_data: AtomicBool::new(false),
            retired: RetiredPeers::new(lists),
            counters: UpstreamCounters::default(),
            lengths: ListLengths::new(lists),
            hand_overs: AtomicU64::new(0),
        };
        place_in_zone(lists, state, PEER_SIZE)
    }

    /// Hands an unlinked peer of this zone upstream over, to be freed once
    /// no request holds it: by nginx where it counts `refs`, else by
    /// [`ZoneState::reap`].
    ///
    /// Before nginx 1.27.3, only peers of the built-in balancers that follow set changes come
    /// here (round robin, `least_conn`, `ip_hash`, `hash`, with `keepalive`
    /// or not), which count every pick in `conns` until `free`:
    /// `ZoneUpstream::apply` refuses removals with 409 on the others
    /// (`random`, `hash ... consistent`, and every balancer this module does
    /// not know, whose `get` may not count: `Balancer::follows_set_changes`).
    pub fn retire(&self, peer: UnlinkedPeer<'_>) {
        self.retired.retire(peer);
    }

    /// A REST API replace takes the upstream over from its zone (under the
    /// lists' write locks, where it reads the zone's numbering): from now
    /// on no change of the zone's lists is made (`Refusal::HandedOver`),
    /// so that none is lost or numbered like the replace's servers
    /// (review 26). [`Self::take_back`] if the replace fails.
    pub fn hand_over(&self) {
        self.hand_overs.fetch_add(1, SeqCst);
    }

    pub fn take_back(&self) {
        self.hand_overs.fetch_sub(1, SeqCst);
    }

    /// Whether a REST API replace took (or is taking) the upstream over.
    pub fn handed_over(&self) -> bool {
        self.hand_overs.load(SeqCst) != 0
    }

    /// Notes the lengths of the upstream's lists in [`Self::lengths`]
    /// (under the lists' write locks, or before any worker runs).
    pub fn note_list_lengths(&self) {
        self.lengths.note();
    }

    /// The most peers either list of the upstream has had (see
    /// [`Self::note_list_lengths`]; [`ListLengths::most`] reads it from any
    /// process without a lock): the requests' bitmaps are zeroed that far.
    pub fn lengths(&self) -> &ListLengths {
        &self.lengths
    }

    /// Removed peers that requests still hold (NGINX Plus's "zombies").
    pub fn zombies(&self) -> u64 {
        self.retired.count()
    }

    /// Frees the removed peers of the zone upstream that no request holds
    /// any more (see the module comment): work bounded by the removed peers.
    pub fn reap(&self) {
        self.retired.reap();
    }
}

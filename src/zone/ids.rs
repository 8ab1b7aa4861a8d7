//! Server IDs of the peers of a zone upstream or of a run-time upstream's
//! list: given under the lists' write locks (or before a list is
//! published), kept in the peer's record ([`crate::nginx::peer_stats`]).

use core::ptr;
use core::sync::atomic::Ordering::Relaxed;

use dynamic_upstream_core::plus::ids::MAX_ID;
use dynamic_upstream_core::plus::stats::word;
use ngx::ffi::{ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t};

use crate::nginx::peer_list::{find_peer, peers_of};
use crate::nginx::peer_stats::{at, counting, id_of, set_id, UpstreamCounters};

/// Gives every peer of `primary` and its backup list that has no ID the
/// next free one, in list order (first the primaries), after those the
/// peers already have; nothing when this cycle does not count. Once the
/// IDs reach [`MAX_ID`] (a state file may give one that high), the lowest
/// free ID instead.
///
/// # Safety
/// The caller holds the write locks of `primary` and its backup list.
pub unsafe fn ensure_ids(primary: *mut ngx_http_upstream_rr_peers_t, counters: &UpstreamCounters) {
    if !counting() {
        return;
    }
    // SAFETY: per the contract; every peer of a locked list is live.
    unsafe {
        let lists = [primary, (*primary).next];
        let peers = || lists.into_iter().flat_map(|list| peers_of(list));
        let mut next = counters.next_id.load(Relaxed);
        for id in peers().filter_map(|p| id_of(p)) {
            next = next.max(id.saturating_add(1));
        }
        for peer in peers() {
            if id_of(peer).is_some() {
                continue;
            }
            if next > MAX_ID {
                // Among as many candidates as there are peers plus one, one
                // is free: bounded work, only with IDs this high.
                let count = peers().count();
                let taken = |c: u64| peers().any(|p| id_of(p) == Some(c));
                if let Some(free) = (0..=MAX_ID).take(count + 1).find(|&c| !taken(c)) {
                    set_id(peer, free);
                }
                continue;
            }
            set_id(peer, next);
            next += 1;
        }
        counters.next_id.store(next, Relaxed);
    }
}

/// A new version of a run-time upstream (`new`, not published yet) takes
/// over from `old` (null when created): a server of the same address in
/// the same kind of list (primary or backup) keeps its ID and counters,
/// the others get new IDs (unless the caller gave them one), from `old`'s
/// next free ID on. Requests that still hold `old` count into its peers
/// until they end: those counts are not carried over (README). Bounded
/// work without allocation (called under the registry's lock).
///
/// # Safety
/// The caller holds the registry lock; `old` is null or the live list
/// `new` replaces; `new` is reached by no one else yet.
pub unsafe fn inherit(
    new: *mut ngx_http_upstream_rr_peers_t,
    new_counters: &UpstreamCounters,
    old: *mut ngx_http_upstream_rr_peers_t,
    old_counters: Option<&UpstreamCounters>,
) {
    // SAFETY: per the contract.
    unsafe {
        let old_lists = if old.is_null() { [ptr::null_mut(); 2] } else { [old, (*old).next] };
        for (list, old_list) in [new, (*new).next].into_iter().zip(old_lists) {
            for peer in peers_of(list) {
                let Some(o) = find_peer(old_list, name_of(peer)) else { continue };
                let given = id_of(peer);
                for i in 0..word::COUNT {
                    at(peer, i).store(at(o, i).load(Relaxed), Relaxed);
                }
                if let Some(id) = given {
                    set_id(peer, id);
                }
            }
        }
        new_counters.next_id.store(old_counters.map_or(0, |c| c.next_id.load(Relaxed)), Relaxed);
        ensure_ids(new, new_counters);
    }
}

/// # Safety
/// `peer` is live; the slice is used while it is.
unsafe fn name_of<'a>(peer: *mut ngx_http_upstream_rr_peer_t) -> &'a [u8] {
    // SAFETY: per the contract; a peer's name is valid for name.len bytes.
    unsafe { core::slice::from_raw_parts((*peer).name.data, (*peer).name.len) }
}

//! Edits of a zone upstream's peer lists under their locks.
//!
//! nginx 1.22 keeps a zone upstream's peers in the zone's slab: a primary
//! list (`uscf->peer.data`) and an optional backup list (`primary->next`),
//! each an `ngx_http_upstream_rr_peers_t` with its own rwlock. Every edit
//! here checks everything that can refuse it under both write locks, then
//! applies it with [`crate::nginx::peer_list`]'s primitives; refusals are
//! reported as a [`Refusal`] whose message the caller writes once the locks
//! are released. A removed peer is unlinked, never freed here: in-flight
//! requests may still hold it (`rrp->current`, `$upstream_addr`). It goes
//! to [`crate::zone::reclaim`], which frees it once no such request can
//! remain.

use core::ptr;

use dynamic_upstream_core::peer::checked_total_weight;
use dynamic_upstream_core::plus::diff::Plan;
use dynamic_upstream_core::render::PeerValues;
use dynamic_upstream_core::{PeerParams, ServerSpec};
use ngx::ffi::{
    ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_slab_free_locked, ngx_slab_pool_t, ngx_sockaddr_t,
};

use crate::nginx::peer_list::{
    alloc_peer, append_peer, edit_list, find_peer, free_chain, init_backup_list, peers_of, set_changed, set_single,
    unlink_peer, update_peer, weight_of, UnlinkedPeer, DOWN_ADMIN, DOWN_HEALTH,
};
use crate::nginx::peer_lock::{ListsWriteLocked, LockedLists, SlabLocked};
use crate::nginx::peer_stats::{id_of, UpstreamCounters};
use crate::nginx::sockaddr::{PeerAddress, SOCKADDR_STRLEN};
use crate::nginx::version::{free_peer_now, peer_free_locked, resolved_from};
use crate::zone::ids::ensure_ids;
use crate::zone::reclaim::ZoneState;

/// Why an edit made under the locks was refused; the caller writes the
/// message once the locks are released (no allocation under them).
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    Exists,
    /// The list already has this many peers, the most the zone tracks.
    ListFull(usize),
    NoRoom,
    LastPeer,
    NotFound,
    /// The weights of a list would total more than [`MAX_TOTAL_WEIGHT`].
    WeightTotal {
        backup: bool,
    },
    /// nginx's resolver made this peer (`server NAME resolve`).
    Resolved,
}

/// The peer an edit is about: by address, or by its server ID (resolved
/// under the write locks, so that a server removed and added again
/// meanwhile is not taken for the one the ID named).
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Name(&'a PeerAddress),
    Id(u64),
}

/// A peer's name copied out under the locks (no allocation there).
pub struct PeerName {
    bytes: [u8; SOCKADDR_STRLEN],
    len: usize,
}

impl PeerName {
    /// # Safety
    /// `peer` is live.
    unsafe fn of(peer: *mut ngx_http_upstream_rr_peer_t) -> Self {
        let mut name = PeerName { bytes: [0; SOCKADDR_STRLEN], len: 0 };
        // SAFETY: per the contract; a peer's name is valid for name.len
        // bytes (at most SOCKADDR_STRLEN, as nginx writes them).
        unsafe {
            name.len = (*peer).name.len.min(SOCKADDR_STRLEN);
            ptr::copy_nonoverlapping((*peer).name.data, name.bytes.as_mut_ptr(), name.len);
        }
        name
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Changes the parameters of the peer `target`, under both write locks.
/// Returns its name and its values from before.
///
/// # Safety
/// `primary` is the live shared primary list of a zone upstream.
pub unsafe fn update_locked(
    primary: *mut ngx_http_upstream_rr_peers_t,
    counters: &UpstreamCounters,
    target: Target,
    params: &PeerParams,
    down: Option<bool>,
) -> Result<(PeerName, PeerValues), Refusal> {
    // SAFETY: shared lists of a zone upstream, changed under both write
    // locks (primary, then backup).
    unsafe {
        let _locks = ListsWriteLocked::new(primary);
        let (list, peer) = find_in_lists(primary, target).ok_or(Refusal::NotFound)?;
        if resolved_from(peer).is_some() {
            return Err(Refusal::Resolved);
        }
        check_totals(primary, |p| if p == peer { params.weight.unwrap_or(weight_of(p)) } else { weight_of(p) }, None)?;
        // Copied into a fixed-size value: nothing allocates under the locks.
        let p = &*peer;
        let before = PeerValues {
            weight: weight_of(peer),
            max_fails: p.max_fails as u64,
            fail_timeout: p.fail_timeout as u64,
            max_conns: p.max_conns as u64,
            down: p.down & DOWN_ADMIN != 0,
        };
        update_peer(list, peer, params, down);
        set_single(primary);
        counters.bump();
        Ok((PeerName::of(peer), before))
    }
}

/// The list holding the peer `target`, and the peer.
///
/// # Safety
/// The caller holds the write locks of `primary` and its backup list.
pub unsafe fn find_in_lists(
    primary: *mut ngx_http_upstream_rr_peers_t,
    target: Target,
) -> Option<(*mut ngx_http_upstream_rr_peers_t, *mut ngx_http_upstream_rr_peer_t)> {
    // SAFETY: per the contract.
    unsafe {
        [primary, (*primary).next].into_iter().find_map(|list| {
            let peer = match target {
                Target::Name(address) => find_peer(list, address.name()),
                Target::Id(id) => peers_of(list).find(|&p| id_of(p) == Some(id)),
            };
            peer.map(|peer| (list, peer))
        })
    }
}

/// The name of the peer `target`, if there is one.
///
/// # Safety
/// `primary` is the live shared primary list of a zone upstream.
pub unsafe fn name_of(primary: *mut ngx_http_upstream_rr_peers_t, target: Target) -> Option<PeerName> {
    // SAFETY: per the contract; the peer is read under the lists' locks.
    unsafe {
        let _locks = ListsWriteLocked::new(primary);
        find_in_lists(primary, target).map(|(_, peer)| PeerName::of(peer))
    }
}

/// Refuses a change after which the weights of the primary or the backup
/// list would total more than [`MAX_TOTAL_WEIGHT`]: with each present peer
/// weighing `weight` (0 for one being removed), plus a new peer `added`
/// (to the backup list?, its weight). Sums the lists as they are, not
/// `total_weight`: nginx's own sum of a configuration may have wrapped.
/// Any change is checked, so the module never writes a state file past the
/// limit (which its reader refuses).
///
/// # Safety
/// The caller holds the write locks of `primary` and its backup list.
unsafe fn check_totals(
    primary: *mut ngx_http_upstream_rr_peers_t,
    weight: impl Fn(*mut ngx_http_upstream_rr_peer_t) -> u64,
    added: Option<(bool, u64)>,
) -> Result<(), Refusal> {
    // SAFETY: per the contract.
    unsafe {
        for (backup, list) in [(false, primary), (true, (*primary).next)] {
            let extra = added.filter(|&(to_backup, _)| to_backup == backup).map(|(_, w)| w);
            if checked_total_weight(peers_of(list).map(&weight).chain(extra)).is_none() {
                return Err(Refusal::WeightTotal { backup });
            }
        }
    }
    Ok(())
}

/// The end of every change that adds peers, still under both write
/// locks: links a new backup list (last, once complete: requests reach it
/// only through `primary->next`, read under the primary lock), lets the
/// caller's `on_linked` run, and keeps the lists' `single` flag, the
/// server IDs, the revision and the zone's longest list right.
///
/// # Safety
/// The caller holds the write locks of `primary` and its backup list;
/// `new_backup` is a complete backup list no one can reach yet.
unsafe fn finish_change(
    primary: *mut ngx_http_upstream_rr_peers_t,
    state: &ZoneState,
    new_backup: Option<*mut ngx_http_upstream_rr_peers_t>,
    on_linked: impl FnOnce(),
) {
    // SAFETY: per the contract.
    unsafe {
        if let Some(backup) = new_backup {
            (*primary).next = backup;
        }
        on_linked();
        set_single(primary);
        ensure_ids(LockedLists::assume(primary), &state.counters);
        state.counters.bump();
        state.note_list_lengths();
    }
}

/// Appends a new peer for `spec` to the primary or backup list (creating
/// the backup list if needed), under both write locks and the slab mutex;
/// `health_down`: it starts down for the health checks; `on_linked` runs
/// once it is linked, still under the locks (it must not allocate).
///
/// # Safety
/// `primary` is the live shared primary list of a zone upstream.
pub unsafe fn add_locked(
    primary: *mut ngx_http_upstream_rr_peers_t,
    state: &ZoneState,
    spec: &ServerSpec,
    address: &PeerAddress,
    limit: usize,
    health_down: bool,
    on_linked: impl FnOnce(),
) -> Result<(), Refusal> {
    // SAFETY: shared lists of a zone upstream, changed under both write
    // locks (primary, then backup); slab memory under the slab mutex, taken
    // inside them.
    unsafe {
        let _locks = ListsWriteLocked::new(primary);
        let mut backup = (*primary).next;

        if find_in_lists(primary, Target::Name(address)).is_some() {
            return Err(Refusal::Exists);
        }
        let list_len = match (spec.backup, backup.is_null()) {
            (false, _) => (*primary).number,
            (true, true) => 0,
            (true, false) => (*backup).number,
        };
        if list_len >= limit {
            return Err(Refusal::ListFull(list_len));
        }
        check_totals(primary, |p| weight_of(p), Some((spec.backup, spec.weight)))?;

        let slab = SlabLocked::new((*primary).shpool);
        let new_backup_list = spec.backup && backup.is_null();
        let (peer, list) =
            alloc_peer(slab.pool(), spec, address, address.name(), new_backup_list).ok_or(Refusal::NoRoom)?;
        drop(slab);
        if health_down {
            (*peer).down |= DOWN_HEALTH;
        }
        if new_backup_list {
            init_backup_list(list, primary);
            backup = list;
        }

        append_peer(if spec.backup { backup } else { primary }, peer);
        finish_change(primary, state, new_backup_list.then_some(backup), on_linked);
    }
    Ok(())
}

/// Unlinks the peer `target` from its list under both write locks and
/// hands it to `retire` (still under them). Returns its name.
///
/// # Safety
/// `primary` is the live shared primary list of a zone upstream.
pub unsafe fn remove_locked(
    primary: *mut ngx_http_upstream_rr_peers_t,
    counters: &UpstreamCounters,
    target: Target,
    retire: impl FnOnce(UnlinkedPeer<'_>),
) -> Result<PeerName, Refusal> {
    // SAFETY: per the contract.
    unsafe {
        let locks = ListsWriteLocked::new(primary);

        let (list, peer) = find_in_lists(primary, target).ok_or(Refusal::NotFound)?;
        if resolved_from(peer).is_some() {
            return Err(Refusal::Resolved);
        }
        if list == primary && (*primary).number == 1 {
            return Err(Refusal::LastPeer);
        }
        check_totals(primary, |p| if p == peer { 0 } else { weight_of(p) }, None)?;
        let name = PeerName::of(peer);
        unlink_peer(list, peer);
        set_single(primary);
        retire(UnlinkedPeer::new(&locks.lists(), peer));
        counters.bump();
        Ok(name)
    }
}

/// An upper bound on the peers a zone of `size` bytes can hold: each peer
/// takes at least its struct, its sockaddr and its name from the slab.
pub fn max_peers_for_zone(size: usize) -> usize {
    let min_peer_bytes =
        core::mem::size_of::<ngx_http_upstream_rr_peer_t>() + core::mem::size_of::<ngx_sockaddr_t>() + SOCKADDR_STRLEN;
    (size / min_peer_bytes).max(1)
}

/// How [`replace_peers`] ended.
pub enum Replaced {
    Yes,
    /// The configuration's peers were rebuilt.
    NoRoom,
    /// Not even those fit again (see [`replace_peers`]: cannot happen).
    Lost,
}

/// Makes `servers` the peers of `primary` and its backup list, next to
/// the peers nginx's resolver made (kept as they are). The old
/// peers are freed first, so the zone needs room for the new ones only
/// (a zone filled through the API holds its own state file). If it has
/// none, the new peers taken so far are freed and the old ones rebuilt
/// from `kept` (specs and `server` texts).
///
/// The rebuild fits again. Every block of a peer is under half a page
/// (the struct, the sockaddr, the name's NGX_SOCKADDR_STRLEN and a
/// `server` text under [`SNAPSHOT_SERVER_MAX`]), so the slab serves each
/// as a chunk of its size class: from a page of that class with a free
/// chunk, or else from any free page. A freed chunk stays free in its
/// page, or that page goes back to the free pages once it is empty; the
/// failed attempt gave back everything it took, and nothing else allocates
/// meanwhile (the slab mutex is held, in the master). The rebuilt blocks
/// have exactly the sizes of the freed ones, so for each size class the
/// rebuild finds the chunks the old peers left, or as many free pages as
/// their freeing emptied.
///
/// # Safety
/// The caller holds both lists' write locks and the slab mutex of `pool`,
/// and no request can reach the old peers.
pub unsafe fn replace_peers(
    pool: *mut ngx_slab_pool_t,
    primary: *mut ngx_http_upstream_rr_peers_t,
    servers: &[ServerSpec],
    kept: &[(ServerSpec, &[u8])],
) -> Replaced {
    // SAFETY: per the contract.
    unsafe {
        for list in [primary, (*primary).next] {
            if !list.is_null() {
                (*list).peer = free_static_peers(pool, (*list).peer);
            }
        }
        if link_peers(pool, primary, servers.iter().map(|spec| (spec, None))) {
            Replaced::Yes
        } else if link_peers(pool, primary, kept.iter().map(|(spec, server)| (spec, Some(*server)))) {
            Replaced::NoRoom
        } else {
            // Lists of their resolved peers only (if any), whose counts
            // say so.
            for list in [primary, (*primary).next] {
                if !list.is_null() {
                    set_changed(list);
                }
            }
            set_single(primary);
            Replaced::Lost
        }
    }
}

/// Allocates a peer for each of `servers` (spec, and `server` text if not
/// its name) and makes them the peers of the empty `primary` and backup
/// lists (allocating a backup list if one is needed). If the zone has no
/// room, frees what it took and returns false with the lists unchanged.
///
/// # Safety
/// The caller holds both lists' write locks and the slab mutex of `pool`;
/// the lists have no peers but resolved ones (kept after the new ones).
unsafe fn link_peers<'a>(
    pool: *mut ngx_slab_pool_t,
    primary: *mut ngx_http_upstream_rr_peers_t,
    servers: impl Iterator<Item = (&'a ServerSpec, Option<&'a [u8]>)>,
) -> bool {
    // SAFETY: per the contract; the new peers are reachable by nobody
    // until linked at the end.
    unsafe {
        let mut backup = (*primary).next;
        let mut new_list: *mut ngx_http_upstream_rr_peers_t = ptr::null_mut();
        let mut heads: [*mut ngx_http_upstream_rr_peer_t; 2] = [ptr::null_mut(); 2];
        let mut tails = [ptr::addr_of_mut!(heads[0]), ptr::addr_of_mut!(heads[1])];
        for (spec, server) in servers {
            let with_list = spec.backup && backup.is_null() && new_list.is_null();
            let address = PeerAddress::new(&spec.address);
            let server = server.unwrap_or(address.name());
            let Some((peer, list)) = alloc_peer(pool, spec, &address, server, with_list) else {
                free_chain(pool, heads[0]);
                free_chain(pool, heads[1]);
                if !new_list.is_null() {
                    ngx_slab_free_locked(pool, new_list.cast());
                }
                return false;
            };
            if with_list {
                new_list = list;
            }
            let chain = usize::from(spec.backup);
            *tails[chain] = peer;
            tails[chain] = &mut (*peer).next;
        }
        if !new_list.is_null() {
            init_backup_list(new_list, primary);
            (*primary).next = new_list;
            backup = new_list;
        }
        for (list, chain) in [(primary, 0), (backup, 1)] {
            if list.is_null() {
                continue;
            }
            // The resolved peers the list kept follow the new ones.
            *tails[chain] = (*list).peer;
            (*list).peer = heads[chain];
            set_changed(list);
        }
        set_single(primary);
        true
    }
}

/// Why a replace did not happen under the locks.
pub enum Lost {
    /// Another change came first: plan again.
    Race,
    NoRoom,
}

/// Applies `plan` (whose new servers and their addresses are `added`) if
/// the revision is still `revision`, in one pass over each list
/// ([`edit_list`]; `plan`'s IDs are sorted, so each peer is looked up by
/// binary search): linear work under the locks (nothing is allocated on
/// the heap under them).
/// The new peers start down by their checks where `health_down` (one per
/// entry of `added`) says so; `on_linked` runs once they are linked, still
/// under the locks (it must not allocate).
/// As the revision moves with every change under the locks, an unchanged
/// revision means the lists are the ones the plan was made from.
///
/// # Safety
/// `primary` is the live shared primary list of a zone upstream.
#[allow(clippy::too_many_arguments)] // the plan's parts, and what runs under the locks
pub unsafe fn replace_locked(
    primary: *mut ngx_http_upstream_rr_peers_t,
    state: &ZoneState,
    revision: u64,
    plan: &Plan,
    added: &[(&ServerSpec, PeerAddress)],
    health_down: &[bool],
    mut retire: impl FnMut(UnlinkedPeer<'_>),
    on_linked: impl FnOnce(),
) -> Result<(), Lost> {
    // Allocated before the locks (with room for every new peer).
    let mut new_peers: Vec<*mut ngx_http_upstream_rr_peer_t> = Vec::with_capacity(added.len());
    // SAFETY: shared lists of a zone upstream, changed under both write
    // locks (primary, then backup); slab memory under the slab mutex,
    // taken inside them and released before retiring (which takes it).
    unsafe {
        let locks = ListsWriteLocked::new(primary);
        let lists = locks.lists();
        if state.counters.revision() != revision {
            return Err(Lost::Race);
        }
        // Every new peer first: a zone without room changes nothing.
        let slab = SlabLocked::new((*primary).shpool);
        let mut backup_list: *mut ngx_http_upstream_rr_peers_t = ptr::null_mut();
        for (spec, address) in added {
            let with_list = spec.backup && (*primary).next.is_null() && backup_list.is_null();
            match alloc_peer(slab.pool(), spec, address, address.name(), with_list) {
                Some((peer, list)) => {
                    if with_list {
                        backup_list = list;
                    }
                    new_peers.push(peer); // within capacity
                }
                None => {
                    for &peer in new_peers.iter() {
                        free_peer_now(slab.pool(), peer);
                    }
                    if !backup_list.is_null() {
                        ngx_slab_free_locked(slab.pool(), backup_list.cast());
                    }
                    return Err(Lost::NoRoom);
                }
            }
        }
        drop(slab);
        for (&peer, _) in new_peers.iter().zip(health_down).filter(|(_, &down)| down) {
            (*peer).down |= DOWN_HEALTH;
        }
        if !backup_list.is_null() {
            init_backup_list(backup_list, primary);
        }
        let backup = if backup_list.is_null() { (*primary).next } else { backup_list };
        let update = |peer| {
            let id = id_of(peer)?;
            let i = plan.update.binary_search_by_key(&id, |u| u.id).ok()?;
            Some((&plan.update[i].params, plan.update[i].down))
        };
        let keep = |peer| !id_of(peer).is_some_and(|id| plan.remove.binary_search(&id).is_ok());
        for (list, backups) in [(primary, false), (backup, true)] {
            if list.is_null() {
                continue;
            }
            let of_list = new_peers.iter().zip(added).filter(|(_, (spec, _))| spec.backup == backups);
            let removed = |peer| retire(UnlinkedPeer::new(&lists, peer));
            edit_list(list, update, keep, removed, of_list.map(|(&peer, _)| peer));
        }
        finish_change(primary, state, (!backup_list.is_null()).then_some(backup_list), on_linked);
    }
    Ok(())
}

/// Frees the peers of the chain `peer` that nginx's resolver did not make
/// and returns the chain of those it did (which stay nginx's).
///
/// # Safety
/// The caller holds the list's write lock and the slab mutex of `pool`;
/// no request can reach the peers.
unsafe fn free_static_peers(
    pool: *mut ngx_slab_pool_t,
    mut peer: *mut ngx_http_upstream_rr_peer_t,
) -> *mut ngx_http_upstream_rr_peer_t {
    // SAFETY: per the contract.
    unsafe {
        let mut kept: *mut ngx_http_upstream_rr_peer_t = ptr::null_mut();
        let mut tail = ptr::addr_of_mut!(kept);
        while !peer.is_null() {
            let next = (*peer).next;
            if resolved_from(peer).is_some() {
                (*peer).next = ptr::null_mut();
                *tail = peer;
                tail = ptr::addr_of_mut!((*peer).next);
            } else {
                peer_free_locked(pool, peer);
            }
            peer = next;
        }
        kept
    }
}

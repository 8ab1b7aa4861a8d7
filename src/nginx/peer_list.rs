//! nginx's shared peer lists (`ngx_http_upstream_rr_peers_t` in a zone's
//! slab): walking, copying out, counting, linking, allocating and freeing
//! peers the way nginx's zone module lays them out. The policy (what may
//! change, and when a peer may be freed) is the callers'.
//!
//! The rules every function here follows:
//!
//! * every read holds the list's read lock, every change its write lock
//!   (primary before backup, the order in which nginx's balancer visits
//!   them); slab allocations and frees hold the slab mutex inside those;
//! * under a lock nothing allocates on the Rust heap, nothing panics, and
//!   work is bounded by the list length;
//! * the list counters nginx's balancers rely on (`number`, `total_weight`,
//!   `weighted`, `tries`, `single`) are recomputed after every change, the
//!   way `ngx_http_upstream_init_round_robin` sets them.

#![allow(clippy::disallowed_types)] // the wrapper layer: nginx's own structs (see clippy.toml)

use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering::Relaxed};

use dynamic_upstream_core::peer::{checked_total_weight, MAX_TOTAL_WEIGHT};
use dynamic_upstream_core::render::PeerValues;
use dynamic_upstream_core::{PeerParams, PeerView, ServerSpec};
use ngx::ffi::{
    ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_slab_alloc_locked, ngx_slab_calloc_locked,
    ngx_slab_free_locked, ngx_slab_pool_t, ngx_sockaddr_t, ngx_str_t, ngx_uint_t,
};

use crate::nginx::peer_lock::{LockedLists, LockedPeer, ReadLocked, SlabLocked, ZoneLists};
use crate::nginx::peer_stats::{id_of, record_of, set_id};
use crate::nginx::sockaddr::{PeerAddress, SOCKADDR_STRLEN};
use crate::nginx::version::{
    bump_config, free_peer_now, peer_free_locked, resolved_from, share_config, NGINX_FREES_REMOVED_PEERS,
};

/// `peer->down` holds two flags; every nginx balancer skips a peer whose
/// `down` is not 0, and `tries` counts the peers whose `down` is 0. An
/// administrator's `down` (configuration, APIs, state files) is
/// [`DOWN_ADMIN`]; a failing health check's is [`DOWN_HEALTH`]. Each side
/// changes its own bit only, and listings show the administrator's.
pub const DOWN_ADMIN: ngx_uint_t = 1;
pub const DOWN_HEALTH: ngx_uint_t = 2;

/// Longest `server` text copied into a snapshot (config text can be long).
pub const SNAPSHOT_SERVER_MAX: usize = 256;

/// The size of one of nginx's peers (`ngx_http_upstream_rr_peer_t`).
pub const PEER_SIZE: usize = size_of::<ngx_http_upstream_rr_peer_t>();

/// One peer copied out under the read lock, without heap allocation.
struct PeerSnapshot {
    name: [u8; SOCKADDR_STRLEN],
    name_len: usize,
    server: [u8; SNAPSHOT_SERVER_MAX],
    server_len: usize,
    /// The name `server NAME resolve` resolved it from, if it was.
    resolved_from: Option<([u8; SNAPSHOT_SERVER_MAX], usize)>,
    backup: bool,
    peer: ngx_http_upstream_rr_peer_t,
}

/// A peer's weight as nginx keeps it (at least 1).
///
/// # Safety
/// `peer` is a live peer of a list whose lock the caller holds.
pub unsafe fn weight_of(peer: *mut ngx_http_upstream_rr_peer_t) -> u64 {
    // SAFETY: per the contract.
    unsafe { (*peer).weight as u64 }
}

/// The peers of `list` (none for a null list), walked by `next`.
///
/// # Safety
/// The caller holds `list`'s lock while the iterator is used.
pub unsafe fn peers_of(
    list: *mut ngx_http_upstream_rr_peers_t,
) -> impl Iterator<Item = *mut ngx_http_upstream_rr_peer_t> {
    // SAFETY: per the contract.
    let first = if list.is_null() { ptr::null_mut() } else { unsafe { (*list).peer } };
    core::iter::successors((!first.is_null()).then_some(first), |&peer| {
        // SAFETY: every peer of a locked list is live.
        let next = unsafe { (*peer).next };
        (!next.is_null()).then_some(next)
    })
}

/// Copies a peer list (primaries, then backups) with live figures.
///
/// # Safety
/// `primary` must stay allocated during the call (its locks protect the
/// contents); it is a shared list or a process-local one (whose locks are
/// uncontended).
pub unsafe fn list_peers(primary: *mut ngx_http_upstream_rr_peers_t) -> Vec<PeerView> {
    // SAFETY: per the contract.
    unsafe { list_peers_picked(primary, Pick::All) }
}

/// Which peers [`list_peers_picked`] copies.
#[derive(Clone, Copy)]
pub enum Pick<'a> {
    All,
    /// The peer of this server ID.
    Id(u64),
    /// The peers of this name (`127.0.0.1:8080`).
    Name(&'a [u8]),
}

impl Pick<'_> {
    /// Whether it takes a copied peer (a registry list's, copied whole).
    pub fn takes_view(self, peer: &PeerView) -> bool {
        match self {
            Pick::All => true,
            Pick::Id(id) => peer.stats.id == Some(id),
            Pick::Name(name) => peer.name.as_bytes() == name,
        }
    }

    /// Whether it takes `peer`, read in its list.
    ///
    /// # Safety
    /// `peer` is live (its list locked).
    unsafe fn takes(self, peer: *mut ngx_http_upstream_rr_peer_t) -> bool {
        // SAFETY: per the contract.
        unsafe {
            match self {
                Pick::All => true,
                Pick::Id(id) => id_of(peer) == Some(id),
                Pick::Name(name) => {
                    let own = &(*peer).name;
                    !own.data.is_null() && core::slice::from_raw_parts(own.data, own.len) == name
                }
            }
        }
    }
}

/// [`list_peers`], of the peers `pick` takes only: an answer about one
/// server copies that one, not the whole list (a single-server NGINX Plus
/// API call copied 16 MB at 20,000 servers under the read lock, hunt 35).
///
/// # Safety
/// As for [`list_peers`].
pub unsafe fn list_peers_picked(primary: *mut ngx_http_upstream_rr_peers_t, pick: Pick<'_>) -> Vec<PeerView> {
    // SAFETY: per the contract.
    unsafe { snapshots(primary, pick) }.iter().map(to_view).collect()
}

/// Copies of the peers of `primary`'s lists (primaries, then backups)
/// that `pick` takes.
///
/// # Safety
/// As for [`list_peers`].
unsafe fn snapshots(primary: *mut ngx_http_upstream_rr_peers_t, pick: Pick<'_>) -> Vec<PeerSnapshot> {
    // The number of peers can change between sizing and copying; copy what
    // fits and size again if the list grew meanwhile.
    let mut capacity = match pick {
        // SAFETY: per the contract.
        Pick::All => (unsafe { peer_count(primary) }) + 8,
        Pick::Id(_) | Pick::Name(_) => 4,
    };
    loop {
        let mut snapshots: Vec<PeerSnapshot> = Vec::with_capacity(capacity);
        // SAFETY: per the contract.
        if unsafe { copy_peers(primary, pick, &mut snapshots) } {
            return snapshots;
        }
        capacity *= 2;
    }
}

/// Copies of the peers of `primary`'s lists (primaries, then backups),
/// read without their locks: those of a list whose peers never change (a
/// dyups registry list, replaced whole, never edited). What never changes
/// (names, parameters, the administrator's `down`) is exact; what requests
/// and checks change (connections, failures, weights, the health bit) is
/// read as it is, field by field. Its locks are nginx's for those: a
/// process killed holding one (nginx never releases it) must not stop
/// every listing, state file write and worker start of the registry.
///
/// # Safety
/// As for [`names_of_fixed_list`].
pub unsafe fn list_fixed_peers(primary: *mut ngx_http_upstream_rr_peers_t) -> Vec<PeerView> {
    // SAFETY: per the contract.
    unsafe { fixed_snapshots(primary) }.iter().map(to_view).collect()
}

/// The names of the peers of `primary`'s lists whose health bit
/// ([`DOWN_HEALTH`]) is set, read as [`list_fixed_peers`] reads them.
///
/// # Safety
/// As for [`names_of_fixed_list`].
pub unsafe fn fixed_health_down_names(primary: *mut ngx_http_upstream_rr_peers_t) -> Vec<Vec<u8>> {
    // SAFETY: per the contract.
    let snapshots = unsafe { fixed_snapshots(primary) };
    snapshots.iter().filter(|s| s.peer.down & DOWN_HEALTH != 0).map(|s| s.name[..s.name_len].to_vec()).collect()
}

/// # Safety
/// As for [`names_of_fixed_list`].
unsafe fn fixed_snapshots(primary: *mut ngx_http_upstream_rr_peers_t) -> Vec<PeerSnapshot> {
    let mut snapshots = Vec::new();
    // SAFETY: per the contract: the lists, their peers and the peers'
    // names stay as they are while we read them; the fields other
    // processes change are machine words, read volatile (no torn word).
    unsafe {
        for (list, backup) in [(primary, false), ((*primary).next, true)] {
            for peer in peers_of(list) {
                snapshots.push(snapshot_of(peer, ptr::read_volatile(peer), backup));
            }
        }
    }
    snapshots
}

/// The names of the peers of `primary`'s lists (primaries, then backups),
/// read without their locks: those of a list whose peers never change.
///
/// # Safety
/// `primary` is live for the call, and no peer is added to its lists,
/// removed or renamed while it lives (a dyups registry list, which is
/// replaced, never edited).
pub unsafe fn names_of_fixed_list(primary: *mut ngx_http_upstream_rr_peers_t) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    // SAFETY: per the contract.
    unsafe { each_name_of_fixed_list(primary, |name| names.push(name.to_vec())) };
    names
}

/// Gives `f` the name of each peer of `primary`'s lists (primaries, then
/// backups; empty for a peer without one), read as [`names_of_fixed_list`]
/// reads them.
///
/// # Safety
/// As for [`names_of_fixed_list`].
pub unsafe fn each_name_of_fixed_list(primary: *mut ngx_http_upstream_rr_peers_t, mut f: impl FnMut(&[u8])) {
    // SAFETY: per the contract: the lists, their peers and the peers'
    // names stay as they are while we read them.
    unsafe {
        for list in [primary, (*primary).next] {
            for peer in peers_of(list) {
                let name = &(*peer).name;
                f(if name.data.is_null() { &[] } else { core::slice::from_raw_parts(name.data, name.len) });
            }
        }
    }
}

/// # Safety
/// As for [`list_peers`].
unsafe fn peer_count(primary: *mut ngx_http_upstream_rr_peers_t) -> usize {
    // SAFETY: read under the list's lock.
    unsafe {
        let _lock = ReadLocked::new(primary);
        let backup = (*primary).next;
        (*primary).number + if backup.is_null() { 0 } else { (*backup).number }
    }
}

/// Whether a peer of the zone upstream's lists has no server ID yet:
/// read under the lists' read locks (primary first, as nginx takes them),
/// so that a listing that finds every ID given (every scrape of the NGINX
/// Plus API, once the IDs are given) holds no request up.
pub fn some_peer_lacks_id(lists: ZoneLists) -> bool {
    let primary = lists.raw();
    // SAFETY: a ZoneLists is a live shared list and its backup list, once
    // linked, lives as long; each walked under its read lock.
    unsafe {
        let _primary_lock = ReadLocked::new(primary);
        if peers_of(primary).any(|peer| id_of(peer).is_none()) {
            return true;
        }
        let backup = (*primary).next;
        if backup.is_null() {
            return false;
        }
        let _backup_lock = ReadLocked::new(backup);
        peers_of(backup).any(|peer| id_of(peer).is_none())
    }
}

/// Copies every peer into `out` without growing it; false if they did not
/// fit.
///
/// # Safety
/// As for [`list_peers`].
unsafe fn copy_peers(primary: *mut ngx_http_upstream_rr_peers_t, pick: Pick<'_>, out: &mut Vec<PeerSnapshot>) -> bool {
    // SAFETY: each list walked under its read lock (primary first, as
    // nginx does).
    unsafe {
        let _primary_lock = ReadLocked::new(primary);
        if !copy_list(primary, false, pick, out) {
            return false;
        }
        let backup = (*primary).next;
        if backup.is_null() {
            return true;
        }
        let _backup_lock = ReadLocked::new(backup);
        copy_list(backup, true, pick, out)
    }
}

fn to_view(s: &PeerSnapshot) -> PeerView {
    let p = &s.peer;
    PeerView {
        server: String::from_utf8_lossy(&s.server[..s.server_len]).into_owned(),
        name: String::from_utf8_lossy(&s.name[..s.name_len]).into_owned(),
        weight: p.weight as i64,
        max_fails: p.max_fails as u64,
        fail_timeout: p.fail_timeout,
        max_conns: p.max_conns as u64,
        backup: s.backup,
        resolved_from: s.resolved_from.map(|(name, len)| String::from_utf8_lossy(&name[..len]).into_owned()),
        down: p.down & DOWN_ADMIN != 0,
        conns: p.conns as u64,
        fails: p.fails as u64,
        current_weight: p.current_weight as i64,
        effective_weight: p.effective_weight as i64,
        accessed: p.accessed,
        checked: p.checked,
        stats: record_of(p),
        health: None,
    }
}

/// Appends copies of the list's peers that `pick` takes to `out` while it
/// has room.
///
/// # Safety
/// `list` must be a live peer list whose lock the caller holds.
unsafe fn copy_list(
    list: *mut ngx_http_upstream_rr_peers_t,
    backup: bool,
    pick: Pick<'_>,
    out: &mut Vec<PeerSnapshot>,
) -> bool {
    // SAFETY: per the contract; every peer of a locked list is live.
    unsafe {
        for peer in peers_of(list) {
            if !pick.takes(peer) {
                continue;
            }
            if out.len() == out.capacity() {
                return false;
            }
            crate::nginx::peer_stats::observe(peer);
            let mut snapshot = snapshot_of(peer, *peer, backup);
            if let Some(from) = resolved_from(peer) {
                let mut name = [0; SNAPSHOT_SERVER_MAX];
                let len = from.len().min(name.len());
                name[..len].copy_from_slice(&from[..len]);
                snapshot.resolved_from = Some((name, len));
            }
            out.push(snapshot); // within capacity: no allocation
        }
    }
    true
}

/// A snapshot of `peer` whose fields the caller copied (`fields`), with
/// its name and server.
///
/// # Safety
/// `peer` is a live peer whose names stay as they are during the call.
unsafe fn snapshot_of(
    peer: *mut ngx_http_upstream_rr_peer_t,
    fields: ngx_http_upstream_rr_peer_t,
    backup: bool,
) -> PeerSnapshot {
    let mut snapshot = PeerSnapshot {
        name: [0; SOCKADDR_STRLEN],
        name_len: 0,
        server: [0; SNAPSHOT_SERVER_MAX],
        server_len: 0,
        resolved_from: None,
        backup,
        peer: fields,
    };
    // SAFETY: per the contract.
    unsafe {
        snapshot.name_len = copy_str(&(*peer).name, &mut snapshot.name);
        snapshot.server_len = copy_str(&(*peer).server, &mut snapshot.server);
    }
    snapshot
}

/// Copies as much of `s` as fits into `dst`; returns the bytes copied.
///
/// # Safety
/// `s` must be a valid nginx string (or empty).
unsafe fn copy_str(s: &ngx_str_t, dst: &mut [u8]) -> usize {
    let len = s.len.min(dst.len());
    if len > 0 && !s.data.is_null() {
        // SAFETY: s.data has s.len >= len bytes; dst has >= len bytes.
        unsafe { ptr::copy_nonoverlapping(s.data, dst.as_mut_ptr(), len) };
    }
    len
}

/// Changes one peer's parameters and keeps the list's counters right.
///
/// # Safety
/// `peer` must be in `list`, whose write lock the caller holds.
pub unsafe fn update_peer(
    list: *mut ngx_http_upstream_rr_peers_t,
    peer: *mut ngx_http_upstream_rr_peer_t,
    params: &PeerParams,
    down: Option<bool>,
) {
    // SAFETY: per the contract.
    unsafe {
        if set_params(peer, params, down) {
            set_changed(list);
        } else {
            recount(list);
        }
    }
}

/// Changes one peer's parameters, leaving the list's counters to the
/// caller ([`recount`], or [`set_changed`] when this answers that its
/// weight changed).
///
/// # Safety
/// `peer` is in a list whose write lock the caller holds.
unsafe fn set_params(peer: *mut ngx_http_upstream_rr_peer_t, params: &PeerParams, down: Option<bool>) -> bool {
    // SAFETY: per the contract.
    unsafe {
        if params.max_fails.is_some() || params.fail_timeout.is_some() || down == Some(false) {
            // The fields that decide whether nginx skips it change: its
            // stretch of unavail so far is folded first.
            crate::nginx::peer_stats::settle(peer);
        }
        let p = &mut *peer;
        let weight_changed = params.weight.is_some_and(|w| w != p.weight as u64);
        if let Some(weight) = params.weight {
            p.weight = weight as _;
            p.effective_weight = weight as _;
        }
        if let Some(max_fails) = params.max_fails {
            p.max_fails = max_fails as _;
        }
        if let Some(fail_timeout) = params.fail_timeout {
            p.fail_timeout = fail_timeout as _;
        }
        if let Some(max_conns) = params.max_conns {
            p.max_conns = max_conns as _;
        }
        if let Some(down) = down {
            p.down = if down { p.down | DOWN_ADMIN } else { p.down & !DOWN_ADMIN };
            if !down {
                // Brought up by an operator: eligible at once, not only
                // after a failure timeout from before it went down.
                p.fails = 0;
                p.checked = 0;
            }
        }
        weight_changed
    }
}

/// Edits `list` in one pass, for a change of many peers at once: gives
/// each peer the parameters `params` answers for it, unlinks those `keep`
/// refuses (handing each to `removed`), appends `added` in order, then
/// recounts the list, and [`set_changed`] once if the set or a weight
/// changed (work linear in the peers, where a peer-by-peer edit would walk
/// the list per peer).
///
/// # Safety
/// The caller holds `list`'s write lock; `added` are complete unlinked
/// peers; `removed` takes an unlinked peer over without freeing it.
pub unsafe fn edit_list<'p>(
    list: *mut ngx_http_upstream_rr_peers_t,
    params: impl Fn(*mut ngx_http_upstream_rr_peer_t) -> Option<(&'p PeerParams, Option<bool>)>,
    keep: impl Fn(*mut ngx_http_upstream_rr_peer_t) -> bool,
    mut removed: impl FnMut(*mut ngx_http_upstream_rr_peer_t),
    added: impl Iterator<Item = *mut ngx_http_upstream_rr_peer_t>,
) {
    // SAFETY: per the contract.
    unsafe {
        let mut changed = false;
        let mut link: *mut *mut ngx_http_upstream_rr_peer_t = &mut (*list).peer;
        while !(*link).is_null() {
            let peer = *link;
            if !keep(peer) {
                *link = (*peer).next;
                removed(peer);
                changed = true;
                continue;
            }
            if let Some((params, down)) = params(peer) {
                changed |= set_params(peer, params, down);
            }
            link = &mut (*peer).next;
        }
        for peer in added {
            (*peer).next = ptr::null_mut();
            *link = peer;
            link = &mut (*peer).next;
            changed = true;
        }
        if changed {
            set_changed(list);
        } else {
            recount(list);
        }
    }
}

/// Recomputes `number`, `total_weight`, `weighted` and `tries` from the
/// peers, as `ngx_http_upstream_init_round_robin` does.
///
/// # Safety
/// The caller holds `list`'s write lock.
pub unsafe fn recount(list: *mut ngx_http_upstream_rr_peers_t) {
    // SAFETY: per the contract.
    unsafe {
        let (mut number, mut tries) = (0usize, 0usize);
        for peer in peers_of(list) {
            number += 1;
            if (*peer).down == 0 {
                tries += 1;
            }
        }
        // Every change was checked against the limit first (check_totals;
        // dyups lists hold API weights), so this is the exact sum; were it
        // not, the limit keeps nginx's divisor non-zero.
        let total_weight =
            checked_total_weight(peers_of(list).map(|p| weight_of(p))).unwrap_or(MAX_TOTAL_WEIGHT) as usize;
        let l = &mut *list;
        l.number = number;
        l.total_weight = total_weight;
        l.tries = tries;
        l.set_weighted((total_weight != number) as _);
    }
}

/// Smooth weighted round robin keeps a running `current_weight` per peer
/// whose sum is 0 while the set of peers is fixed; adding or removing a
/// peer breaks that and skews the split for a long while. Start afresh,
/// as nginx does at start.
///
/// # Safety
/// The caller holds `list`'s write lock.
unsafe fn restart_smooth_weights(list: *mut ngx_http_upstream_rr_peers_t) {
    // SAFETY: per the contract.
    for peer in unsafe { peers_of(list) } {
        // SAFETY: a live peer of the locked list.
        unsafe { (*peer).current_weight = 0 };
    }
}

/// The one place every change of a list's set of peers or of a weight
/// goes through: recounts the list, restarts its smooth weighting, and
/// moves nginx's generation word ([`bump_config`]: from 1.27.3 on, a
/// request that started before gets no further peer from the list, so it
/// never indexes a longer list with its `tried` bitmap, and `random` and
/// `hash ... consistent` rebuild their tables). Not for `down` or the other
/// parameters: that would fail in-flight requests' next tries for nothing.
///
/// # Safety
/// The caller holds `list`'s write lock (and its primary's, which shares
/// the word).
pub unsafe fn set_changed(list: *mut ngx_http_upstream_rr_peers_t) {
    // SAFETY: per the contract.
    unsafe {
        recount(list);
        restart_smooth_weights(list);
        bump_config(list);
    }
}

/// `single` tells the balancer there is exactly one peer and no backup to
/// fall back to; nginx then never marks that peer failed.
/// With `off_beside_backups`, a linked backup list keeps it off, even an
/// empty one (`Balancer::keeps_single_off_beside_backups`).
///
/// A peer left alone by a change (the others removed) has its failures
/// forgotten, its stretch of `unavail` folded first: nginx never skips the
/// only server, whatever its `fails` (before 1.27.3 it kept them, and the
/// APIs listed it `unavail`, its downtime running, while it served every
/// request, review 44; from 1.27.3 nginx resets them at its next attempt).
///
/// # Safety
/// The caller holds the primary list's write lock.
pub unsafe fn set_single(primary: *mut ngx_http_upstream_rr_peers_t, off_beside_backups: bool) {
    // SAFETY: per the contract; primary->next is read under its lock.
    unsafe {
        let backup = (*primary).next;
        let has_backups = !backup.is_null() && ((*backup).number > 0 || off_beside_backups);
        let single = (*primary).number == 1 && !has_backups;
        let peer = (*primary).peer;
        if single && (*primary).single() == 0 && !peer.is_null() && (*peer).fails != 0 {
            crate::nginx::peer_stats::settle(peer);
            (*peer).fails = 0;
        }
        (*primary).set_single(single as _);
    }
}

/// # Safety
/// The caller holds `list`'s write lock; `peer` is complete and unlinked.
pub unsafe fn append_peer(list: *mut ngx_http_upstream_rr_peers_t, peer: *mut ngx_http_upstream_rr_peer_t) {
    // SAFETY: per the contract.
    unsafe {
        let mut link: *mut *mut ngx_http_upstream_rr_peer_t = &mut (*list).peer;
        while !(*link).is_null() {
            link = &mut (**link).next;
        }
        (*peer).next = ptr::null_mut();
        *link = peer;
        set_changed(list);
    }
}

/// # Safety
/// The caller holds `list`'s write lock and `peer` is in it.
pub unsafe fn unlink_peer(list: *mut ngx_http_upstream_rr_peers_t, peer: *mut ngx_http_upstream_rr_peer_t) {
    // SAFETY: per the contract.
    unsafe {
        let mut link: *mut *mut ngx_http_upstream_rr_peer_t = &mut (*list).peer;
        while !(*link).is_null() {
            if *link == peer {
                *link = (*peer).next;
                break;
            }
            link = &mut (**link).next;
        }
        set_changed(list);
    }
}

/// A new backup list shares the primary's pool, name and generation word.
///
/// # Safety
/// `list` is fresh zeroed slab memory; the primary list is write-locked.
pub unsafe fn init_backup_list(list: *mut ngx_http_upstream_rr_peers_t, primary: *mut ngx_http_upstream_rr_peers_t) {
    // SAFETY: per the contract.
    unsafe {
        (*list).shpool = (*primary).shpool;
        (*list).name = (*primary).name;
        share_config(list, primary);
    }
}

/// Allocates a peer shaped exactly like the zone module's copies (peer,
/// sockaddr, name and server as separate slab blocks, so every peer is
/// freed the same way), plus a zeroed peer list when `with_list`, and fills
/// it in (`server` is the text of its `server` line). On failure frees
/// what it took and returns None.
///
/// # Safety
/// The caller holds the slab mutex of `pool`.
pub unsafe fn alloc_peer(
    pool: *mut ngx_slab_pool_t,
    spec: &ServerSpec,
    address: &PeerAddress,
    server: &[u8],
    with_list: bool,
) -> Option<(*mut ngx_http_upstream_rr_peer_t, *mut ngx_http_upstream_rr_peers_t)> {
    let name = address.name();
    // SAFETY: per the contract; the blocks are fresh and large enough.
    unsafe {
        let blocks = quietly(pool, || alloc_peer_blocks(pool, server.len(), with_list));
        let PeerBlocks { peer, sockaddr, name: name_data, server: server_data, list } = blocks?;

        ptr::copy_nonoverlapping(ptr::addr_of!(address.sockaddr).cast::<u8>(), sockaddr, address.socklen as usize);
        ptr::copy_nonoverlapping(name.as_ptr(), name_data, name.len());
        ptr::copy_nonoverlapping(server.as_ptr(), server_data, server.len());
        let p = &mut *peer;
        p.sockaddr = sockaddr.cast();
        p.socklen = address.socklen;
        p.name = ngx_str_t { len: name.len(), data: name_data };
        p.server = ngx_str_t { len: server.len(), data: server_data };
        p.weight = spec.weight as _;
        p.effective_weight = spec.weight as _;
        p.current_weight = 0;
        p.max_fails = spec.max_fails as _;
        p.fail_timeout = spec.fail_timeout as _;
        p.max_conns = spec.max_conns as _;
        p.down = spec.down as _;
        if let Some(id) = spec.id {
            set_id(peer, id);
        }
        Some((peer, list))
    }
}

/// The slab blocks of one new peer.
struct PeerBlocks {
    peer: *mut ngx_http_upstream_rr_peer_t,
    sockaddr: *mut u8,
    name: *mut u8,
    server: *mut u8,
    list: *mut ngx_http_upstream_rr_peers_t,
}

/// # Safety
/// The caller holds the slab mutex of `pool`.
unsafe fn alloc_peer_blocks(pool: *mut ngx_slab_pool_t, server_len: usize, with_list: bool) -> Option<PeerBlocks> {
    // SAFETY: per the contract.
    unsafe {
        let blocks = PeerBlocks {
            peer: ngx_slab_calloc_locked(pool, core::mem::size_of::<ngx_http_upstream_rr_peer_t>()).cast(),
            sockaddr: ngx_slab_calloc_locked(pool, core::mem::size_of::<ngx_sockaddr_t>()).cast(),
            name: ngx_slab_calloc_locked(pool, SOCKADDR_STRLEN).cast(),
            server: ngx_slab_alloc_locked(pool, server_len).cast(),
            list: if with_list {
                ngx_slab_calloc_locked(pool, core::mem::size_of::<ngx_http_upstream_rr_peers_t>()).cast()
            } else {
                ptr::null_mut()
            },
        };
        let all: [*mut c_void; 5] =
            [blocks.peer.cast(), blocks.sockaddr.cast(), blocks.name.cast(), blocks.server.cast(), blocks.list.cast()];
        let missing = all[..4].iter().any(|b| b.is_null()) || (with_list && blocks.list.is_null());
        if missing {
            for block in all.into_iter().filter(|b| !b.is_null()) {
                ngx_slab_free_locked(pool, block);
            }
            return None;
        }
        Some(blocks)
    }
}

/// Frees a chain of peers linked by `next`, each at once (not nginx's
/// `refs` rule: no request holds them, and the module never makes a peer
/// of a list it frees whole a zombie that nginx would free too).
///
/// # Safety
/// The caller holds the slab mutex; no request can reach the peers.
pub unsafe fn free_chain(pool: *mut ngx_slab_pool_t, mut peer: *mut ngx_http_upstream_rr_peer_t) {
    // SAFETY: per the contract.
    unsafe {
        while !peer.is_null() {
            let next = (*peer).next;
            free_peer_now(pool, peer);
            peer = next;
        }
    }
}

/// Frees a whole peer list that the dyups registry built: its peers, its
/// backup list and peers, and its name.
///
/// # Safety
/// The caller holds the slab mutex; no request can reach `list` any more;
/// the list was built by [`build_list`].
pub unsafe fn free_list(pool: *mut ngx_slab_pool_t, list: *mut ngx_http_upstream_rr_peers_t) {
    // SAFETY: per the contract.
    unsafe {
        let backup = (*list).next;
        for l in [list, backup] {
            if !l.is_null() {
                free_chain(pool, (*l).peer);
            }
        }
        if !backup.is_null() {
            ngx_slab_free_locked(pool, backup.cast());
        }
        let name = (*list).name;
        if !name.is_null() {
            ngx_slab_free_locked(pool, name.cast());
        }
        ngx_slab_free_locked(pool, list.cast());
    }
}

/// Builds a complete shared peer list (primary and, if any server is a
/// backup, a backup list) in a zone, for an upstream created at run time.
/// The primary list's block is `block_size` bytes, zeroed: the list, then
/// whatever the caller keeps with it.
/// The list is not reachable by anyone until the caller publishes it.
/// On failure frees everything it took and returns None.
///
/// # Safety
/// The caller holds the slab mutex of `pool`; `block_size` is at least the
/// size of a list.
pub unsafe fn build_list(
    pool: *mut ngx_slab_pool_t,
    name: &str,
    servers: &[ServerSpec],
    block_size: usize,
) -> Option<*mut ngx_http_upstream_rr_peers_t> {
    // SAFETY: per the contract; every block is checked before use.
    unsafe {
        quietly(pool, || {
            // The list's name: an ngx_str_t followed by its bytes, one block.
            let name_block =
                ngx_slab_alloc_locked(pool, core::mem::size_of::<ngx_str_t>() + name.len()).cast::<ngx_str_t>();
            let list = ngx_slab_calloc_locked(pool, block_size).cast::<ngx_http_upstream_rr_peers_t>();
            if name_block.is_null() || list.is_null() {
                for block in [name_block.cast::<c_void>(), list.cast()] {
                    if !block.is_null() {
                        ngx_slab_free_locked(pool, block);
                    }
                }
                return None;
            }
            let name_data = name_block.add(1).cast::<u8>();
            ptr::copy_nonoverlapping(name.as_ptr(), name_data, name.len());
            name_block.write(ngx_str_t { len: name.len(), data: name_data });
            (*list).shpool = pool;
            (*list).name = name_block;

            // Each list's last link: a peer is linked without a walk, and
            // each list is counted once at the end (tens of thousands of
            // servers were linked after a walk and counted again each,
            // under the registry's lock: hunt 19). Every chain stays
            // complete, for free_list.
            let mut tails = [ptr::addr_of_mut!((*list).peer), ptr::null_mut()];
            for spec in servers {
                let address = PeerAddress::new(&spec.address);
                let with_backup_list = spec.backup && (*list).next.is_null();
                let Some((peer, backup)) = alloc_peer(pool, spec, &address, address.name(), with_backup_list) else {
                    free_list(pool, list);
                    return None;
                };
                if with_backup_list {
                    init_backup_list(backup, list);
                    (*list).next = backup;
                    tails[1] = ptr::addr_of_mut!((*backup).peer);
                }
                let tail = &mut tails[usize::from(spec.backup)];
                (*peer).next = ptr::null_mut();
                **tail = peer;
                *tail = ptr::addr_of_mut!((*peer).next);
            }
            for built in [list, (*list).next] {
                if !built.is_null() {
                    set_changed(built);
                }
            }
            // A registry list never changes once published: nothing reads
            // its single flag apart from round robin while it changes.
            set_single(list, false);
            Some(list)
        })
    }
}

/// Runs `alloc` with the slab's "no memory" logging off: a full zone is an
/// ordinary API answer (507), not nginx's "[crit] ngx_slab_alloc() failed:
/// no memory". The flag is restored before the mutex is released, so other
/// users of the zone keep it.
///
/// # Safety
/// The caller holds the slab mutex of `pool`.
pub unsafe fn quietly<T>(pool: *mut ngx_slab_pool_t, alloc: impl FnOnce() -> T) -> T {
    // SAFETY: per the contract, the flag is ours to change meanwhile.
    unsafe {
        let log_nomem = (*pool).log_nomem();
        (*pool).set_log_nomem(0);
        let result = alloc();
        (*pool).set_log_nomem(log_nomem);
        result
    }
}

/// Moves `value` into a new zeroed block of the zone's slab of at least
/// `min_size` bytes, which is never freed (it lives as long as the zone);
/// null if the zone has no room. Takes the slab mutex itself: a process
/// that holds it already would wait forever.
pub fn place_in_zone<T>(lists: ZoneLists, value: T, min_size: usize) -> *mut T {
    // The slab aligns every block to at least 8 bytes (its smallest chunk;
    // chunks of a page sit at multiples of their power-of-two size).
    const { assert!(align_of::<T>() <= 8) };
    // SAFETY: the zone's live slab pool (ZoneLists' contract), under its
    // mutex; a zone without room is the caller's to report (no nginx
    // "[crit] no memory"). The block is fresh, large enough and aligned
    // (above).
    unsafe {
        let pool = lists.shpool();
        let _slab = SlabLocked::new(pool);
        let block = quietly(pool, || ngx_slab_calloc_locked(pool, size_of::<T>().max(min_size))).cast::<T>();
        if !block.is_null() {
            block.write(value);
        }
        block
    }
}

/// A peer just unlinked from a zone upstream's lists under their write
/// locks (for as long as those are held, `'a`), to be handed over once
/// ([`RetiredPeers::retire`]).
#[must_use = "dropped, it stays allocated (nothing frees it)"]
pub struct UnlinkedPeer<'a> {
    peer: *mut ngx_http_upstream_rr_peer_t,
    primary: *mut ngx_http_upstream_rr_peers_t,
    _locked: PhantomData<LockedLists<'a>>,
}

impl UnlinkedPeer<'_> {
    /// The peer (still allocated while the handle lives: only
    /// [`RetiredPeers::retire`], which takes the handle, can free it).
    pub fn raw(&self) -> *mut ngx_http_upstream_rr_peer_t {
        self.peer
    }
}

/// Identifies a peer of [`LockedLists`] for a change
/// ([`LockedLists::update`], [`LockedLists::unlink`]), which looks it up in
/// the lists (a key is never dereferenced): a [`LockedPeer`] cannot be held
/// across a change, which borrows the lists mutably.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PeerKey(*mut ngx_http_upstream_rr_peer_t);

impl<'a> LockedPeer<'a> {
    pub fn key(self) -> PeerKey {
        PeerKey(self.raw())
    }

    /// Its weight as nginx keeps it (at least 1).
    pub fn weight(self) -> u64 {
        // SAFETY: a live peer whose list is write-locked (or reached by no
        // one else) while the handle lives.
        unsafe { weight_of(self.raw()) }
    }

    /// Its parameters, `down` being the administrator's.
    pub fn values(self) -> PeerValues {
        let p = self.raw();
        // SAFETY: as above; these fields change only under the write lock.
        unsafe {
            PeerValues {
                weight: weight_of(p),
                max_fails: (*p).max_fails as u64,
                fail_timeout: (*p).fail_timeout as u64,
                max_conns: (*p).max_conns as u64,
                down: (*p).down & DOWN_ADMIN != 0,
            }
        }
    }

    /// The name nginx's resolver made it from (`server NAME resolve`), if
    /// it did.
    pub fn resolved_from(self) -> Option<&'a [u8]> {
        // SAFETY: as above.
        unsafe { resolved_from(self.raw()) }
    }
}

/// A peer allocated in a zone's slab for a zone upstream's lists
/// ([`ZoneSlab::alloc_peer`]) and linked nowhere yet: no request and no
/// other process can reach it. It is linked ([`LockedLists::append`],
/// [`LockedLists::edit`], [`NewList::extend`]) or freed
/// ([`ZoneSlab::free_peer`]); one dropped otherwise stays allocated.
#[must_use = "dropped, it stays allocated (nothing frees it)"]
pub struct NewPeer<'a> {
    peer: *mut ngx_http_upstream_rr_peer_t,
    primary: *mut ngx_http_upstream_rr_peers_t,
    _lists: PhantomData<&'a ()>,
}

impl NewPeer<'_> {
    /// It starts down for the health checks.
    pub fn set_health_down(&mut self) {
        // SAFETY: a complete peer no one else can reach.
        unsafe { (*self.peer).down |= DOWN_HEALTH };
    }
}

/// A backup list allocated for a zone upstream whose primary list has
/// none ([`ZoneSlab::alloc_peer`]), sharing the primary's pool, name and
/// generation word, and linked nowhere yet ([`LockedLists::link_backup`]).
#[must_use = "dropped, it stays allocated (nothing frees it)"]
pub struct NewList<'a> {
    list: *mut ngx_http_upstream_rr_peers_t,
    primary: *mut ngx_http_upstream_rr_peers_t,
    _lists: PhantomData<&'a ()>,
}

impl<'a> NewList<'a> {
    /// Appends `peers` (in one pass, recounting once; a peer of another
    /// upstream is left alone).
    pub fn extend(&mut self, peers: impl Iterator<Item = NewPeer<'a>>) {
        let (list, primary) = (self.list, self.primary);
        let added = peers.filter(|p| p.primary == primary).map(|p| p.peer);
        // SAFETY: a list no one else can reach; the peers are complete,
        // unlinked and of this zone.
        unsafe { edit_list(list, |_| None, |_| true, |_| {}, added) };
    }
}

/// The slab mutex of a zone upstream's zone, taken inside the lists' write
/// locks (`'a`) as every change takes it ([`LockedLists::lock_slab`]).
pub struct ZoneSlab<'a> {
    slab: SlabLocked,
    primary: *mut ngx_http_upstream_rr_peers_t,
    _lists: PhantomData<&'a ()>,
}

impl<'a> ZoneSlab<'a> {
    /// A new peer for `spec` at `address` (`server` is the text of its
    /// `server` line; see [`alloc_peer`]), plus a new backup list for the
    /// upstream if `with_list`. None if the zone has no room (nothing is
    /// taken then).
    pub fn alloc_peer(
        &self,
        spec: &ServerSpec,
        address: &PeerAddress,
        server: &[u8],
        with_list: bool,
    ) -> Option<(NewPeer<'a>, Option<NewList<'a>>)> {
        // SAFETY: the zone's slab mutex is held; the primary list is
        // write-locked (or reached by no one else) for 'a.
        unsafe {
            let (peer, list) = alloc_peer(self.slab.pool(), spec, address, server, with_list)?;
            let new_list = with_list.then(|| {
                init_backup_list(list, self.primary);
                NewList { list, primary: self.primary, _lists: PhantomData }
            });
            Some((NewPeer { peer, primary: self.primary, _lists: PhantomData }, new_list))
        }
    }

    /// Frees a new peer of this zone (one of another is left alone).
    pub fn free_peer(&self, peer: NewPeer<'a>) {
        if peer.primary == self.primary {
            // SAFETY: the slab mutex is held; no one can reach the peer.
            unsafe { free_peer_now(self.slab.pool(), peer.peer) };
        }
    }

    /// Frees a new backup list of this zone (one of another is left
    /// alone), without the peers it may have been given.
    pub fn free_list(&self, list: NewList<'a>) {
        if list.primary == self.primary {
            // SAFETY: the slab mutex is held; no one can reach the list.
            unsafe { ngx_slab_free_locked(self.slab.pool(), list.list.cast()) };
        }
    }
}

/// The changes of a zone upstream's lists. Each takes the lists by `&mut`:
/// no peer handle borrowed from them lives across a change, and no closure
/// a change runs can change them.
///
/// The changes that add, remove or re-weight peers (`update`, `unlink`,
/// `append`, `edit`, `link_backup`) are `unsafe`: nginx's balancers rely
/// on invariants they do not check, which the caller keeps (`zone/peers.rs`
/// does, after `ZoneUpstream::apply`'s checks): the primary list is never
/// emptied; [`LockedLists::set_single`] runs after the change; every weight
/// is in 1..=`MAX_WEIGHT` and each list's total within `MAX_TOTAL_WEIGHT`;
/// peers are added, removed or re-weighted only on an upstream whose
/// balancer follows such changes, and before nginx 1.27.3 only where the
/// request hook enlarges the requests' bitmaps. Broken, each makes nginx's
/// own code divide by zero, dereference null or read past a table (an
/// adversarial review reproduced all three with one-line safe edits of the
/// callers, when these were safe functions).
impl<'a> LockedLists<'a> {
    /// Takes the zone's slab mutex (inside the lists' locks, as every
    /// change). Not reentrant: a process that holds it already, or retires
    /// a peer while holding it ([`RetiredPeers::retire`] takes it), waits
    /// forever.
    pub fn lock_slab(&self) -> ZoneSlab<'a> {
        let primary = self.primary_raw();
        // SAFETY: a live list of a shared zone (`shpool` set: the views'
        // contract), whose pool lives as long.
        let slab = unsafe { SlabLocked::new((*primary).shpool) };
        ZoneSlab { slab, primary, _lists: PhantomData }
    }

    /// The list (primary or backup) that holds the peer `key`.
    fn holder(&self, key: PeerKey) -> Option<*mut ngx_http_upstream_rr_peers_t> {
        [self.list(false), self.list(true)]
            .into_iter()
            .flatten()
            .find(|list| list.peers().any(|p| p.key() == key))
            .map(|list| list.raw())
    }

    /// Changes the parameters of the peer `key` and keeps its list's
    /// counters right ([`update_peer`]); false if neither list holds it.
    ///
    /// # Safety
    /// The lists' invariants (see the `impl`) hold after the change.
    pub unsafe fn update(&mut self, key: PeerKey, params: &PeerParams, down: Option<bool>) -> bool {
        let Some(list) = self.holder(key) else { return false };
        // SAFETY: the peer is in `list`, which no one else changes for 'a.
        unsafe { update_peer(list, key.0, params, down) };
        true
    }

    /// Unlinks the peer `key` from its list ([`unlink_peer`]); None if
    /// neither list holds it.
    ///
    /// # Safety
    /// The lists' invariants (see the `impl`) hold after the change.
    pub unsafe fn unlink(&mut self, key: PeerKey) -> Option<UnlinkedPeer<'a>> {
        let list = self.holder(key)?;
        // SAFETY: as above.
        unsafe { unlink_peer(list, key.0) };
        Some(UnlinkedPeer { peer: key.0, primary: self.primary_raw(), _locked: PhantomData })
    }

    /// Appends a new peer to the primary or the backup list
    /// ([`append_peer`]); gives it back if that list does not exist or the
    /// peer is another upstream's.
    ///
    /// # Safety
    /// The lists' invariants (see the `impl`) hold after the change.
    pub unsafe fn append(&mut self, backup: bool, peer: NewPeer<'a>) -> Result<(), NewPeer<'a>> {
        let list = self.list(backup).map(|l| l.raw());
        match list {
            Some(list) if peer.primary == self.primary_raw() => {
                // SAFETY: a list no one else changes for 'a; the peer is
                // complete, unlinked and of this zone.
                unsafe { append_peer(list, peer.peer) };
                Ok(())
            }
            _ => Err(peer),
        }
    }

    /// Edits the primary or the backup list in one pass ([`edit_list`]):
    /// `params` answers each peer's new parameters, those `keep` refuses
    /// are unlinked and handed to `removed`, `added` (new peers of this
    /// upstream; others are left alone) are appended. False if the list
    /// does not exist (nothing changes then).
    ///
    /// # Safety
    /// The lists' invariants (see the `impl`) hold after the change.
    pub unsafe fn edit<'p>(
        &mut self,
        backup: bool,
        params: impl Fn(LockedPeer<'_>) -> Option<(&'p PeerParams, Option<bool>)>,
        keep: impl Fn(LockedPeer<'_>) -> bool,
        mut removed: impl FnMut(UnlinkedPeer<'a>),
        added: impl Iterator<Item = NewPeer<'a>>,
    ) -> bool {
        let primary = self.primary_raw();
        let Some(list) = self.list(backup).map(|l| l.raw()) else { return false };
        let added = added.filter(|p| p.primary == primary).map(|p| p.peer);
        // SAFETY: a list no one else changes for 'a; each peer the
        // closures see is live for the call (they cannot keep it: the
        // handle's lifetime is the call's), and an unlinked one is handed
        // over as an UnlinkedPeer; the added peers are complete, unlinked
        // and of this zone.
        unsafe {
            edit_list(
                list,
                |p| params(LockedPeer::assume(p)),
                |p| keep(LockedPeer::assume(p)),
                |p| removed(UnlinkedPeer { peer: p, primary, _locked: PhantomData }),
                added,
            )
        };
        true
    }

    /// Keeps the primary list's `single` flag right ([`set_single`]).
    pub fn set_single(&mut self, off_beside_backups: bool) {
        // SAFETY: the primary list, which no one else changes for 'a.
        unsafe { set_single(self.primary_raw(), off_beside_backups) };
    }

    /// Links a complete new backup list (requests reach it from then on);
    /// gives it back if the upstream has a backup list already or the list
    /// is another upstream's.
    ///
    /// # Safety
    /// The lists' invariants (see the `impl`) hold after the change.
    pub unsafe fn link_backup(&mut self, list: NewList<'a>) -> Result<(), NewList<'a>> {
        let primary = self.primary_raw();
        if list.primary != primary || self.list(true).is_some() {
            return Err(list);
        }
        // SAFETY: the primary list, which no one else changes for 'a.
        unsafe { (*primary).next = list.list };
        Ok(())
    }
}

/// The removed peers of a zone upstream that are not freed yet (before
/// nginx 1.27.3, see `zone/reclaim.rs`), chained through their `next` and
/// guarded by the zone's slab mutex, with the upstream's lists: kept in the
/// zone's shared memory ([`place_in_zone`]).
#[repr(C)]
pub struct RetiredPeers {
    lists: ZoneLists,
    /// Read and written only under the zone's slab mutex.
    head: AtomicPtr<ngx_http_upstream_rr_peer_t>,
}

impl RetiredPeers {
    pub fn new(lists: ZoneLists) -> Self {
        Self { lists, head: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Takes an unlinked peer over, to be freed once no request holds it:
    /// by nginx where it counts `refs` ([`peer_free_locked`]), else by
    /// [`RetiredPeers::reap`]. A peer of another upstream is left alone
    /// (cannot happen: each upstream retires into its own).
    pub fn retire(&self, peer: UnlinkedPeer<'_>) {
        if peer.primary != self.lists.raw() {
            return;
        }
        // SAFETY: the zone's slab pool, locked after the lists' write locks
        // that `peer` stands for (still held for its lifetime); the peer is
        // unlinked from these lists and in this zone's slab
        // (UnlinkedPeer's contract), and handed over once (moved here).
        unsafe {
            let slab = SlabLocked::new(self.lists.shpool());
            if NGINX_FREES_REMOVED_PEERS {
                peer_free_locked(slab.pool(), peer.peer);
                return;
            }
            (*peer.peer).next = self.head.load(Relaxed);
            self.head.store(peer.peer, Relaxed);
        }
    }

    /// The removed peers that requests still hold (NGINX Plus's
    /// "zombies"): work bounded by the removed peers.
    pub fn count(&self) -> u64 {
        // SAFETY: the chain is read under the slab mutex that guards it;
        // its peers are freed only under it too (reap).
        unsafe {
            let _slab = SlabLocked::new(self.lists.shpool());
            let mut n = 0;
            let mut peer = self.head.load(Relaxed);
            while !peer.is_null() {
                n += 1;
                peer = (*peer).next;
            }
            n
        }
    }

    /// Frees the removed peers that no request holds any more (see
    /// `zone/reclaim.rs`): those whose `conns` is zero under both lists'
    /// write locks. Work bounded by the removed peers. Takes the locks
    /// itself: a process that holds them already would wait forever.
    pub fn reap(&self) {
        if NGINX_FREES_REMOVED_PEERS {
            return; // nothing is ever retired
        }
        // Under both lists' write locks no balancer is between reading and
        // changing a `conns`, and a request in `free` holds one of them for
        // reading until it no longer touches the peer. Order: primary,
        // backup, slab mutex, as for every change.
        let _locks = self.lists.write_lock();
        // SAFETY: the zone's slab pool, locked after the rwlocks; the chain
        // is guarded by it; its peers are unlinked peers of these lists
        // (retire), in the zone's slab.
        unsafe {
            let slab = SlabLocked::new(self.lists.shpool());
            let mut link = self.head.as_ptr();
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

// Replacing every peer at start (`zone/upstream.rs`, restore_at_start).

/// How [`replace_peers`] ended.
pub enum Replaced {
    Yes,
    /// The configuration's peers were rebuilt.
    NoRoom,
    /// Not even those fit again (see [`replace_peers`]: cannot happen).
    Lost,
}

/// Makes `servers` (specs, and `server` texts where not their names) the
/// peers of `primary` and its backup list, next to
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
    servers: &[(&ServerSpec, Option<&[u8]>)],
    kept: &[(ServerSpec, &[u8])],
    single_off_beside_backups: bool,
) -> Replaced {
    // SAFETY: per the contract.
    unsafe {
        for list in [primary, (*primary).next] {
            if !list.is_null() {
                (*list).peer = free_static_peers(pool, (*list).peer);
            }
        }
        if link_peers(pool, primary, servers.iter().copied(), single_off_beside_backups) {
            Replaced::Yes
        } else if link_peers(
            pool,
            primary,
            kept.iter().map(|(spec, server)| (spec, Some(*server))),
            single_off_beside_backups,
        ) {
            Replaced::NoRoom
        } else {
            // Lists of their resolved peers only (if any), whose counts
            // say so.
            for list in [primary, (*primary).next] {
                if !list.is_null() {
                    set_changed(list);
                }
            }
            set_single(primary, single_off_beside_backups);
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
    single_off_beside_backups: bool,
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
        set_single(primary, single_off_beside_backups);
        true
    }
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

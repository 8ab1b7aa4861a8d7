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
//!
//! The lists are reached through [`crate::nginx::peer_lock`]'s handles: a
//! [`ZoneLists`] for the upstream, the [`LockedLists`] its write-lock guard
//! lends (changes take it by `&mut`, so no peer handle outlives one), and
//! [`crate::nginx::peer_list`]'s new peers and lists, allocated under the
//! zone's slab mutex ([`crate::nginx::peer_list::ZoneSlab`]) and linked nowhere until a change links
//! them. Replacing every peer at start, which frees them at once, is
//! [`crate::nginx::peer_list::replace_peers`] (an `unsafe fn`: only the
//! caller knows that no request can hold them). The changes that add,
//! remove or re-weight peers are `unsafe` too: nginx's balancers rely on
//! invariants (a primary list never empty, weights and totals within
//! nginx's limits, a balancer that follows such changes) that only the
//! checks made here and in `ZoneUpstream::apply` keep.

use dynamic_upstream_core::peer::{checked_total_weight, MAX_TOTAL_WEIGHT};
use dynamic_upstream_core::plus::diff::Plan;
use dynamic_upstream_core::render::PeerValues;
use dynamic_upstream_core::{ApiError, PeerParams, ServerSpec};
use ngx::ffi::{ngx_http_upstream_rr_peer_t, ngx_sockaddr_t};

use crate::nginx::peer_list::{NewList, NewPeer, UnlinkedPeer};
use crate::nginx::peer_lock::{LockedList, LockedLists, LockedPeer, ZoneLists};
use crate::nginx::peer_stats::{ensure_ids, UpstreamCounters};
use crate::nginx::sockaddr::{PeerAddress, SOCKADDR_STRLEN};
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
    /// The primary servers' weights would total `total`, more than the
    /// balancer's table allows and more than now (consistent hash, see
    /// `Balancer::max_primary_weight`).
    TableTooBig {
        total: u64,
    },
    /// nginx's resolver made this peer (`server NAME resolve`).
    Resolved,
    /// The REST API took the upstream over ([`ZoneState::hand_over`]).
    HandedOver,
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
    /// At most SOCKADDR_STRLEN bytes, as nginx writes peers' names.
    fn of(peer: LockedPeer<'_>) -> Self {
        let mut name = PeerName { bytes: [0; SOCKADDR_STRLEN], len: 0 };
        let bytes = peer.name();
        name.len = bytes.len().min(SOCKADDR_STRLEN);
        name.bytes[..name.len].copy_from_slice(&bytes[..name.len]);
        name
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What an upstream's lists may hold after a change.
#[derive(Clone, Copy)]
pub struct ListLimits {
    /// Peers per list: its requests' `tried` bitmaps' size
    /// (`ZoneUpstream::max_peers_per_list`).
    pub max_peers: usize,
    /// The primary peers' total weight, for a change that raises it: the
    /// balancer's own limit (`Balancer::max_primary_weight`).
    pub max_primary_weight: u64,
    /// A linked backup list keeps the primary list's `single` flag off
    /// (`Balancer::keeps_single_off_beside_backups`).
    pub single_off_beside_backups: bool,
}

/// Changes the parameters of the peer `target`, under both write locks.
/// Returns its name and its values from before.
pub fn update_locked(
    zone: ZoneLists,
    state: &ZoneState,
    target: Target,
    params: &PeerParams,
    down: Option<bool>,
    limits: ListLimits,
) -> Result<(PeerName, PeerValues), Refusal> {
    let mut locks = zone.write_lock();
    if state.handed_over() {
        return Err(Refusal::HandedOver);
    }
    let mut lists = locks.lists();
    let (_, peer) = find_in_lists(&lists, target).ok_or(Refusal::NotFound)?;
    if peer.resolved_from().is_some() {
        return Err(Refusal::Resolved);
    }
    let key = peer.key();
    let weight = |p: LockedPeer<'_>| if p.key() == key { params.weight.unwrap_or(p.weight()) } else { p.weight() };
    check_totals(&lists, weight, None, limits.max_primary_weight)?;
    // Copied into fixed-size values: nothing allocates under the locks.
    let before = peer.values();
    let name = PeerName::of(peer);
    // SAFETY: the weight was validated (1..=MAX_WEIGHT) when parsed and the
    // totals above; the caller's ZoneUpstream::apply refused a re-weight the
    // balancer does not follow; set_single follows.
    unsafe { lists.update(key, params, down) };
    lists.set_single(limits.single_off_beside_backups);
    state.counters.bump();
    Ok((name, before))
}

/// Sets max_fails, fail_timeout, max_conns and down of any number of peers
/// in one walk of each list, under both write locks: `params` answers a
/// peer's new values (None leaves it as it is). Weights stay as they are
/// (an answer with a `weight` is ignored whole), so the totals need no
/// check; a peer nginx's resolver made is left alone, as [`update_locked`]
/// refuses it.
pub fn set_parameters_locked<'p>(
    zone: ZoneLists,
    counters: &UpstreamCounters,
    limits: ListLimits,
    params: impl Fn(LockedPeer<'_>) -> Option<(&'p PeerParams, Option<bool>)>,
) {
    let mut locks = zone.write_lock();
    let mut lists = locks.lists();
    let unweighted = |peer: LockedPeer<'_>| {
        if peer.resolved_from().is_some() {
            return None;
        }
        params(peer).filter(|(params, _)| params.weight.is_none())
    };
    for backup in [false, true] {
        // SAFETY: no peer is removed or added and no weight changes, so the
        // lists keep their totals and sizes; set_single follows.
        unsafe { lists.edit(backup, unweighted, |_| true, |_| {}, core::iter::empty()) };
    }
    lists.set_single(limits.single_off_beside_backups);
    counters.bump();
}

/// The list holding the peer `target`, and the peer.
fn find_in_lists<'l>(lists: &'l LockedLists<'_>, target: Target) -> Option<(LockedList<'l>, LockedPeer<'l>)> {
    let in_lists = |found: &dyn Fn(LockedPeer<'l>) -> bool| {
        [lists.list(false), lists.list(true)]
            .into_iter()
            .flatten()
            .find_map(|list| list.peers().find(|&p| found(p)).map(|peer| (list, peer)))
    };
    match target {
        // A static peer of that address first: nginx's resolver may have
        // added a peer of the same address to either list (nginx 1.27.3
        // and later), which would hide it (hunt 27).
        Target::Name(address) => in_lists(&|p| p.name() == address.name() && p.resolved_from().is_none())
            .or_else(|| in_lists(&|p| p.name() == address.name())),
        Target::Id(id) => in_lists(&|p| p.id() == Some(id)),
    }
}

/// The name of the peer `target`, if there is one.
pub fn name_of(zone: ZoneLists, target: Target) -> Option<PeerName> {
    let mut locks = zone.write_lock();
    let lists = locks.lists();
    find_in_lists(&lists, target).map(|(_, peer)| PeerName::of(peer))
}

/// Refuses a change after which the weights of the primary or the backup
/// list would total more than [`MAX_TOTAL_WEIGHT`]: with each present peer
/// weighing `weight` (0 for one being removed), plus a new peer `added`
/// (to the backup list?, its weight). Sums the lists as they are, not
/// `total_weight`: nginx's own sum of a configuration may have wrapped.
/// Any change is checked, so the module never writes a state file past the
/// limit (which its reader refuses). And a change that raises the primary
/// peers' total past `max_primary` (the balancer's own limit, see
/// `Balancer::max_primary_weight`) is refused.
fn check_totals(
    lists: &LockedLists<'_>,
    weight: impl Fn(LockedPeer<'_>) -> u64,
    added: Option<(bool, u64)>,
    max_primary: u64,
) -> Result<(), Refusal> {
    for backup in [false, true] {
        let extra = added.filter(|&(to_backup, _)| to_backup == backup).map(|(_, w)| w);
        let peers = lists.list(backup).into_iter().flat_map(|list| list.peers());
        let Some(total) = checked_total_weight(peers.map(&weight).chain(extra)) else {
            return Err(Refusal::WeightTotal { backup });
        };
        if !backup && total > max_primary && total > primary_total(lists) {
            return Err(Refusal::TableTooBig { total });
        }
    }
    Ok(())
}

/// The primary peers' total weight now (counted only when a change would
/// pass the balancer's limit: see [`ListLimits::max_primary_weight`]).
fn primary_total(lists: &LockedLists<'_>) -> u64 {
    lists.primary().peers().map(|p| p.weight()).fold(0, u64::saturating_add)
}

/// The end of every change that adds peers, still under both write
/// locks: links a new backup list (last, once complete: requests reach it
/// only through `primary->next`, read under the primary lock), lets the
/// caller's `on_linked` run, and keeps the lists' `single` flag, the
/// server IDs, the revision and the zone's longest list right.
fn finish_change<'a>(
    lists: &mut LockedLists<'a>,
    state: &ZoneState,
    limits: ListLimits,
    new_backup: Option<NewList<'a>>,
    on_linked: impl FnOnce(&LockedLists<'_>),
) {
    if let Some(backup) = new_backup {
        // SAFETY: a new backup list of validated peers, within the totals
        // (checked by the change that made it); set_single follows.
        if let Err(list) = unsafe { lists.link_backup(backup) } {
            // Cannot happen: a new backup list is made only where there is
            // none, for this upstream.
            lists.lock_slab().free_list(list);
        }
    }
    on_linked(lists);
    lists.set_single(limits.single_off_beside_backups);
    ensure_ids(lists, &state.counters);
    state.counters.bump();
    state.note_list_lengths();
}

/// Appends a new peer for `spec` to the primary or backup list (creating
/// the backup list if needed), under both write locks and the slab mutex;
/// `health_down`: it starts down for the health checks; `on_linked` runs
/// once it is linked, still under the locks (it must not allocate).
pub fn add_locked(
    zone: ZoneLists,
    state: &ZoneState,
    spec: &ServerSpec,
    address: &PeerAddress,
    limits: ListLimits,
    health_down: bool,
    on_linked: impl FnOnce(&LockedLists<'_>),
) -> Result<(), Refusal> {
    let mut locks = zone.write_lock();
    if state.handed_over() {
        return Err(Refusal::HandedOver);
    }
    let mut lists = locks.lists();

    if find_in_lists(&lists, Target::Name(address)).is_some() {
        return Err(Refusal::Exists);
    }
    let has_backup = lists.list(true).is_some();
    let list_len = match spec.backup {
        false => lists.primary().number(),
        true => lists.list(true).map_or(0, |backup| backup.number()),
    };
    if list_len >= limits.max_peers {
        return Err(Refusal::ListFull(list_len));
    }
    check_totals(&lists, |p| p.weight(), Some((spec.backup, spec.weight)), limits.max_primary_weight)?;

    let slab = lists.lock_slab();
    let new_backup_list = spec.backup && !has_backup;
    let (mut peer, mut new_list) =
        slab.alloc_peer(spec, address, address.name(), new_backup_list).ok_or(Refusal::NoRoom)?;
    drop(slab);
    if health_down {
        peer.set_health_down();
    }
    match new_list.as_mut() {
        Some(list) => list.extend(core::iter::once(peer)),
        None => {
            // SAFETY: a validated peer within the totals (checked above), on
            // an upstream whose balancer follows additions
            // (ZoneUpstream::apply); finish_change runs set_single.
            if let Err(peer) = unsafe { lists.append(spec.backup, peer) } {
                // Cannot happen: the list exists (checked above) and the
                // peer is this upstream's.
                lists.lock_slab().free_peer(peer);
                return Err(Refusal::NoRoom);
            }
        }
    }
    finish_change(&mut lists, state, limits, new_list, on_linked);
    Ok(())
}

/// Unlinks the peer `target` from its list under both write locks and
/// hands it to `retire` (still under them). Returns its name.
pub fn remove_locked(
    zone: ZoneLists,
    state: &ZoneState,
    target: Target,
    limits: ListLimits,
    retire: impl FnOnce(UnlinkedPeer<'_>),
) -> Result<PeerName, Refusal> {
    let mut locks = zone.write_lock();
    if state.handed_over() {
        return Err(Refusal::HandedOver);
    }
    let mut lists = locks.lists();

    let (list, peer) = find_in_lists(&lists, target).ok_or(Refusal::NotFound)?;
    if peer.resolved_from().is_some() {
        return Err(Refusal::Resolved);
    }
    if list == lists.primary() && list.number() == 1 {
        return Err(Refusal::LastPeer);
    }
    let key = peer.key();
    // A removal never raises a total: no balancer limit to check.
    check_totals(&lists, |p| if p.key() == key { 0 } else { p.weight() }, None, MAX_TOTAL_WEIGHT)?;
    let name = PeerName::of(peer);
    // SAFETY: not the primary list's last peer (refused above), within the
    // totals, on an upstream whose balancer follows removals
    // (ZoneUpstream::apply); set_single follows.
    let unlinked = unsafe { lists.unlink(key) }.ok_or(Refusal::NotFound)?;
    lists.set_single(limits.single_off_beside_backups);
    retire(unlinked);
    state.counters.bump();
    Ok(name)
}

/// An upper bound on the peers a zone of `size` bytes can hold: each peer
/// takes at least its struct, its sockaddr and its name from the slab.
pub fn max_peers_for_zone(size: usize) -> usize {
    let min_peer_bytes =
        core::mem::size_of::<ngx_http_upstream_rr_peer_t>() + core::mem::size_of::<ngx_sockaddr_t>() + SOCKADDR_STRLEN;
    (size / min_peer_bytes).max(1)
}

/// Why a replace did not happen under the locks.
pub enum Lost {
    /// Another change came first: plan again.
    Race,
    /// The REST API took the upstream over ([`ZoneState::hand_over`]).
    HandedOver,
    NoRoom,
    /// What the lists would hold breaks nginx's or the module's limits:
    /// nothing changed.
    Refused(ListsRefused),
    /// The upstream's balancer cannot follow the change (found before the
    /// locks): nothing changed.
    Balancer(ApiError),
}

/// Why [`replace_locked`] refused a plan (found under the locks: a plain
/// value, nothing allocated).
#[derive(Clone, Copy, Debug)]
pub enum ListsRefused {
    /// The list would hold more peers than the requests' `tried` bitmaps.
    TooMany { backup: bool, count: usize, max: usize },
    /// Its weights would total more than nginx's balancers add up.
    WeightTotal { backup: bool },
    /// The primary servers' weights would total `total`, more than the
    /// balancer's table allows and more than now.
    TableTooBig { total: u64 },
    /// The primary list would be empty.
    NoPrimary,
}

/// Applies `plan` (whose new servers and their addresses are `added`) if
/// the revision is still `revision`, in one pass over each list
/// ([`LockedLists::edit`]; `plan`'s IDs are sorted, so each peer is looked
/// up by binary search): linear work under the locks (nothing is allocated
/// on the heap under them).
/// The new peers start down by their checks where `health_down` (one per
/// entry of `added`) says so; `on_linked` runs once they are linked, still
/// under the locks, with the lists as the change left them (it must not
/// allocate).
/// As the revision moves with every change under the locks, an unchanged
/// revision means the lists are the ones the plan was made from.
/// What the lists hold once the plan is applied is checked under the
/// locks (the edit's contract, whatever the caller checked before: at
/// least one primary peer, weights within nginx's totals, and `limits`,
/// the primary total's only where the plan raises it): else
/// [`Lost::Refused`], nothing changed.
///
/// # Safety
/// The upstream's balancer follows changes of its set and weights where
/// the plan makes them (`ZoneUpstream::check_balancer_allows`), and
/// `limits.max_peers` is its requests' bitmaps' size
/// (`ZoneUpstream::max_peers_per_list`).
#[allow(clippy::too_many_arguments)] // the plan's parts, and what runs under the locks
pub unsafe fn replace_locked(
    zone: ZoneLists,
    state: &ZoneState,
    revision: u64,
    limits: ListLimits,
    plan: &Plan,
    added: &[(&ServerSpec, PeerAddress)],
    health_down: &[bool],
    mut retire: impl FnMut(UnlinkedPeer<'_>),
    on_linked: impl FnOnce(&LockedLists<'_>),
) -> Result<(), Lost> {
    // Allocated before the locks (with room for every new peer); each is
    // taken out as it is linked.
    let mut new_peers: Vec<Option<NewPeer>> = Vec::with_capacity(added.len());
    let mut locks = zone.write_lock();
    let mut lists = locks.lists();
    if state.handed_over() {
        return Err(Lost::HandedOver);
    }
    if state.counters.revision() != revision {
        return Err(Lost::Race);
    }
    for backup in [false, true] {
        let (mut count, mut weights) = (0usize, Some(0u64));
        let mut count_peer = |weight: u64| {
            count += 1;
            weights = weights.and_then(|total| checked_total_weight([total, weight]));
        };
        for peer in lists.list(backup).into_iter().flat_map(|list| list.peers()) {
            let id = peer.id();
            if id.is_some_and(|id| plan.remove.binary_search(&id).is_ok()) {
                continue;
            }
            let new_weight = id
                .and_then(|id| plan.update.binary_search_by_key(&id, |u| u.id).ok())
                .and_then(|i| plan.update[i].params.weight);
            count_peer(new_weight.unwrap_or(peer.weight()));
        }
        added.iter().filter(|(spec, _)| spec.backup == backup).for_each(|(spec, _)| count_peer(spec.weight));
        if count > limits.max_peers {
            return Err(Lost::Refused(ListsRefused::TooMany { backup, count, max: limits.max_peers }));
        }
        let Some(total) = weights else {
            return Err(Lost::Refused(ListsRefused::WeightTotal { backup }));
        };
        if !backup && total > limits.max_primary_weight && total > primary_total(&lists) {
            return Err(Lost::Refused(ListsRefused::TableTooBig { total }));
        }
        if !backup && count == 0 {
            return Err(Lost::Refused(ListsRefused::NoPrimary));
        }
    }
    // Every new peer first: a zone without room changes nothing. The slab
    // mutex is released before retiring (which takes it).
    let slab = lists.lock_slab();
    let has_backup = lists.list(true).is_some();
    let mut backup_list: Option<NewList> = None;
    for (spec, address) in added {
        let with_list = spec.backup && !has_backup && backup_list.is_none();
        match slab.alloc_peer(spec, address, address.name(), with_list) {
            Some((peer, list)) => {
                if list.is_some() {
                    backup_list = list;
                }
                new_peers.push(Some(peer)); // within capacity
            }
            None => {
                for peer in new_peers.drain(..).flatten() {
                    slab.free_peer(peer);
                }
                if let Some(list) = backup_list {
                    slab.free_list(list);
                }
                return Err(Lost::NoRoom);
            }
        }
    }
    drop(slab);
    for (peer, _) in new_peers.iter_mut().zip(health_down).filter(|(_, &down)| down) {
        if let Some(peer) = peer {
            peer.set_health_down();
        }
    }
    let update = |peer: LockedPeer<'_>| {
        let id = peer.id()?;
        let i = plan.update.binary_search_by_key(&id, |u| u.id).ok()?;
        Some((&plan.update[i].params, plan.update[i].down))
    };
    let keep = |peer: LockedPeer<'_>| !peer.id().is_some_and(|id| plan.remove.binary_search(&id).is_ok());
    // SAFETY: the lists the plan makes were checked above, under these
    // locks (at least one primary peer, weights within the totals, no more
    // peers per list than the bitmaps hold); the balancer follows set
    // changes (the contract); the unchanged revision says the lists are
    // the ones the plan was made from; finish_change runs set_single.
    unsafe { lists.edit(false, update, keep, &mut retire, taken(&mut new_peers, added, false)) };
    match backup_list.as_mut() {
        // A new backup list has only new peers (linked once complete).
        Some(list) => list.extend(taken(&mut new_peers, added, true)),
        None => {
            // SAFETY: as for the primary list.
            unsafe { lists.edit(true, update, keep, &mut retire, taken(&mut new_peers, added, true)) };
        }
    }
    finish_change(&mut lists, state, limits, backup_list, on_linked);
    Ok(())
}

/// The new peers (not taken yet) whose servers go to the backup list, or
/// to the primary, taken out as they are linked.
fn taken<'n, 'a: 'n>(
    new_peers: &'n mut [Option<NewPeer<'a>>],
    added: &'n [(&ServerSpec, PeerAddress)],
    backups: bool,
) -> impl Iterator<Item = NewPeer<'a>> + 'n {
    new_peers.iter_mut().zip(added).filter(move |(_, (spec, _))| spec.backup == backups).filter_map(|(p, _)| p.take())
}

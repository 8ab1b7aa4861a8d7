//! Reading and editing the shared peer lists of `zone` upstreams.
//!
//! nginx 1.22 keeps a zone upstream's peers in the zone's slab: a primary
//! list (`uscf->peer.data`) and an optional backup list (`primary->next`),
//! each an `ngx_http_upstream_rr_peers_t` with its own rwlock. This file is
//! the only code that walks or changes them. The rules it follows:
//!
//! * every read holds the list's read lock, every change its write lock
//!   (primary before backup, the order in which nginx's balancer visits
//!   them); slab allocations and frees hold the slab mutex inside those;
//! * under a lock nothing allocates on the Rust heap, nothing panics, and
//!   work is bounded by the list length: all parsing, validation and
//!   formatting happens before (or after) the locked section;
//! * the list counters nginx's balancers rely on (`number`, `total_weight`,
//!   `weighted`, `tries`, `single`) are recomputed after every change, the
//!   way `ngx_http_upstream_init_round_robin` sets them;
//! * a removed peer is unlinked, never freed here: in-flight requests may
//!   still hold it (`rrp->current`, `$upstream_addr`). It goes to
//!   [`crate::reclaim`], which frees it once no such request can remain.

use core::ffi::c_void;
use core::ptr;

use dynamic_upstream_core::peer::{checked_total_weight, total_weight_error, MAX_TOTAL_WEIGHT};
use dynamic_upstream_core::render::{Change, PeerValues};
use dynamic_upstream_core::state::parse_peer_address;
use dynamic_upstream_core::{Action, ApiError, PeerParams, PeerView, ServerSpec};
use ngx::ffi::{
    ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_slab_alloc_locked, ngx_slab_calloc_locked,
    ngx_slab_free_locked, ngx_slab_pool_t, ngx_sockaddr_t, ngx_str_t,
};

use crate::balancer::{Balancer, ZoneUpstream};
use crate::peer_lock::{ListsWriteLocked, ReadLocked, SlabLocked};
use crate::reclaim;
use crate::sockaddr::{PeerAddress, SOCKADDR_STRLEN};

/// Longest `server` text copied into a snapshot (config text can be long).
const SNAPSHOT_SERVER_MAX: usize = 256;

/// One peer copied out under the read lock, without heap allocation.
struct PeerSnapshot {
    name: [u8; SOCKADDR_STRLEN],
    name_len: usize,
    server: [u8; SNAPSHOT_SERVER_MAX],
    server_len: usize,
    backup: bool,
    peer: ngx_http_upstream_rr_peer_t,
}

impl ZoneUpstream {
    fn primary(&self) -> *mut ngx_http_upstream_rr_peers_t {
        // SAFETY: a ZoneUpstream is only made for upstreams with a zone,
        // whose peer.data the zone module pointed at the shared list.
        unsafe { (*self.uscf).peer.data.cast() }
    }

    /// All peers, primaries then backups, with their live figures.
    pub fn peers(&self) -> Vec<PeerView> {
        // SAFETY: the primary list of a zone upstream lives as long as the
        // cycle.
        unsafe { list_peers(self.primary()) }
    }

    /// Applies a validated action. Everything that can fail is checked
    /// before the lists change, so an error means nothing changed.
    /// Returns the change made, with an updated peer's values from before
    /// (for the change log); `None` for a listing.
    pub fn apply<'a>(&self, action: &'a Action) -> Result<Option<Change<'a>>, ApiError> {
        match action {
            Action::List => Ok(None),
            Action::Update { server, params, down } => {
                self.check_balancer_allows(params.weight.is_some(), false)?;
                let before = self.update(&PeerAddress::new(server), params, *down)?;
                Ok(Some(Change::Update { server, before, params, down: *down }))
            }
            Action::Add(spec) => {
                self.check_balancer_allows(true, spec.backup)?;
                self.add(spec, &PeerAddress::new(&spec.address))?;
                Ok(Some(Change::Add(spec)))
            }
            Action::Remove { server } => {
                self.check_balancer_allows(true, false)?;
                self.remove(&PeerAddress::new(server))?;
                Ok(Some(Change::Remove(server)))
            }
        }
    }

    /// Refuses changes the upstream's balancer cannot follow at run time.
    fn check_balancer_allows(&self, changes_set: bool, backup: bool) -> Result<(), ApiError> {
        let balancer = self.balancer();
        if backup && !balancer.allows_backup() {
            return Err(ApiError::bad_request(
                "backup_not_allowed",
                format!(
                    "upstream \"{}\" uses the {} balancer, which does not allow backup servers",
                    self.name(),
                    balancer.name()
                ),
            ));
        }
        if changes_set && !balancer.follows_set_changes() {
            return Err(ApiError::conflict("balancer_fixed_at_start", balancer.set_change_refusal(&self.name())));
        }
        Ok(())
    }

    fn update(&self, target: &PeerAddress, params: &PeerParams, down: Option<bool>) -> Result<PeerValues, ApiError> {
        // SAFETY: the primary list of a zone upstream.
        let updated = unsafe { update_locked(self.primary(), target, params, down) };
        // The reason is written once the locks are released.
        updated.map_err(|refusal| self.refused(refusal, &shown_name(target)))
    }

    fn add(&self, spec: &ServerSpec, address: &PeerAddress) -> Result<(), ApiError> {
        let limit = self.max_peers_per_list();
        // SAFETY: the primary list of a zone upstream.
        let added = unsafe { add_locked(self.primary(), spec, address, limit) };
        // The reason is written once the locks are released.
        added.map_err(|refusal| self.refused(refusal, &spec.address))
    }

    fn remove(&self, target: &PeerAddress) -> Result<(), ApiError> {
        // SAFETY: the primary list of a zone upstream; the unlinked peer is
        // handed to reclaim (under the locks), not freed.
        let removed = unsafe { remove_locked(self.primary(), target, |peer| reclaim::retire(self, peer)) };
        // The reason is written once the locks are released.
        removed.map_err(|refusal| self.refused(refusal, &shown_name(target)))
    }

    /// The answer to an edit refused under the locks, about `server`.
    fn refused(&self, refusal: Refusal, server: &dyn std::fmt::Display) -> ApiError {
        match refusal {
            Refusal::Exists => ApiError::bad_request(
                "server_exists",
                format!("server {server} already exists in upstream \"{}\"", self.name()),
            ),
            Refusal::ListFull(list_len) => ApiError::new(
                507,
                "too_many_peers",
                format!(
                    "upstream \"{}\" already has {list_len} peers in that list, the most its zone \"{}\" can \
                     track per request",
                    self.name(),
                    self.zone_name()
                ),
            ),
            Refusal::NoRoom => ApiError::no_room(&self.zone_name(), self.zone_size()),
            Refusal::LastPeer => ApiError::bad_request(
                "last_peer",
                format!(
                    "server {server} is the last primary server of upstream \"{}\" and cannot be removed",
                    self.name()
                ),
            ),
            // 400, as ngx_dynamic_upstream answers (an unknown upstream is 404).
            Refusal::NotFound => ApiError::bad_request(
                "server_not_found",
                format!("server {server} is not in upstream \"{}\"", self.name()),
            ),
            Refusal::WeightTotal { backup } => ApiError::bad_request(
                "weight_total",
                total_weight_error(
                    &format!("upstream \"{}\"'s {} servers", self.name(), if backup { "backup" } else { "primary" }),
                    "would total",
                ),
            ),
        }
    }

    /// Replaces every peer with `servers` (the state file), at start: in
    /// the master's init_module, before the cycle's workers exist. An
    /// upstream zone is never reused across cycles (the zone module sets
    /// `noreuse`), so these lists are the new cycle's own, reached by no
    /// process yet (the workers of a reloaded cycle use their own zone): no
    /// request can hold a peer, and the old peers are freed at once.
    /// All or nothing: if the zone has no room for every new peer, the
    /// configuration's servers are rebuilt as they were. Balancers that
    /// cannot follow a new set of peers only take the parameters of the
    /// servers they already have.
    pub fn restore_at_start(&self, servers: &[ServerSpec]) -> Result<(), String> {
        if !self.balancer().follows_set_changes() {
            return self.restore_parameters(servers);
        }
        if servers.iter().any(|s| s.backup) && !self.balancer().allows_backup() {
            return Err(format!("backup servers, but the {} balancer does not allow them", self.balancer().name()));
        }
        // The configuration's servers, kept aside (before the locks) to be
        // rebuilt if the state's do not fit: as specs, with their `server`
        // text exactly (so the rebuilt blocks have the sizes of the freed).
        let current = self.peers();
        let kept: Vec<(ServerSpec, &[u8])> =
            specs_of(&current)?.into_iter().zip(&current).map(|(spec, peer)| (spec, peer.server.as_bytes())).collect();
        if let Some(peer) = current
            .iter()
            .find(|p| p.server.len() >= SNAPSHOT_SERVER_MAX || p.server.contains(char::REPLACEMENT_CHARACTER))
        {
            return Err(format!(
                "the configuration's server \"{}\" cannot be kept aside; nothing was restored",
                peer.server
            ));
        }
        let primary = self.primary();
        // SAFETY: the zone's lists, which no request can reach yet (see
        // above), so old peers are freed right away.
        let replaced = unsafe {
            let _locks = ListsWriteLocked::new(primary);
            let slab = SlabLocked::new((*primary).shpool);
            replace_peers(slab.pool(), primary, servers, &kept)
        };
        let no_room = || {
            format!(
                "zone \"{}\" ({}) has no room for the state's {} servers",
                self.zone_name(),
                dynamic_upstream_core::error::human_size(self.zone_size()),
                servers.len()
            )
        };
        match replaced {
            Replaced::Yes => Ok(()),
            Replaced::NoRoom => Err(format!("{}; nothing was restored", no_room())),
            Replaced::Lost => {
                // Believed impossible (see replace_peers). No balancer may
                // then see the empty lists (a NULL peer for round robin, a
                // division by a zero total for hash): without its original
                // peer.init the request hook fails the upstream's requests
                // (500) instead.
                // SAFETY: this cycle's configuration memory, in the master
                // before the workers fork.
                if let Some(srv) = unsafe { crate::balancer::srv_conf(self.uscf) } {
                    srv.original_init = None;
                }
                Err(format!(
                    "{}, and the configuration's could not be rebuilt: the upstream has no servers and its requests \
                     fail (500) until nginx starts with a larger zone",
                    no_room()
                ))
            }
        }
    }

    /// For balancers with fixed tables: the state's parameters of servers
    /// the upstream has; other differences are reported.
    fn restore_parameters(&self, servers: &[ServerSpec]) -> Result<(), String> {
        let current: Vec<String> = self.peers().into_iter().map(|p| p.name).collect();
        let wanted: Vec<String> = servers.iter().map(|s| s.address.to_string()).collect();
        if current.iter().any(|n| !wanted.contains(n)) || wanted.iter().any(|n| !current.contains(n)) {
            return Err(format!(
                "its servers differ from the configuration's, and the {} balancer cannot change its set of \
                 servers: remove the file to start from the configuration",
                self.balancer().name()
            ));
        }
        for spec in servers {
            let params = PeerParams {
                weight: None,
                max_fails: Some(spec.max_fails),
                fail_timeout: Some(spec.fail_timeout),
                max_conns: Some(spec.max_conns),
            };
            self.update(&PeerAddress::new(&spec.address), &params, Some(spec.down)).map_err(|e| e.text)?;
        }
        Ok(())
    }

    /// The servers as a state file records them.
    pub fn server_specs(&self) -> Result<Vec<ServerSpec>, String> {
        specs_of(&self.peers())
    }

    /// The most peers one list may hold: no list can have more peers than
    /// the zone has room for, and each request's `tried` bitmap is sized for
    /// that many (see [`crate::request_hook`]).
    pub fn max_peers_per_list(&self) -> usize {
        let limit = max_peers_for_zone(self.zone_size());
        // SAFETY: the state lives in the zone for the cycle's lifetime.
        if unsafe { (*self.state).unknown_request_data.load(core::sync::atomic::Ordering::SeqCst) } {
            return limit.min(64);
        }
        limit
    }

    pub fn balancer(&self) -> Balancer {
        self.balancer
    }
}

/// Why an edit made under the locks was refused; the caller writes the
/// message once the locks are released (no allocation under them).
#[derive(Debug, Clone, Copy)]
enum Refusal {
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
}

/// Changes the parameters of the peer named by `target`, under both write
/// locks.
///
/// # Safety
/// `primary` is the live shared primary list of a zone upstream.
unsafe fn update_locked(
    primary: *mut ngx_http_upstream_rr_peers_t,
    target: &PeerAddress,
    params: &PeerParams,
    down: Option<bool>,
) -> Result<PeerValues, Refusal> {
    // SAFETY: shared lists of a zone upstream, changed under both write
    // locks (primary, then backup).
    unsafe {
        let _locks = ListsWriteLocked::new(primary);
        let (list, peer) = find_in_lists(primary, target).ok_or(Refusal::NotFound)?;
        check_totals(primary, |p| if p == peer { params.weight.unwrap_or(weight_of(p)) } else { weight_of(p) }, None)?;
        // Copied into a fixed-size value: nothing allocates under the locks.
        let p = &*peer;
        let before = PeerValues {
            weight: weight_of(peer),
            max_fails: p.max_fails as u64,
            fail_timeout: p.fail_timeout as u64,
            max_conns: p.max_conns as u64,
            down: p.down != 0,
        };
        update_peer(list, peer, params, down);
        set_single(primary);
        Ok(before)
    }
}

/// The list holding the peer named by `target`, and the peer.
///
/// # Safety
/// The caller holds the write locks of `primary` and its backup list.
unsafe fn find_in_lists(
    primary: *mut ngx_http_upstream_rr_peers_t,
    target: &PeerAddress,
) -> Option<(*mut ngx_http_upstream_rr_peers_t, *mut ngx_http_upstream_rr_peer_t)> {
    // SAFETY: per the contract.
    unsafe {
        if let Some(peer) = find_peer(primary, target.name()) {
            return Some((primary, peer));
        }
        let backup = (*primary).next;
        (!backup.is_null()).then(|| find_peer(backup, target.name()).map(|peer| (backup, peer))).flatten()
    }
}

/// A peer's weight as nginx keeps it (at least 1).
///
/// # Safety
/// `peer` is a live peer of a list whose lock the caller holds.
unsafe fn weight_of(peer: *mut ngx_http_upstream_rr_peer_t) -> u64 {
    // SAFETY: per the contract.
    unsafe { (*peer).weight as u64 }
}

/// The peers of `list` (none for a null list), walked by `next`.
///
/// # Safety
/// The caller holds `list`'s lock while the iterator is used.
unsafe fn peers_of(list: *mut ngx_http_upstream_rr_peers_t) -> impl Iterator<Item = *mut ngx_http_upstream_rr_peer_t> {
    // SAFETY: per the contract.
    let first = if list.is_null() { ptr::null_mut() } else { unsafe { (*list).peer } };
    core::iter::successors((!first.is_null()).then_some(first), |&peer| {
        // SAFETY: every peer of a locked list is live.
        let next = unsafe { (*peer).next };
        (!next.is_null()).then_some(next)
    })
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

/// Appends a new peer for `spec` to the primary or backup list (creating
/// the backup list if needed), under both write locks and the slab mutex.
///
/// # Safety
/// `primary` is the live shared primary list of a zone upstream.
unsafe fn add_locked(
    primary: *mut ngx_http_upstream_rr_peers_t,
    spec: &ServerSpec,
    address: &PeerAddress,
    limit: usize,
) -> Result<(), Refusal> {
    // SAFETY: shared lists of a zone upstream, changed under both write
    // locks (primary, then backup); slab memory under the slab mutex, taken
    // inside them.
    unsafe {
        let _locks = ListsWriteLocked::new(primary);
        let mut backup = (*primary).next;

        if find_in_lists(primary, address).is_some() {
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
        if new_backup_list {
            init_backup_list(list, primary);
            backup = list;
        }

        append_peer(if spec.backup { backup } else { primary }, peer);
        if new_backup_list {
            // Linked last, once complete; requests reach it only through
            // primary->next, read under the primary lock we hold.
            (*primary).next = backup;
        }
        set_single(primary);
    }
    Ok(())
}

/// Unlinks the peer named by `target` from its list under both write
/// locks and hands it to `retire` (still under them).
///
/// # Safety
/// `primary` is the live shared primary list of a zone upstream; `retire`
/// takes the unlinked peer over without freeing it.
unsafe fn remove_locked(
    primary: *mut ngx_http_upstream_rr_peers_t,
    target: &PeerAddress,
    retire: impl FnOnce(*mut ngx_http_upstream_rr_peer_t),
) -> Result<(), Refusal> {
    // SAFETY: per the contract.
    unsafe {
        let _locks = ListsWriteLocked::new(primary);

        let (list, peer) = find_in_lists(primary, target).ok_or(Refusal::NotFound)?;
        if list == primary && (*primary).number == 1 {
            return Err(Refusal::LastPeer);
        }
        check_totals(primary, |p| if p == peer { 0 } else { weight_of(p) }, None)?;
        unlink_peer(list, peer);
        set_single(primary);
        retire(peer);
    }
    Ok(())
}

/// An upper bound on the peers a zone of `size` bytes can hold: each peer
/// takes at least its struct, its sockaddr and its name from the slab.
pub fn max_peers_for_zone(size: usize) -> usize {
    let min_peer_bytes =
        core::mem::size_of::<ngx_http_upstream_rr_peer_t>() + core::mem::size_of::<ngx_sockaddr_t>() + SOCKADDR_STRLEN;
    (size / min_peer_bytes).max(1)
}

/// Copies a peer list (primaries, then backups) with live figures.
///
/// # Safety
/// `primary` must stay allocated during the call (its locks protect the
/// contents); it is a shared list or a process-local one (whose locks are
/// uncontended).
pub unsafe fn list_peers(primary: *mut ngx_http_upstream_rr_peers_t) -> Vec<PeerView> {
    // The number of peers can change between sizing and copying; copy what
    // fits and size again if the list grew meanwhile.
    // SAFETY: per the contract.
    let mut capacity = unsafe { peer_count(primary) } + 8;
    loop {
        let mut snapshots: Vec<PeerSnapshot> = Vec::with_capacity(capacity);
        // SAFETY: per the contract.
        if unsafe { copy_peers(primary, &mut snapshots) } {
            return snapshots.iter().map(to_view).collect();
        }
        capacity *= 2;
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

/// Copies every peer into `out` without growing it; false if they did not
/// fit.
///
/// # Safety
/// As for [`list_peers`].
unsafe fn copy_peers(primary: *mut ngx_http_upstream_rr_peers_t, out: &mut Vec<PeerSnapshot>) -> bool {
    // SAFETY: each list walked under its read lock (primary first, as
    // nginx does).
    unsafe {
        let _primary_lock = ReadLocked::new(primary);
        if !copy_list(primary, false, out) {
            return false;
        }
        let backup = (*primary).next;
        if backup.is_null() {
            return true;
        }
        let _backup_lock = ReadLocked::new(backup);
        copy_list(backup, true, out)
    }
}

/// Peers as the specs that recreate them (their live figures dropped).
/// Fails, naming the peer, for a name a state file cannot hold: a unix
/// path that is not UTF-8 (its copy replaced the bytes with U+FFFD).
pub fn specs_of(peers: &[PeerView]) -> Result<Vec<ServerSpec>, String> {
    peers
        .iter()
        .map(|p| {
            let address = (!p.name.contains(char::REPLACEMENT_CHARACTER))
                .then(|| parse_peer_address(&p.name).ok())
                .flatten()
                .ok_or_else(|| format!("server \"{}\" cannot be written to a state file", p.name.escape_debug()))?;
            let mut spec = ServerSpec::new(address);
            spec.weight = p.weight as u64;
            spec.max_fails = p.max_fails;
            spec.fail_timeout = p.fail_timeout as u64;
            spec.max_conns = p.max_conns;
            spec.backup = p.backup;
            spec.down = p.down;
            Ok(spec)
        })
        .collect()
}

fn shown_name(address: &PeerAddress) -> String {
    String::from_utf8_lossy(address.name()).into_owned()
}

fn to_view(s: &PeerSnapshot) -> PeerView {
    let p = &s.peer;
    PeerView {
        server: String::from_utf8_lossy(&s.server[..s.server_len]).into_owned(),
        name: String::from_utf8_lossy(&s.name[..s.name_len]).into_owned(),
        weight: p.weight as i64,
        max_fails: p.max_fails as u64,
        fail_timeout: p.fail_timeout as i64,
        max_conns: p.max_conns as u64,
        backup: s.backup,
        down: p.down != 0,
        conns: p.conns as u64,
        fails: p.fails as u64,
        current_weight: p.current_weight as i64,
        effective_weight: p.effective_weight as i64,
        accessed: p.accessed as i64,
        checked: p.checked as i64,
    }
}

/// Appends copies of the list's peers to `out` while it has room.
///
/// # Safety
/// `list` must be a live peer list whose lock the caller holds.
unsafe fn copy_list(list: *mut ngx_http_upstream_rr_peers_t, backup: bool, out: &mut Vec<PeerSnapshot>) -> bool {
    // SAFETY: per the contract; every peer of a locked list is live.
    unsafe {
        for peer in peers_of(list) {
            if out.len() == out.capacity() {
                return false;
            }
            let mut snapshot = PeerSnapshot {
                name: [0; SOCKADDR_STRLEN],
                name_len: 0,
                server: [0; SNAPSHOT_SERVER_MAX],
                server_len: 0,
                backup,
                peer: *peer,
            };
            snapshot.name_len = copy_str(&(*peer).name, &mut snapshot.name);
            snapshot.server_len = copy_str(&(*peer).server, &mut snapshot.server);
            out.push(snapshot); // within capacity: no allocation
        }
    }
    true
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

/// # Safety
/// `list` must be a live peer list whose lock the caller holds.
unsafe fn find_peer(list: *mut ngx_http_upstream_rr_peers_t, name: &[u8]) -> Option<*mut ngx_http_upstream_rr_peer_t> {
    // SAFETY: per the contract; every peer of a locked list is live, its
    // name valid for name.len bytes.
    unsafe {
        peers_of(list).find(|&peer| {
            (*peer).name.len == name.len() && core::slice::from_raw_parts((*peer).name.data, name.len()) == name
        })
    }
}

/// Changes one peer's parameters and keeps the list's counters right.
///
/// # Safety
/// `peer` must be in `list`, whose write lock the caller holds.
unsafe fn update_peer(
    list: *mut ngx_http_upstream_rr_peers_t,
    peer: *mut ngx_http_upstream_rr_peer_t,
    params: &PeerParams,
    down: Option<bool>,
) {
    // SAFETY: per the contract.
    unsafe {
        let p = &mut *peer;
        if let Some(weight) = params.weight {
            p.weight = weight as _;
            p.effective_weight = weight as _;
            // All of them: their sum must be 0 (see MAX_TOTAL_WEIGHT).
            restart_smooth_weights(list);
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
            p.down = down as _;
            if !down {
                // Brought up by an operator: eligible at once, not only
                // after a failure timeout from before it went down.
                p.fails = 0;
                p.checked = 0;
            }
        }
        recount(list);
    }
}

/// Recomputes `number`, `total_weight`, `weighted` and `tries` from the
/// peers, as `ngx_http_upstream_init_round_robin` does.
///
/// # Safety
/// The caller holds `list`'s write lock.
unsafe fn recount(list: *mut ngx_http_upstream_rr_peers_t) {
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

/// `single` tells the balancer there is exactly one peer and no backup to
/// fall back to; nginx then never marks that peer failed.
///
/// # Safety
/// The caller holds the primary list's write lock.
unsafe fn set_single(primary: *mut ngx_http_upstream_rr_peers_t) {
    // SAFETY: per the contract; primary->next is read under its lock.
    unsafe {
        let backup = (*primary).next;
        let has_backups = !backup.is_null() && (*backup).number > 0;
        (*primary).set_single(((*primary).number == 1 && !has_backups) as _);
    }
}

/// # Safety
/// The caller holds `list`'s write lock; `peer` is complete and unlinked.
unsafe fn append_peer(list: *mut ngx_http_upstream_rr_peers_t, peer: *mut ngx_http_upstream_rr_peer_t) {
    // SAFETY: per the contract.
    unsafe {
        let mut link: *mut *mut ngx_http_upstream_rr_peer_t = &mut (*list).peer;
        while !(*link).is_null() {
            link = &mut (**link).next;
        }
        (*peer).next = ptr::null_mut();
        *link = peer;
        recount(list);
        restart_smooth_weights(list);
    }
}

/// # Safety
/// The caller holds `list`'s write lock and `peer` is in it.
unsafe fn unlink_peer(list: *mut ngx_http_upstream_rr_peers_t, peer: *mut ngx_http_upstream_rr_peer_t) {
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
        recount(list);
        restart_smooth_weights(list);
    }
}

/// A new backup list shares the primary's pool and name.
///
/// # Safety
/// `list` is fresh zeroed slab memory; the primary list is write-locked.
unsafe fn init_backup_list(list: *mut ngx_http_upstream_rr_peers_t, primary: *mut ngx_http_upstream_rr_peers_t) {
    // SAFETY: per the contract.
    unsafe {
        (*list).shpool = (*primary).shpool;
        (*list).name = (*primary).name;
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
unsafe fn alloc_peer(
    pool: *mut ngx_slab_pool_t,
    spec: &ServerSpec,
    address: &PeerAddress,
    server: &[u8],
    with_list: bool,
) -> Option<(*mut ngx_http_upstream_rr_peer_t, *mut ngx_http_upstream_rr_peers_t)> {
    let name = address.name();
    // SAFETY: per the contract; the blocks are fresh and large enough.
    unsafe {
        // A full zone is an ordinary API answer (507), not nginx's
        // "[crit] ngx_slab_alloc() failed: no memory"; the flag is restored
        // before the mutex is released, so other users of the zone keep it.
        let log_nomem = (*pool).log_nomem();
        (*pool).set_log_nomem(0);
        let blocks = alloc_peer_blocks(pool, server.len(), with_list);
        (*pool).set_log_nomem(log_nomem);
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

/// How [`replace_peers`] ended.
enum Replaced {
    Yes,
    /// The configuration's peers were rebuilt.
    NoRoom,
    /// Not even those fit again (see [`replace_peers`]: cannot happen).
    Lost,
}

/// Makes `servers` the peers of `primary` and its backup list. The old
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
unsafe fn replace_peers(
    pool: *mut ngx_slab_pool_t,
    primary: *mut ngx_http_upstream_rr_peers_t,
    servers: &[ServerSpec],
    kept: &[(ServerSpec, &[u8])],
) -> Replaced {
    // SAFETY: per the contract.
    unsafe {
        for list in [primary, (*primary).next] {
            if !list.is_null() {
                free_chain(pool, (*list).peer);
                (*list).peer = ptr::null_mut();
            }
        }
        if link_peers(pool, primary, servers.iter().map(|spec| (spec, None))) {
            Replaced::Yes
        } else if link_peers(pool, primary, kept.iter().map(|(spec, server)| (spec, Some(*server)))) {
            Replaced::NoRoom
        } else {
            // Empty lists whose counts say so.
            for list in [primary, (*primary).next] {
                if !list.is_null() {
                    recount(list);
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
/// the lists have no peers.
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
        for (list, head) in [(primary, heads[0]), (backup, heads[1])] {
            if list.is_null() {
                continue;
            }
            (*list).peer = head;
            recount(list);
        }
        set_single(primary);
        true
    }
}

/// Frees a chain of peers linked by `next`.
///
/// # Safety
/// The caller holds the slab mutex; no request can reach the peers.
unsafe fn free_chain(pool: *mut ngx_slab_pool_t, mut peer: *mut ngx_http_upstream_rr_peer_t) {
    // SAFETY: per the contract.
    unsafe {
        while !peer.is_null() {
            let next = (*peer).next;
            free_peer(pool, peer);
            peer = next;
        }
    }
}

/// Frees a peer's blocks: what the zone module and [`alloc_peer`]
/// allocated, plus the TLS session nginx may have cached in it.
///
/// # Safety
/// The caller holds the slab mutex; no request can reach `peer` any more.
pub unsafe fn free_peer(pool: *mut ngx_slab_pool_t, peer: *mut ngx_http_upstream_rr_peer_t) {
    // SAFETY: per the contract.
    unsafe {
        let p = &mut *peer;
        for block in [p.ssl_session, p.server.data.cast(), p.name.data.cast(), p.sockaddr.cast()] {
            if !block.is_null() {
                ngx_slab_free_locked(pool, block);
            }
        }
        ngx_slab_free_locked(pool, peer.cast());
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
/// backup, a backup list) in a zone, for an upstream created at run time
/// (a [`crate::reclaim::RegistryList`]).
/// The list is not reachable by anyone until the caller publishes it.
/// On failure frees everything it took and returns None.
///
/// # Safety
/// The caller holds the slab mutex of `pool`.
pub unsafe fn build_list(
    pool: *mut ngx_slab_pool_t,
    name: &str,
    servers: &[ServerSpec],
) -> Option<*mut ngx_http_upstream_rr_peers_t> {
    // SAFETY: per the contract; every block is checked before use.
    unsafe {
        let log_nomem = (*pool).log_nomem();
        (*pool).set_log_nomem(0);
        let list = build_list_quietly(pool, name, servers);
        (*pool).set_log_nomem(log_nomem);
        list
    }
}

/// # Safety
/// As for [`build_list`].
unsafe fn build_list_quietly(
    pool: *mut ngx_slab_pool_t,
    name: &str,
    servers: &[ServerSpec],
) -> Option<*mut ngx_http_upstream_rr_peers_t> {
    // SAFETY: per the contract.
    unsafe {
        // The list's name: an ngx_str_t followed by its bytes, one block.
        let name_block =
            ngx_slab_alloc_locked(pool, core::mem::size_of::<ngx_str_t>() + name.len()).cast::<ngx_str_t>();
        let list = ngx_slab_calloc_locked(pool, core::mem::size_of::<crate::reclaim::RegistryList>())
            .cast::<ngx_http_upstream_rr_peers_t>();
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
            }
            let target = if spec.backup { (*list).next } else { list };
            append_peer(target, peer);
        }
        set_single(list);
        Some(list)
    }
}

//! Zone upstreams: an `upstream {}` block with a `zone`, whose peers the
//! query-string API, Lua and the state files change, and the module's
//! configuration of every upstream block ([`SrvConf`]).

pub mod request_hook;

use core::cell::Cell;
use core::ptr;
use std::collections::{HashMap, HashSet, VecDeque};

use dynamic_upstream_core::balancer::chash_table_refusal;
use dynamic_upstream_core::error::human_size;
use dynamic_upstream_core::health::check_conf::{CheckConf, CheckConfBuilder};
use dynamic_upstream_core::peer::{primary_weight, total_weight_error};
use dynamic_upstream_core::plus::diff::Plan;
use dynamic_upstream_core::render::{Change, PeerValues};
use dynamic_upstream_core::state::{check_primaries, parse_peer_address, specs_of};
use dynamic_upstream_core::{Action, Address, ApiError, Balancer, PeerParams, PeerView, ServerSpec};
use ngx::ffi::{
    ngx_event_free_peer_pt, ngx_http_request_t, ngx_http_upstream_init_peer_pt, ngx_http_upstream_rr_peers_t,
    ngx_http_upstream_srv_conf_t, ngx_int_t, NGX_ERROR,
};

use crate::nginx::module_hooks::{conf_in_pool, InitModule};
use crate::nginx::peer_list::{
    list_peers_picked, replace_peers, some_peer_lacks_id, Pick, Replaced, SNAPSHOT_SERVER_MAX,
};
use crate::nginx::peer_lock::{ListsWriteLocked, SlabLocked, ZoneLists};
use crate::nginx::peer_stats::{counting, UpstreamCounters};
use crate::nginx::sockaddr::PeerAddress;
use crate::nginx::upstreams::{NgxText, Running, Upstream};
use crate::nginx::version::TABLES_FOLLOW_CHANGES;
use crate::zone::health::{show_health, HealthListing, HealthZone, Pending};
use crate::zone::ids::ensure_ids;
use crate::zone::peers::{
    add_locked, max_peers_for_zone, name_of, remove_locked, replace_locked, set_parameters_locked, update_locked,
    ListLimits, Lost, PeerName, Refusal, Target,
};
use crate::zone::reclaim::ZoneState;
use crate::zone::tried_bitmap::SpareBitmaps;

/// Per-`upstream {}` block settings (also created for every `server {}`,
/// where they stay unused), and what `init_module` learns about the
/// upstream. A directive's handler gets it (`&mut`): only `checks` is
/// its; what the request hook and the zone's code trust is private to
/// this file and the request hook, its child module.
#[repr(C)]
pub struct SrvConf {
    /// `dynamic_state_file`: file of `server ...;` lines kept in sync.
    state_file: NgxText,
    /// The upstream's balancer.
    balancer: Balancer,
    /// Shared bookkeeping in the upstream's zone (null without a zone, or
    /// if the zone had no room for it).
    state: *mut ZoneState,
    /// The `peer.init` that the request hook wraps.
    original_init: ngx_http_upstream_init_peer_pt,
    /// The `peer.free` that the request hook wraps: the one the first
    /// request got from `original_init` (the same for every request).
    original_free: ngx_event_free_peer_pt,
    /// Size of every request's `tried` bitmap, in peers.
    max_peers_per_list: usize,
    /// `state_file` resolved against nginx's prefix (at start).
    state_path: Option<std::path::PathBuf>,
    /// The state file could not be restored at start (its changes are
    /// refused, so that the next one does not overwrite it).
    state_not_restored: bool,
    /// The `check*` directives while the block is read, and the checks
    /// they make (postconfiguration).
    pub checks: CheckConfBuilder,
    check: Option<CheckConf>,
    /// What the request hook does (at start; none: not installed).
    hook: Option<Hook>,
    /// This process's zeroed `tried` bitmaps for the requests of a large
    /// zone (see `request_hook`).
    spare_bitmaps: SpareBitmaps,
}

/// What the request hook does for each request of a zone upstream
/// ([`crate::zone::upstream::request_hook::needed`]).
#[derive(Clone, Copy)]
pub struct Hook {
    /// Detach the peer's name at `free` and enlarge the `tried` bitmap.
    pub guard: bool,
    /// The request's `peer.free`: the balancer's, after the guard's name
    /// copy and/or counting the attempt ([`crate::nginx::peer_stats`]).
    pub free: ngx_event_free_peer_pt,
}

impl SrvConf {
    /// Where nginx's `ngx_conf_set_str_slot` writes `dynamic_state_file`.
    pub const STATE_FILE_OFFSET: usize = core::mem::offset_of!(SrvConf, state_file);
}

/// The http module's create_srv_conf: a [`SrvConf`] with nothing set.
///
/// # Safety
/// nginx's call of create_srv_conf.
pub unsafe extern "C" fn create_srv_conf(cf: *mut ngx::ffi::ngx_conf_t) -> *mut core::ffi::c_void {
    // SAFETY: per the contract.
    unsafe { conf_in_pool(cf, SrvConf::unset()) }
}

impl SrvConf {
    /// Not `Default`: a `SrvConf` made outside nginx's create_srv_conf
    /// could be swapped into a block's configuration, or a block's taken
    /// out and kept past its cycle (see `MainConf`'s).
    fn unset() -> Self {
        Self {
            state_file: NgxText::EMPTY,
            balancer: Balancer::RoundRobin,
            state: ptr::null_mut(),
            original_init: None,
            original_free: None,
            max_peers_per_list: 0,
            state_path: None,
            state_not_restored: false,
            checks: CheckConfBuilder::default(),
            check: None,
            hook: None,
            spare_bitmaps: SpareBitmaps::default(),
        }
    }
}

/// This module's configuration of an upstream block.
///
/// # Safety
/// No other reference to it is used while this one is (the safe
/// functions below hand none out: they copy or write within the call).
pub unsafe fn srv_conf_mut<'c>(upstream: Upstream<'c>) -> Option<&'c mut SrvConf> {
    // SAFETY: per the contract.
    unsafe { upstream.module_srv_conf() }
}

/// The upstream's health checks, if any (postconfiguration makes them).
pub fn check_of(upstream: Upstream) -> Option<CheckConf> {
    // SAFETY: read and copied within the call.
    unsafe { srv_conf_mut(upstream) }.and_then(|srv| srv.check.clone())
}

/// Its `dynamic_state_file` as configured (empty if none).
pub fn state_file_of(upstream: Upstream) -> String {
    // SAFETY: as above.
    unsafe { srv_conf_mut(upstream) }.map(|srv| srv.state_file.to_string_lossy()).unwrap_or_default()
}

/// Whether its balancer is one of nginx's (init_module tells them apart),
/// which keep the round-robin peer list in `peer.data`; false for another
/// module's (`fair`, `balancer_by_lua`, ...).
pub fn keeps_round_robin_peers(upstream: Upstream) -> bool {
    // SAFETY: as above.
    unsafe { srv_conf_mut(upstream) }.is_some_and(|srv| srv.balancer.is_nginx_own())
}

/// Whether init_module gave it the module's bookkeeping (a zone upstream
/// with room for it: one the APIs can change).
pub fn has_bookkeeping(upstream: Upstream) -> bool {
    // SAFETY: as above.
    unsafe { srv_conf_mut(upstream) }.is_some_and(|srv| !srv.state.is_null())
}

/// init_module: its `dynamic_state_file`, resolved.
pub fn set_state_path(_init: &InitModule, upstream: Upstream, path: Option<std::path::PathBuf>) {
    // SAFETY: written within the call.
    if let Some(srv) = unsafe { srv_conf_mut(upstream) } {
        srv.state_path = path;
    }
}

/// init_module: its `dynamic_state_file` could not be restored.
pub fn mark_state_not_restored(_init: &InitModule, upstream: Upstream) {
    // SAFETY: written within the call.
    if let Some(srv) = unsafe { srv_conf_mut(upstream) } {
        srv.state_not_restored = true;
    }
}

/// postconfiguration: makes the upstream's checks from its `check*`
/// directives; whether it has any, or what is wrong with them.
pub fn finish_checks(upstream: Upstream) -> Result<bool, String> {
    // SAFETY: written within the call.
    let Some(srv) = (unsafe { srv_conf_mut(upstream) }) else { return Ok(false) };
    srv.check = core::mem::take(&mut srv.checks).finish().map_err(|e| e.text)?;
    Ok(srv.check.is_some())
}

/// The error for an upstream that another part of the module serves, if
/// `upstream` (called by its name) is one.
pub type Managed = fn(Upstream, &str) -> Option<ApiError>;

/// A `zone` upstream of a configuration, for as long as its block's
/// handle says that configuration lives (the running one's for a
/// `with_running` closure, the new one's for init_module).
pub struct ZoneUpstream<'c> {
    upstream: Upstream<'c>,
    balancer: Balancer,
    state: *mut ZoneState,
    /// Its `dynamic_state_file`, if any.
    pub state_path: Option<std::path::PathBuf>,
    /// Whether that file could not be restored at start.
    pub state_not_restored: bool,
    /// Its health checks, if any.
    check: Option<CheckConf>,
    /// Its cycle's health zone (none without checks).
    health: Option<HealthZone<'c>>,
}

impl<'c> ZoneUpstream<'c> {
    /// Finds an upstream of the running cycle by its zone name (what
    /// ngx_dynamic_upstream expects) or, failing that, by its own name.
    /// `managed` answers the error for an upstream another part of the
    /// module serves (a dyups front), if it is one.
    pub fn find(running: &Running<'c>, name: &str, managed: Managed) -> Result<Self, ApiError> {
        let upstreams = running.upstreams();
        let by_zone = upstreams.iter().copied().find(|u| u.zone_is(name));
        let by_name = || upstreams.iter().copied().find(|u| u.name_is(name));
        let upstream = by_zone
            .or_else(by_name)
            .ok_or_else(|| ApiError::not_found("upstream_not_found", format!("upstream \"{name}\" not found")))?;
        ZoneUpstream::of(upstream, name, managed, HealthZone::running())
    }

    /// The zone upstream `upstream` of the running cycle (its own name in
    /// messages).
    pub fn of_running(upstream: Upstream<'c>, managed: Managed) -> Result<Self, ApiError> {
        Self::of(upstream, &upstream.name(), managed, HealthZone::running())
    }

    /// The zone upstream `upstream` of the cycle in its init_module (its
    /// own name in messages). An upstream of another cycle (the running
    /// one, whose health zone is not this cycle's) is refused.
    pub fn of_new_cycle(init: &InitModule<'c>, upstream: Upstream<'c>, managed: Managed) -> Result<Self, ApiError> {
        if !init.has_upstream(upstream) {
            return Err(ApiError::new(
                500,
                "not_of_cycle",
                format!("upstream \"{}\" is not a block of the new configuration", upstream.name()),
            ));
        }
        Self::of(upstream, &upstream.name(), managed, HealthZone::of_new_cycle(init))
    }

    /// The zone upstream `upstream` (called `name` in messages), once
    /// init_module filled in its configuration, with `health`, its cycle's
    /// health zone.
    fn of(
        upstream: Upstream<'c>,
        name: &str,
        managed: Managed,
        health: Option<HealthZone<'c>>,
    ) -> Result<Self, ApiError> {
        // First: one the REST API replaced is its, with or without a zone
        // (hunt 26: a zone-less one was answered 400 "no zone").
        if let Some(e) = managed(upstream, name) {
            return Err(e);
        }
        if !upstream.has_zone() {
            return Err(ApiError::bad_request(
                "no_zone",
                format!(
                    "upstream \"{name}\" has no zone: its peers are not shared between workers \
                     and cannot be changed (add \"zone NAME SIZE;\" to it)"
                ),
            ));
        }
        // SAFETY: read and copied within the call.
        let srv = unsafe { srv_conf_mut(upstream) }
            .ok_or_else(|| ApiError::new(500, "internal", "upstream without configuration"))?;
        if srv.state.is_null() {
            return Err(ApiError::new(
                507,
                "zone_full",
                format!("upstream \"{name}\": its zone had no room for the module's bookkeeping at start"),
            ));
        }
        Ok(Self {
            upstream,
            balancer: srv.balancer.clone(),
            state: srv.state,
            state_path: srv.state_path.clone(),
            state_not_restored: srv.state_not_restored,
            check: srv.check.clone(),
            health,
        })
    }

    pub fn name(&self) -> String {
        self.upstream.name()
    }

    /// Its health checks, if any.
    pub fn check(&self) -> Option<&CheckConf> {
        self.check.as_ref()
    }

    pub fn zone_name(&self) -> String {
        self.upstream.zone_name().unwrap_or_default()
    }

    pub fn zone_size(&self) -> usize {
        self.upstream.zone_size()
    }

    /// Its shared primary list: a ZoneUpstream is only made for upstreams
    /// with a zone, whose peer.data the zone module pointed at that list.
    fn primary(&self) -> *mut ngx_http_upstream_rr_peers_t {
        self.upstream.peer_data().cast()
    }

    /// Its lists, for the edits of [`crate::zone::peers`].
    fn lists(&self) -> ZoneLists {
        // SAFETY: the shared primary list of a zone upstream of the running
        // configuration (as above), which lives as long as it.
        unsafe { ZoneLists::new(self.primary()) }
    }

    /// All peers, primaries then backups, with their live figures.
    pub fn peers(&self) -> Vec<PeerView> {
        self.peers_picked(Pick::All)
    }

    /// [`Self::peers`], those `pick` takes only.
    pub fn peers_picked(&self, pick: Pick<'_>) -> Vec<PeerView> {
        // SAFETY: the primary list of a zone upstream lives as long as the
        // cycle.
        unsafe { list_peers_picked(self.primary(), pick) }
    }

    /// [`Self::peers`] with their health, if the upstream is checked (the
    /// JSON answers and the status page).
    pub fn peers_with_health(&self) -> Vec<PeerView> {
        self.peers_with_health_in(None)
    }

    /// [`Self::peers_with_health`], their health from `listing` (the copy
    /// of an answer about many upstreams) if given.
    pub fn peers_with_health_in(&self, listing: Option<&HealthListing>) -> Vec<PeerView> {
        self.peers_with_health_picked(listing, Pick::All)
    }

    /// [`Self::peers_with_health_in`], those `pick` takes only.
    pub fn peers_with_health_picked(&self, listing: Option<&HealthListing>, pick: Pick<'_>) -> Vec<PeerView> {
        let mut peers = self.peers_picked(pick);
        show_health(listing, self.health, &self.name(), false, self.check.is_some(), &mut peers);
        peers
    }

    /// Applies a validated action. Everything that can fail is checked
    /// before the lists change, so an error means nothing changed.
    /// Returns the change made, with an updated peer's values from before
    /// (for the change log); `None` for a listing.
    pub fn apply<'a>(&self, action: &'a Action) -> Result<Option<Change<'a>>, ApiError> {
        match action {
            Action::List => Ok(None),
            Action::Update { server, params, down } => {
                let address = PeerAddress::new(server);
                let name = String::from_utf8_lossy(address.name());
                self.check_balancer_allows(self.reweights(params.weight, |p| p.name == name), false)?;
                let before = self.update(&address, params, *down)?;
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

    /// Whether its configuration has primary servers nginx resolves
    /// (`server NAME resolve`), which its state file never holds.
    pub fn resolves_primary(&self) -> bool {
        self.upstream.resolves_primary()
    }

    /// What its lists may hold after a change.
    fn list_limits(&self) -> ListLimits {
        ListLimits {
            max_peers: self.max_peers_per_list(),
            max_primary_weight: self.balancer().max_primary_weight(TABLES_FOLLOW_CHANGES),
            single_off_beside_backups: self.single_off_beside_backups(),
        }
    }

    /// Whether a linked backup list keeps the primary list's `single` flag
    /// off ([`Balancer::keeps_single_off_beside_backups`]).
    fn single_off_beside_backups(&self) -> bool {
        self.balancer().keeps_single_off_beside_backups(TABLES_FOLLOW_CHANGES)
    }

    /// The answer to a change after which the primary servers' weights
    /// would total `total`, past the balancer's limit.
    pub fn table_too_big(&self, total: u64) -> ApiError {
        ApiError::bad_request(
            "chash_table",
            format!(
                "upstream \"{}\" uses the {} balancer, which keeps 160 points of 16 bytes per unit of its primary \
                 servers' weight in every worker: {}",
                self.name(),
                self.balancer().name(),
                chash_table_refusal(total)
            ),
        )
    }

    /// The answer to a backup server added to a `random` (or `random two`)
    /// upstream whose configuration wrote backups before its line: nginx
    /// 1.28.3's random peeks into the backup list through its table of the
    /// primaries once they fail, past its end (review 12: the worker dies
    /// holding the peers' lock, every worker after it hangs). Its
    /// configuration's own backups stay; no API or state file adds one
    /// (a DNS answer to a `resolve backup` line may add peers later).
    fn backup_limit(&self) -> ApiError {
        ApiError::bad_request(
            "backup_limit",
            format!(
                "upstream \"{}\" uses the {} balancer, which takes no backup server but its configuration's (with \
                 more, nginx's random balancer reads past its table once the primary servers fail, and its \
                 workers crash)",
                self.name(),
                self.balancer().name()
            ),
        )
    }

    /// Whether `weight` would change the weight of a server `which` picks
    /// (of none: the edit's own error says so): a weight given equal to
    /// the current one is no re-weighting, also where the balancer refuses
    /// those (hunt 26: refused 409 where a PUT of the same weights was
    /// accepted). Copies the peers only for such a balancer.
    fn reweights(&self, weight: Option<u64>, which: impl Fn(&PeerView) -> bool) -> bool {
        let Some(weight) = weight else { return false };
        if self.balancer().follows_set_changes(TABLES_FOLLOW_CHANGES) {
            return true;
        }
        let picked: Vec<PeerView> = self.peers().into_iter().filter(|p| which(p)).collect();
        picked.is_empty() || picked.iter().any(|p| i64::try_from(weight).ok() != Some(p.weight))
    }

    /// Refuses changes the upstream's balancer cannot follow at run time.
    /// Backup servers are allowed where the balancer has them, and where
    /// the configuration wrote one before a balancer line that has none
    /// (nginx keeps it in a backup list, which its state file restores).
    pub fn check_balancer_allows(&self, changes_set: bool, backup: bool) -> Result<(), ApiError> {
        let balancer = self.balancer();
        if backup && !self.upstream.takes_backups(balancer) {
            return Err(ApiError::bad_request(
                "backup_not_allowed",
                format!(
                    "upstream \"{}\" uses the {} balancer, which does not allow backup servers",
                    self.name(),
                    balancer.name()
                ),
            ));
        }
        // Random takes only the backups its configuration wrote.
        if backup && balancer.is_random() {
            return Err(self.backup_limit());
        }
        if changes_set && !balancer.follows_set_changes(TABLES_FOLLOW_CHANGES) {
            return Err(ApiError::conflict("balancer_fixed_at_start", balancer.set_change_refusal(&self.name())));
        }
        Ok(())
    }

    fn update(&self, target: &PeerAddress, params: &PeerParams, down: Option<bool>) -> Result<PeerValues, ApiError> {
        self.update_target(Target::Name(target), params, down)
            .map(|(_, before)| before)
            .map_err(|refusal| self.refused(refusal, &shown_name(target)))
    }

    fn update_target(
        &self,
        target: Target,
        params: &PeerParams,
        down: Option<bool>,
    ) -> Result<(PeerName, PeerValues), Refusal> {
        update_locked(self.lists(), self.state(), target, params, down, self.list_limits())
    }

    fn add(&self, spec: &ServerSpec, address: &PeerAddress) -> Result<(), ApiError> {
        // A checked upstream's new peer has its slot before it is linked.
        let slot = self
            .check
            .as_ref()
            .map(|check| Pending::claim(self.health, &self.name(), check, address.name()))
            .transpose()?;
        let health_down = slot.as_ref().is_some_and(|s| s.starts_down);
        // SAFETY: the primary list of a zone upstream.
        let added = unsafe {
            add_locked(self.lists(), &*self.state, spec, address, self.list_limits(), health_down, |_| {
                if let Some(slot) = slot {
                    slot.activate();
                }
            })
        };
        // The reason is written once the locks are released (a refused
        // add's slot is freed as it drops).
        added.map_err(|refusal| self.refused(refusal, &spec.address))
    }

    fn remove(&self, target: &PeerAddress) -> Result<(), ApiError> {
        self.remove_target(Target::Name(target)).map(drop).map_err(|refusal| self.refused(refusal, &shown_name(target)))
    }

    fn remove_target(&self, target: Target) -> Result<PeerName, Refusal> {
        let (health, upstream) = (self.health(), self.name());
        let mut slot = None;
        // SAFETY: the primary list of a zone upstream; the unlinked peer is
        // handed to reclaim (under the locks), not freed. Its slot is found
        // under the locks too (see slot_of_removed).
        let name = unsafe {
            remove_locked(self.lists(), self.state(), target, self.list_limits(), |peer| {
                if let Some(health) = health {
                    slot = health.slot_of_removed(self.primary(), upstream.as_bytes(), peer.raw());
                }
                (*self.state).retire(peer)
            })
        }?;
        // Its checks stop with it.
        if let (Some(health), Some((index, gen))) = (health, slot) {
            health.free_removed(index, gen);
        }
        Ok(name)
    }

    /// The health zone, if the upstream is checked.
    fn health(&self) -> Option<HealthZone<'c>> {
        self.check.as_ref().and(self.health)
    }

    /// Changes the parameters of the server with ID `id` (found under the
    /// lists' write locks). Returns its address and its values from before.
    pub fn update_by_id(
        &self,
        id: u64,
        params: &PeerParams,
        down: Option<bool>,
    ) -> Result<(Address, PeerValues), ApiError> {
        self.check_balancer_allows(self.reweights(params.weight, |p| p.stats.id == Some(id)), false)?;
        let (name, before) = self.update_target(Target::Id(id), params, down).map_err(|r| self.refused_id(r, id))?;
        Ok((address_of(&name)?, before))
    }

    /// Removes the server with ID `id` (found under the lists' write
    /// locks). Returns its address.
    pub fn remove_by_id(&self, id: u64) -> Result<Address, ApiError> {
        self.check_balancer_allows(true, false)?;
        let name = self.remove_target(Target::Id(id)).map_err(|r| self.refused_id(r, id))?;
        address_of(&name)
    }

    /// [`Self::refused`] for an edit of the server with ID `id`.
    fn refused_id(&self, refusal: Refusal, id: u64) -> ApiError {
        match refusal {
            Refusal::NotFound => {
                ApiError::not_found("server_not_found", format!("server with ID \"{id}\" does not exist"))
            }
            Refusal::Resolved => {
                let name = name_of(self.lists(), Target::Id(id));
                let name = name.map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned());
                self.resolved_conflict(&name.unwrap_or_else(|| format!("with ID {id}")))
            }
            other => self.refused(other, &format_args!("with ID {id}")),
        }
    }

    /// Health slots for servers a replace adds to a checked upstream
    /// (none without checks): all or nothing (507 when the health zone is
    /// full), freed unless [`Self::replace`] links their servers. A server
    /// the replace moves between primary and backup (one of `removed`, the
    /// names of the servers it removes) keeps its slot and health.
    pub fn claim_slots(
        &self,
        added: &[(&ServerSpec, PeerAddress)],
        removed: &[PeerAddress],
    ) -> Result<Vec<Pending<'c>>, ApiError> {
        let Some(check) = &self.check else { return Ok(Vec::new()) };
        let name = self.name();
        let removed: HashSet<&[u8]> = removed.iter().map(PeerAddress::name).collect();
        // Free slots are searched from the last one claimed on.
        let mut next_free = 0;
        added
            .iter()
            .map(|(_, address)| {
                let moved = removed.contains(address.name());
                Pending::claim_or_keep(self.health, &name, check, address.name(), moved, &mut next_free)
            })
            .collect()
    }

    /// Makes the servers what `plan` says, if the upstream's revision is
    /// still `revision`: `added` are the plan's new servers with their
    /// addresses and `slots` their health slots ([`Self::claim_slots`]),
    /// `removed` the names of the servers it removes (see
    /// [`crate::zone::peers::replace_locked`]).
    pub fn replace(
        &self,
        revision: u64,
        plan: &Plan,
        added: &[(&ServerSpec, PeerAddress)],
        removed: &[PeerAddress],
        mut slots: Vec<Pending<'_>>,
    ) -> Result<(), Lost> {
        // The edit's contract, checked here whatever the caller did: a
        // balancer that follows the change (random, for one, builds its
        // ranges once per worker and would read past them).
        let backup = added.iter().any(|(spec, _)| spec.backup);
        self.check_balancer_allows(plan.changes_set_or_weights(), backup).map_err(Lost::Balancer)?;
        let health_down: Vec<bool> =
            if slots.is_empty() { vec![false; added.len()] } else { slots.iter().map(|s| s.starts_down).collect() };
        let mut kept: Vec<usize> = slots.iter().filter_map(Pending::kept_slot).collect();
        kept.sort_unstable();
        // The removed servers' live slots, found before the locks: the
        // unchanged revision under them says that no change of the
        // upstream (which alone claims or frees its slots) came between.
        let mut removed_names: Vec<&[u8]> = removed.iter().map(PeerAddress::name).collect();
        removed_names.sort_unstable();
        removed_names.dedup();
        let health = self.health().filter(|_| !removed_names.is_empty());
        let removed_slots = health.map(|h| h.live_slots_named(self.name().as_bytes(), &removed_names));
        // Whether a peer of each removed name is linked once the change
        // is made (a server given twice, or moved to the other list): its
        // slot stays. Marked under the locks, so that a peer another
        // worker adds after them has its own slot, never this one.
        let mut stays = vec![false; removed_names.len()];
        // SAFETY: the primary list of a zone upstream; unlinked peers are
        // handed to reclaim (under the locks), not freed. The balancer
        // follows the change (checked above) and the limit is the
        // upstream's own (max_peers_per_list).
        unsafe {
            replace_locked(
                self.lists(),
                &*self.state,
                revision,
                self.list_limits(),
                plan,
                added,
                &health_down,
                |peer| (*self.state).retire(peer),
                |lists| {
                    // Drained: the vector's memory is freed after the locks.
                    slots.drain(..).for_each(Pending::activate);
                    if health.is_some() {
                        for peer in lists.peers() {
                            if let Ok(i) = removed_names.binary_search(&peer.name()) {
                                stays[i] = true;
                            }
                        }
                    }
                },
            )
        }?;
        // The removed servers' checks stop with them (but the slot of one
        // that moved to the other list: its new peer keeps it).
        if let (Some(health), Some(removed_slots)) = (health, removed_slots) {
            for (slot, stays) in removed_slots.into_iter().zip(stays) {
                if let Some((index, gen)) = slot.filter(|(index, _)| !stays && kept.binary_search(index).is_err()) {
                    health.free_removed(index, gen);
                }
            }
        }
        Ok(())
    }

    /// Its next server ID and revision.
    pub fn counters(&self) -> &UpstreamCounters {
        &self.state().counters
    }

    /// Its bookkeeping in its zone.
    fn state(&self) -> &ZoneState {
        // SAFETY: the state lives in the zone for the cycle's lifetime.
        unsafe { &*self.state }
    }

    /// Hands the upstream over to the REST API, whose first replace of it
    /// continues its numbering: under its lists' write locks (waited for
    /// at most 100 ms: None if they stayed held), from when no change of
    /// its zone's lists is made ([`ZoneState::hand_over`]), its next
    /// server ID and revision. [`Self::take_back`] if the replace fails.
    pub fn hand_over(&self) -> Option<(u64, u64)> {
        // SAFETY: the zone's lists, under both write locks.
        let _locks = unsafe { ListsWriteLocked::within(self.primary(), std::time::Duration::from_millis(100)) }?;
        self.state().hand_over();
        Some((self.counters().next_id(), self.counters().revision()))
    }

    pub fn take_back(&self) {
        self.state().take_back();
    }

    /// The answer to a change of its zone's lists once the REST API took
    /// the upstream over (before this worker serves it from the registry).
    pub fn handed_over_conflict(&self) -> ApiError {
        ApiError::conflict(
            "managed_by_dyups",
            format!(
                "upstream \"{}\" is being replaced through the REST API (dyups_interface): change it there",
                self.name()
            ),
        )
    }

    /// Removed peers that requests still hold.
    pub fn zombies(&self) -> u64 {
        self.state().zombies()
    }

    /// Starts the upstream's revisions at `revision` and gives its servers
    /// IDs (init_module, before any worker can reach the lists).
    pub fn start_ids(&self, revision: u64) {
        self.counters().revision.store(revision, core::sync::atomic::Ordering::Relaxed);
        self.give_ids();
    }

    /// Gives the peers without an ID the next free ones: those nginx's
    /// resolver added since the last change (`server NAME resolve`, nginx
    /// 1.27.3 and later), before the NGINX Plus API lists them.
    pub fn give_ids(&self) {
        if !counting() || !some_peer_lacks_id(self.lists()) {
            // Nothing to give: no write lock. The lengths are noted as
            // under it (an atomic maximum of lengths read without a lock).
            self.state().note_list_lengths();
            return;
        }
        // SAFETY: the zone's lists, under both write locks.
        unsafe {
            let mut locks = ListsWriteLocked::new(self.primary());
            ensure_ids(&locks.lists(), self.counters());
            // At start (start_ids), after the state files: the lengths the
            // workers begin with.
            (*self.state).note_list_lengths();
        }
    }

    /// The answer to a change of the peer `server` that nginx's resolver
    /// made.
    fn resolved_conflict(&self, server: &str) -> ApiError {
        let from = self.peers().into_iter().find_map(|p| p.resolved_from.filter(|_| p.name == server));
        ApiError::conflict(
            "server_resolved",
            format!(
                "server {server} of upstream \"{}\" was resolved from \"{}\" by nginx (server ... resolve): \
                 nginx adds and removes it; change the configuration's server line instead",
                self.name(),
                from.unwrap_or_default()
            ),
        )
    }

    /// Refuses a declarative replace whose `desired` servers name a peer
    /// nginx's resolver made: the replace is about the static peers, and
    /// the resolved ones stay nginx's (409, as changing them).
    pub fn check_not_resolved(&self, desired: &[ServerSpec]) -> Result<(), ApiError> {
        // An address nginx resolved that a static peer also has names the
        // static one (hunt 27: such a PUT, of the servers as listed, was
        // refused).
        let (resolved, fixed): (Vec<PeerView>, Vec<PeerView>) =
            self.peers().into_iter().partition(|p| p.resolved_from.is_some());
        for spec in desired {
            let name = String::from_utf8_lossy(PeerAddress::new(&spec.address).name()).into_owned();
            if resolved.iter().any(|p| p.name == name) && !fixed.iter().any(|p| p.name == name) {
                return Err(self.resolved_conflict(&name));
            }
        }
        Ok(())
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
            Refusal::Resolved => self.resolved_conflict(&server.to_string()),
            Refusal::HandedOver => self.handed_over_conflict(),
            Refusal::TableTooBig { total } => self.table_too_big(total),
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
    pub fn restore_at_start(&self, init: &InitModule, servers: &[ServerSpec]) -> Result<(), String> {
        // Only the new cycle's upstreams are reached by no process yet.
        if !init.has_upstream(self.upstream) {
            return Err(format!("upstream \"{}\" is not one of the new configuration's", self.name()));
        }
        check_primaries(servers, self.resolves_primary())?;
        // A configuration's backup servers come back as they were written
        // (nginx accepts them before a balancer that does not allow them);
        // under random, no more than the configuration's own static ones.
        let backups = servers.iter().filter(|s| s.backup).count();
        if backups > 0 && !self.upstream.takes_backups(self.balancer()) {
            return Err(format!("backup servers, but the {} balancer does not allow them", self.balancer().name()));
        }
        if !self.balancer().follows_set_changes(TABLES_FOLLOW_CHANGES) {
            return self.restore_parameters(servers);
        }
        // The configuration's servers, kept aside (before the locks) to be
        // rebuilt if the state's do not fit: as specs, with their `server`
        // text exactly (so the rebuilt blocks have the sizes of the freed).
        let current = self.static_peers();
        if self.balancer().is_random() && backups > current.iter().filter(|p| p.backup).count() {
            return Err(self.backup_limit().text);
        }
        // The balancer's limit, as the APIs keep it: a file may not raise
        // the configuration's primary total past it (a file written under
        // round robin, the upstream since made `hash ... consistent`).
        let current_specs = specs_of(&current)?;
        let wanted = primary_weight(servers);
        if wanted > self.list_limits().max_primary_weight && wanted > primary_weight(&current_specs) {
            return Err(self.table_too_big(wanted).text);
        }
        let kept: Vec<(ServerSpec, &[u8])> =
            current_specs.into_iter().zip(&current).map(|(spec, peer)| (spec, peer.server.as_bytes())).collect();
        if let Some(peer) = current
            .iter()
            .find(|p| p.server.len() >= SNAPSHOT_SERVER_MAX || p.server.contains(char::REPLACEMENT_CHARACTER))
        {
            return Err(format!(
                "the configuration's server \"{}\" cannot be kept aside; nothing was restored",
                peer.server
            ));
        }
        let servers = with_config_spelling(servers, &kept);
        let primary = self.primary();
        // SAFETY: the zone's lists, which no request can reach yet (see
        // above), so old peers are freed right away.
        let replaced = unsafe {
            let _locks = ListsWriteLocked::new(primary);
            let slab = SlabLocked::new((*primary).shpool);
            replace_peers(slab.pool(), primary, &servers, &kept, self.single_off_beside_backups())
        };
        let no_room = || {
            format!(
                "zone \"{}\" ({}) has no room for the state's {} servers",
                self.zone_name(),
                human_size(self.zone_size()),
                servers.len()
            )
        };
        match replaced {
            Replaced::Yes => Ok(()),
            Replaced::NoRoom => Err(format!("{}; nothing was restored", no_room())),
            Replaced::Lost => {
                // Believed impossible (see replace_peers). No balancer may
                // then see the empty lists (a NULL peer for round robin, a
                // division by a zero total for hash): the upstream's
                // requests fail (500) instead.
                // SAFETY: this cycle's configuration memory, in the master
                // before the workers fork.
                unsafe { (*self.upstream.raw()).peer.init = Some(fail_request) };
                Err(format!(
                    "{}, and the configuration's could not be rebuilt: the upstream has no servers and its requests \
                     fail (500) until nginx starts with a larger zone",
                    no_room()
                ))
            }
        }
    }

    /// For balancers with fixed tables: the state's parameters of servers
    /// the upstream has; other differences are reported. Linear in the
    /// servers (it runs in the master at every start and reload): the
    /// servers are compared by address and count in hash maps, and the
    /// parameters set in one walk of the lists, the k-th peer of an address
    /// taking the k-th server of that address. Addresses, not names: the
    /// file has nginx's name of each peer, which nginx may spell otherwise
    /// in a list the configuration made (`[::1.2.3.4]:80`, parsed as
    /// `[::102:304]:80`; the file was refused as different).
    fn restore_parameters(&self, servers: &[ServerSpec]) -> Result<(), String> {
        let differ = || {
            format!(
                "its servers differ from the configuration's, and the {} balancer cannot change its set of \
                 servers: remove the file to start from the configuration",
                self.balancer().name()
            )
        };
        // Each peer's address by its name, read before the lists' locks
        // (under them, the walk only looks up).
        let mut address_of: HashMap<Vec<u8>, Address> = HashMap::new();
        // Each address's count, primaries and backups apart: a server given
        // twice in one and three times in the other differs too (its extra
        // lines would be dropped unseen), and so does a backup in one that
        // is a primary in the other (its flag would be dropped, and the
        // next change would write it so, review 32).
        let mut current: HashMap<(Address, bool), usize> = HashMap::new();
        for peer in self.static_peers() {
            let Ok(address) = parse_peer_address(&peer.name) else { return Err(differ()) };
            address_of.insert(peer.name.into_bytes(), address.clone());
            *current.entry((address, peer.backup)).or_default() += 1;
        }
        let mut wanted: HashMap<(&Address, bool), usize> = HashMap::new();
        for spec in servers {
            *wanted.entry((&spec.address, spec.backup)).or_default() += 1;
        }
        if wanted.len() != current.len()
            || !current.iter().all(|((address, backup), n)| wanted.get(&(address, *backup)) == Some(n))
        {
            return Err(differ());
        }
        // Each address's servers in the file's order, and how many of them
        // peers took so far.
        #[derive(Default)]
        struct Saved {
            params: Vec<(PeerParams, Option<bool>)>,
            taken: Cell<usize>,
        }
        let mut by_address: HashMap<&Address, Saved> = HashMap::new();
        for spec in servers {
            let params = PeerParams {
                weight: None,
                max_fails: Some(spec.max_fails),
                fail_timeout: Some(spec.fail_timeout),
                max_conns: Some(spec.max_conns),
            };
            by_address.entry(&spec.address).or_default().params.push((params, Some(spec.down)));
        }
        set_parameters_locked(self.lists(), self.counters(), self.list_limits(), |peer| {
            let saved = by_address.get(address_of.get(peer.name())?)?;
            let (params, down) = saved.params.get(saved.taken.get())?;
            saved.taken.set(saved.taken.get() + 1);
            Some((params, *down))
        });
        Ok(())
    }

    /// The servers as a state file records them.
    pub fn server_specs(&self) -> Result<Vec<ServerSpec>, String> {
        specs_of(&self.static_peers())
    }

    /// The peers of the configuration and the APIs, without those nginx's
    /// resolver made (`server NAME resolve`), which nginx adds again after
    /// a restart: a state file never holds them.
    fn static_peers(&self) -> Vec<PeerView> {
        self.peers().into_iter().filter(|p| p.resolved_from.is_none()).collect()
    }

    /// The most peers one list may hold: no list can have more peers than
    /// the zone has room for, and each request's `tried` bitmap is sized for
    /// that many (see [`request_hook`]).
    pub fn max_peers_per_list(&self) -> usize {
        let limit = max_peers_for_zone(self.zone_size());
        if self.state().unknown_request_data.load(core::sync::atomic::Ordering::SeqCst) {
            return limit.min(64);
        }
        limit
    }

    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    /// Frees the removed peers no request holds any more (see
    /// [`crate::zone::reclaim`]).
    pub fn reap(&self) {
        self.state().reap();
    }
}

/// The address of a peer named `name` (as nginx names peers).
fn address_of(name: &PeerName) -> Result<Address, ApiError> {
    parse_peer_address(&String::from_utf8_lossy(name.as_bytes()))
        .map_err(|e| ApiError::new(500, "internal", format!("server {e}")))
}

/// The `peer.init` of an upstream that lost its servers at start (see
/// [`ZoneUpstream::restore_at_start`]): every request fails with 500.
unsafe extern "C" fn fail_request(_r: *mut ngx_http_request_t, _us: *mut ngx_http_upstream_srv_conf_t) -> ngx_int_t {
    NGX_ERROR as ngx_int_t
}

fn shown_name(address: &PeerAddress) -> String {
    String::from_utf8_lossy(address.name()).into_owned()
}

/// `servers` (a state file's), each with the `server` text the
/// configuration spells its address with (`localhost:8080`, `10.0.0.1`
/// for 10.0.0.1:80), the k-th server of an address taking the k-th
/// configuration peer's: nginx's `hash ... consistent` places a peer's
/// points by that text, and a restore that named the peers by their
/// addresses moved most keys to other servers (nginx 1.27.3 and later,
/// hunt 33). None for an address the configuration does not have.
fn with_config_spelling<'s>(
    servers: &'s [ServerSpec],
    kept: &[(ServerSpec, &'s [u8])],
) -> Vec<(&'s ServerSpec, Option<&'s [u8]>)> {
    let mut spellings: HashMap<&Address, VecDeque<&[u8]>> = HashMap::new();
    for (spec, server) in kept {
        spellings.entry(&spec.address).or_default().push_back(server);
    }
    servers.iter().map(|spec| (spec, spellings.get_mut(&spec.address).and_then(VecDeque::pop_front))).collect()
}

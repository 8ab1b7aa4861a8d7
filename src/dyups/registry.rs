//! The registry of upstreams created or replaced through the REST API, in
//! the module's own shared zone (`dyups_shm_zone_size`).
//!
//! Each record holds an upstream's name, its balancer and an immutable
//! shared peer list (`ngx_http_upstream_rr_peers_t` with `shpool` set, so
//! nginx's balancers lock it themselves). A POST builds a complete new list
//! before anything changes, then swaps it in and retires the old one; a
//! DELETE retires the list. Retired lists are freed by [`GracePeriod`]'s grace
//! period once no request can use them. Every change bumps `generation`,
//! which workers compare with one atomic load on every request
//! ([`crate::dyups::worker`]).
//!
//! The records are chained in creation order (listings) and indexed by
//! name (a hash of chains), so that a change finds its record in a few
//! steps whatever the registry's size.
//!
//! Every change also takes the next `version`. So that a worker's sync
//! costs the changes it missed, not the size of the registry, the records
//! are also chained by their last change (newest first), and the names of
//! the run-time upstreams deleted lately (whose records are gone) are kept
//! in a small ring with their versions. A worker that missed more deletions
//! than the ring holds copies the whole registry instead ([`Changes`]).
//!
//! The registry has its own lock ([`RegistryLock`], a spin lock on words in
//! the zone that names its holder, so that a worker killed while it held
//! it does not stop every later change: the next one takes it over and, if
//! the dead one was inside a change, repairs the change chain and makes
//! every worker reload the registry, see [`repair`]). Readers (listings,
//! worker syncs) copy records out with no heap allocation while they hold
//! it; writers hold, inside it, the zone's slab mutex for allocations and
//! frees (lock order: registry, then slab). Taking the slab mutex for reads
//! instead made every listing serialise the workers on a lock that can
//! sleep (a contended `ngx_shmtx` waits in a semaphore, stalling every
//! connection of the worker): a flood of `/detail` requests starved proxied
//! traffic. The registry's lock only spins and yields.
//! nginx reuses the zone across reloads when its name and size are
//! unchanged, so the registry, and every accepted change, survives them.

use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use dynamic_upstream_core::dyups::UpstreamSpec;
use dynamic_upstream_core::health::check_conf::CheckConf;
use dynamic_upstream_core::name_set::NameSet;
use dynamic_upstream_core::{ApiError, Balancer, PeerView};
use ngx::ffi::{
    ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_int_t, ngx_shm_zone_t, ngx_slab_calloc,
    ngx_slab_free_locked, ngx_slab_pool_t, NGX_ERROR, NGX_OK,
};

use crate::dyups::grace::{
    attach_config_word, check_text, list_block_size, registry_counters, set_check_text, GracePeriod, SlotBlock, Ticket,
};
use crate::dyups::registry_lock::{Held, RegistryLock};
#[cfg(debug_assertions)]
use crate::dyups::test_stall::stall_for_tests;
use crate::nginx::conf::{MainConf, RegistryZone};
use crate::nginx::module_hooks::ConfContext;
use crate::nginx::module_hooks::InitModule;
use crate::nginx::peer_list::{
    build_list, each_name_of_fixed_list, fixed_health_down_names, free_list, list_fixed_peers, names_of_fixed_list,
    quietly, recount, DOWN_HEALTH,
};
use crate::nginx::peer_lock::{ListsWriteLocked, SlabLocked};
use crate::nginx::peer_stats::UpstreamCounters;
use crate::nginx::process::{in_running_process, on_nginx_thread};
use crate::nginx::shm_zone;
use crate::nginx::sockaddr::PeerAddress;
use crate::nginx::{fingerprint, layout, FNV_OFFSET, FNV_PRIME};
use crate::zone::health::{self, forget_runtime, free_pending_runtime, HealthZone, RuntimeSlots};
use crate::zone::ids::{ensure_ids, inherit, InheritRoom};

/// Name of the module's zone. It carries the registry's layout version:
/// nginx hands a zone of the same name and size to the next cycle on
/// reload, and a module build with another layout must not read it (it
/// gets a fresh zone, restored from `dyups_upstream_conf`). The build fails
/// when the layout no longer has [`ZONE_LAYOUT`]'s fingerprint: bump the
/// version here and record the new fingerprint there (v2 is the last
/// released layout; v4: registry lists carry their check directives, or
/// (another v4) their upstream's server-ID counter and revision; v5: both;
/// v6: the registry's lock names its holder, a record's balancer is kept twice;
/// v7: `loaded` says whether the file was restored only in part: the same
/// layout, another meaning; v8: records are indexed by name and linked
/// both ways).
pub const ZONE_NAME: &str = "dynamic_upstream_dyups_v8";

/// The fingerprint of the layout [`ZONE_NAME`]'s version names (64-bit
/// targets; the numbers differ on others). It covers nginx's peer structs,
/// which differ between nginx versions: each has its own.
const ZONE_LAYOUT: u64 = crate::nginx::version::DYUPS_ZONE_LAYOUT;

/// Everything the registry keeps in its zone, as sizes, alignments and
/// field offsets: its own structs, the grace period's, and nginx's peer
/// structs its lists are made of. The stored balancer byte is
/// [`Balancer::code`], whose values core's tests pin.
const LAYOUTS: [&[usize]; 6] = [
    &crate::dyups::registry_lock::LAYOUT,
    &layout!(Registry; lock, generation, epoch, superseded, loaded, next_version, records, last, index, index_len,
        changes, removals, removals_written, forgotten, reclaim),
    &layout!(Record; next, previous, same_bucket, newer, older, version, deleted, current_balancer, name_len, name,
        balancers, peers),
    &layout!(BalancerSlot; balancer, key_len, key),
    &layout!(Removal; version, name_len, name),
    &[size_of::<ngx_http_upstream_rr_peer_t>(), size_of::<ngx_http_upstream_rr_peers_t>()],
];

#[cfg(target_pointer_width = "64")]
const _: () = assert!(
    fingerprint(fingerprint(FNV_OFFSET, &LAYOUTS), &crate::dyups::grace::LAYOUTS) == ZONE_LAYOUT,
    "the dyups zone's layout changed: give ZONE_NAME the next version and record the new fingerprint in ZONE_LAYOUT"
);

/// `Registry::loaded`'s values.
const NOT_LOADED: u8 = 0;
const LOADED: u8 = 1;
const LOADED_IN_PART: u8 = 2;

const MAX_NAME: usize = dynamic_upstream_core::dyups::MAX_UPSTREAM_NAME;
const MAX_KEY: usize = 256;

/// One upstream of the registry (slab memory; copied out under the lock,
/// a fixed-size value: no heap allocation).
#[repr(C)]
#[derive(Clone, Copy)]
struct Record {
    /// Creation order (listings), and back.
    next: *mut Record,
    previous: *mut Record,
    /// The next record in its bucket of `Registry::index`.
    same_bucket: *mut Record,
    /// The change chain, newest first (see `Registry::changes`).
    newer: *mut Record,
    older: *mut Record,
    /// Bumped on every change of this upstream.
    version: u64,
    /// A deleted upstream of the configuration: hidden, requests get 502.
    deleted: bool,
    /// Which of `balancers` is in force (0 or 1).
    current_balancer: u8,
    name_len: usize,
    name: [u8; MAX_NAME],
    /// The balancer in force and the one a change writes: a change fills
    /// the other one whole, then makes it current with one store, so that a
    /// holder killed halfway leaves one of them, never a mix of the two.
    balancers: [BalancerSlot; 2],
    peers: *mut ngx_http_upstream_rr_peers_t,
}

/// A record's balancer: [`Balancer::code`]; a hash's key is `key`.
#[repr(C)]
#[derive(Clone, Copy)]
struct BalancerSlot {
    balancer: u8,
    key_len: usize,
    key: [u8; MAX_KEY],
}

/// The registry's root, at the zone's `shpool->data`.
#[repr(C)]
struct Registry {
    /// The registry's lock (see the module comment).
    lock: RegistryLock,
    generation: AtomicU64,
    /// Bumped by the master for every configuration cycle it starts (the
    /// zone outlives reloads): workers of older cycles see that they are
    /// being replaced.
    epoch: AtomicU64,
    /// A reload replaced this registry with a new one (a new zone size):
    /// changes made here would be lost.
    superseded: AtomicBool,
    /// Whether the `dyups_upstream_conf` file was loaded into this
    /// registry: [`NOT_LOADED`], [`LOADED`] or [`LOADED_IN_PART`].
    loaded: u8,
    /// The version of the latest change.
    next_version: u64,
    /// The first and the last record in creation order.
    records: *mut Record,
    last: *mut Record,
    /// The records by name ([`bucket_of`]): `index_len` chains of
    /// `Record::same_bucket`, so that a change finds its record without
    /// walking them all (restoring N upstreams at start cost N² before).
    index: *mut *mut Record,
    index_len: usize,
    /// The most recently changed record; `older` leads to the rest.
    changes: *mut Record,
    /// The latest deletions of run-time upstreams, a ring.
    removals: [Removal; REMOVALS],
    /// Deletions ever written to the ring.
    removals_written: u64,
    /// The highest version of a deletion that has left the ring.
    forgotten: u64,
    reclaim: GracePeriod,
}

/// Deletions of run-time upstreams a worker can miss and still sync by the
/// changes alone (each takes about 270 bytes of the registry).
const REMOVALS: usize = 32;

/// A deleted run-time upstream.
#[repr(C)]
#[derive(Clone, Copy)]
struct Removal {
    version: u64,
    name_len: usize,
    name: [u8; MAX_NAME],
}

impl Removal {
    /// A deletion of `name` (its version is set when noted).
    fn of(name: &str) -> Removal {
        let mut removal = Removal { version: 0, name_len: name.len().min(MAX_NAME), name: [0; MAX_NAME] };
        removal.name[..removal.name_len].copy_from_slice(&name.as_bytes()[..removal.name_len]);
        removal
    }

    fn name(&self) -> &[u8] {
        &self.name[..self.name_len.min(MAX_NAME)]
    }
}

/// A record's name and version ([`Dyups::versions`]).
pub struct RecordVersion {
    pub version: u64,
    name_len: usize,
    name: [u8; MAX_NAME],
}

impl RecordVersion {
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len.min(MAX_NAME)]
    }
}

/// What a worker must apply to catch up with the registry (see
/// [`Dyups::changes_since`]).
pub struct Changes<'s> {
    pub generation: u64,
    /// The version of the latest change; the next call takes it as `seen`.
    pub version: u64,
    /// `records` is the whole registry: names not in it were deleted.
    pub complete: bool,
    /// With `complete`: every record; else the records changed since.
    pub records: Vec<RecordView<'s>>,
    /// Without `complete`: run-time upstreams deleted since, with the
    /// version of their deletion.
    pub removed: Vec<(u64, String)>,
}

/// The servers of a registry list: primaries plus backups.
///
/// # Safety
/// `list` is a live registry list (never changed once built) and the
/// caller holds the registry lock, so it is not freed meanwhile.
unsafe fn server_count(list: *mut ngx_http_upstream_rr_peers_t) -> usize {
    // SAFETY: per the contract; the backup list lives as long as its primary.
    unsafe {
        let backup = (*list).next;
        (*list).number + if backup.is_null() { 0 } else { (*backup).number }
    }
}

/// What a conditional change ([`Dyups::replace_if`], [`Dyups::delete`])
/// requires of its upstream's record when it takes the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// A record of version V (a read found it: the NGINX Plus API's
    /// changes of a run-time upstream, the first is the read's).
    Record(u64),
    /// What a read when the registry was at version `since` saw (dyups'
    /// `If-Match`, [`Dyups::record_read`]): a record of that version, or no
    /// record and no deletion of the name since. Any record made later has
    /// a greater version, and every deletion of a run-time upstream is noted
    /// in the ring under its own, greater one; one that left the ring
    /// (`forgotten` past `since`) fails the check, as a change would. So
    /// does a `since` below `floor`, the checking process's cycle's
    /// ([`Dyups::record_read`]): a read before the reload to that cycle
    /// (the name's absence then, or a zone upstream's revision, on the same
    /// scale, of an upstream the reload removed: review 57 F2).
    Unchanged { since: u64, floor: u64 },
    /// No record (a configuration upstream still served from its zone,
    /// whose own revision was checked).
    NoRecord,
}

impl Precondition {
    /// # Safety
    /// The caller holds the registry lock. Allocates nothing.
    unsafe fn holds(self, registry: &Registry, name: &str) -> bool {
        // SAFETY: per the contract; a linked record is allocated.
        let version = unsafe { find_record(registry, name).map(|record| (*record).version) };
        match (self, version) {
            (Precondition::NoRecord, found) => found.is_none(),
            (Precondition::Record(wanted) | Precondition::Unchanged { since: wanted, .. }, Some(found)) => {
                found == wanted
            }
            (Precondition::Record(_), None) => false,
            (Precondition::Unchanged { since, floor }, None) => {
                // (A ring slot never written has version 0.)
                (floor..=registry.next_version).contains(&since)
                    && registry.forgotten <= since
                    && !registry
                        .removals
                        .iter()
                        .any(|removal| removal.version > since && removal.name().eq_ignore_ascii_case(name.as_bytes()))
            }
        }
    }
}

/// A replace done: how many servers the record had before (0 if deleted;
/// `None` if it had no record), for the change log, and its new version.
pub struct Replaced {
    pub before: Option<usize>,
    pub version: u64,
}

/// 412 for a conditional change of an upstream that changed meanwhile.
pub fn revision_mismatch(name: &str) -> ApiError {
    ApiError::new(
        412,
        "upstream_revision_mismatch",
        format!("upstream \"{name}\" changed since the revision given in If-Match: read it again"),
    )
}

/// What a worker needs to know of a record (copied out under the lock),
/// read inside the grace-period section `'s` borrows: its peer list stays
/// allocated as long as the view can be used.
#[derive(Clone)]
pub struct RecordView<'s> {
    pub name: String,
    pub version: u64,
    pub deleted: bool,
    pub balancer: Balancer,
    list: *mut ngx_http_upstream_rr_peers_t,
    _section: PhantomData<&'s ReadSection>,
}

impl RecordView<'_> {
    /// Whether the record has a peer list (not a deletion's tombstone, nor
    /// a configuration upstream's record before its first change).
    pub fn has_list(&self) -> bool {
        !self.list.is_null()
    }

    /// The peers of its list (none without one), read without the list's
    /// locks ([`list_fixed_peers`]: a registry list is never edited).
    pub fn peers(&self) -> Vec<PeerView> {
        if self.list.is_null() {
            return Vec::new();
        }
        // SAFETY: a list read in a section is not freed before it ends,
        // and the section outlives this view; a registry list is replaced,
        // never edited.
        unsafe { list_fixed_peers(self.list) }
    }

    /// The names of its peers, primaries and backups (none without a
    /// list): nginx's names (`ngx_sock_ntop`), the bytes the health
    /// records of its servers are keyed by, which the body's text or
    /// `Address`'s display need not be (`[::1.2.3.4]:80`).
    pub fn peer_names(&self) -> NameSet {
        let mut names = NameSet::default();
        if !self.list.is_null() {
            // SAFETY: as in peers().
            unsafe { each_name_of_fixed_list(self.list, |name| names.push(name)) };
        }
        names.sort();
        names
    }

    /// The check directives of its list.
    pub fn check(&self) -> Option<CheckConf> {
        if self.list.is_null() {
            return None;
        }
        // SAFETY: as in peers(); the text never changes.
        unsafe { list_check(self.list) }
    }

    /// The names of its peers that a health check set down (none
    /// without a list), read as [`RecordView::peers`] reads them.
    pub fn health_down_names(&self) -> Vec<Vec<u8>> {
        if self.list.is_null() {
            return Vec::new();
        }
        // SAFETY: as in peers().
        unsafe { fixed_health_down_names(self.list) }
    }

    /// Clears the health bit of its peers whose names `cleared` accepts
    /// (under the list's locks: it neither allocates nor waits) in this
    /// view's list (not the record's current one, should a change have
    /// replaced it since: that list's bits are its own). A list whose
    /// locks stay held keeps the bits: requests to it wait for those locks
    /// anyway, and a replace (a new list) cures both.
    pub fn clear_health(&self, cleared: impl Fn(&[u8]) -> bool) {
        if !self.list.is_null() {
            // SAFETY: a registry list, allocated while the section lives;
            // set_peers_health writes under its write lock.
            let _ = unsafe { health::set_peers_health(self.list, &self.name, |name| cleared(name).then_some(false)) };
        }
    }

    /// Its list (null without one), allocated while the section lives.
    pub fn list(&self) -> *mut ngx_http_upstream_rr_peers_t {
        self.list
    }
}

/// How long one init_module waits for the registry's lock in
/// [`Dyups::while_write_locked`]: [`INIT_LOCK_BUDGET`] in all, counted in
/// the time its steps spend waiting (not the time between them: a reload
/// that takes longer for its own work still waits for a worker's change
/// of a few milliseconds, review 51). Once that is spent (a stuck process
/// holds the lock), its later steps take the lock only if it is free or
/// its holder is gone: a reload waits once, not a second for each step
/// that needs the lock (review 45), and a holder that lets go within the
/// budget is waited for, so that every step runs under the lock (review 47).
#[derive(Default)]
pub struct InitPatience {
    waited: Duration,
    gave_up: bool,
}

/// See [`InitPatience`].
pub const INIT_LOCK_BUDGET: Duration = Duration::from_secs(2);

impl InitPatience {
    /// Whether a wait for the lock ran out of time.
    pub fn gave_up(&self) -> bool {
        self.gave_up
    }
}

/// The registry while [`Dyups::while_write_locked`] holds its lock: no
/// record or list changes (changes need the lock), so its records and
/// their current lists are read without a grace-period section (which the
/// master, whose workers would inherit its slot, must not enter).
#[derive(Clone, Copy)]
pub struct WriteHeld<'a, 'z> {
    dyups: &'a Dyups<'z>,
}

impl WriteHeld<'_, '_> {
    /// Whether the registry has a run-time upstream `name` with checks.
    /// Allocates nothing.
    pub fn has_checked(self, name: &[u8]) -> bool {
        // SAFETY: the registry lives as long as its zone; the held lock
        // keeps its records and their lists (see the type).
        unsafe { find_record(&*self.dyups.registry, name) }.is_some_and(|record| {
            // SAFETY: as above.
            unsafe { checked_list(&*record) }.is_some()
        })
    }

    /// The run-time upstreams balanced by a hash: each one's name and key.
    pub fn hash_keys(self) -> Vec<(String, String)> {
        self.records()
            .filter_map(|r| match (r.deleted, r.balancer()) {
                (false, Balancer::Hash { key, .. }) => Some((String::from_utf8_lossy(r.name()).into_owned(), key)),
                _ => None,
            })
            .collect()
    }

    /// The run-time upstreams with checks: each one's name, its checks'
    /// interval and its peers' names. Takes no lock of their lists (a
    /// worker killed holding one must not hang the master): their peers
    /// never change.
    pub fn checked_servers(self) -> Vec<CheckedServers> {
        self.records()
            .filter_map(|r| {
                // SAFETY: as in has_checked; a registry list is never edited.
                let list = unsafe { checked_list(r) }?;
                // SAFETY: as above; the text never changes.
                let interval_ms = unsafe { list_check(list) }.map_or(1000, |c| c.interval_ms);
                Some(CheckedServers {
                    upstream: String::from_utf8_lossy(r.name()).into_owned(),
                    interval_ms,
                    // SAFETY: as above.
                    servers: unsafe { names_of_fixed_list(list) },
                })
            })
            .collect()
    }
}

impl<'a> WriteHeld<'a, '_> {
    /// The registry's records, in creation order.
    fn records(self) -> impl Iterator<Item = &'a Record> {
        // SAFETY: as in has_checked: the held lock keeps the records and
        // their links.
        let first = unsafe { (*self.dyups.registry).records.as_ref() };
        // SAFETY: as above.
        core::iter::successors(first, |r| unsafe { r.next.as_ref() })
    }
}

impl WriteHeld<'_, '_> {
    /// Gives every server of the run-time upstreams' lists that has no ID
    /// one (a reload that turns the statistics on keeps the registry, whose
    /// lists were built without IDs: the NGINX Plus API listed them all as
    /// 0). Each list under its write locks, waited for at most 100 ms: a
    /// list whose locks stay held (a process killed holding them) keeps its
    /// servers as they are until the upstream's next change. Returns the
    /// names of the lists left so. A record whose servers got IDs counts
    /// as changed (a new version): the `dyups_upstream_conf` text a worker
    /// rendered from it before has no IDs (review 23: a worker of the
    /// previous cycle wrote the file without them).
    pub fn ensure_ids(self) -> Vec<String> {
        let mut skipped = Vec::new();
        let mut changed = false;
        // SAFETY: as in has_checked.
        let mut record = unsafe { (*self.dyups.registry).records };
        while !record.is_null() {
            // SAFETY: as in has_checked.
            let (peers, next) = unsafe { ((*record).peers, (*record).next) };
            if !peers.is_null() {
                // SAFETY: a live registry list (the held lock keeps it);
                // its IDs are atomic words of its peers, which lock-free
                // readers read as a whole.
                match unsafe { ListsWriteLocked::within(peers, Duration::from_millis(100)) } {
                    Some(mut locked) => {
                        let lists = locked.lists();
                        let lacked = lists.peers().any(|p| p.id().is_none());
                        // SAFETY: a registry list starts a RegistryList.
                        ensure_ids(&lists, unsafe { registry_counters(peers) });
                        if lacked && lists.peers().all(|p| p.id().is_some()) {
                            // SAFETY: the registry, held (marked changing by
                            // while_write_locked); the record is linked.
                            unsafe { mark_changed(&mut *self.dyups.registry, record) };
                            changed = true;
                        }
                    }
                    // SAFETY: as in has_checked.
                    None => skipped.push(String::from_utf8_lossy(unsafe { (*record).name() }).into_owned()),
                }
            }
            record = next;
        }
        if changed {
            // SAFETY: as above.
            unsafe { (*self.dyups.registry).generation.fetch_add(1, SeqCst) };
        }
        skipped
    }
}

/// A checked run-time upstream's servers ([`WriteHeld::checked_servers`]).
pub struct CheckedServers {
    pub upstream: String,
    pub interval_ms: u32,
    /// Its peers' names.
    pub servers: Vec<Vec<u8>>,
}

/// The check directives of the registry list `list`.
///
/// # Safety
/// `list` is a live registry list for the call.
unsafe fn list_check(list: *mut ngx_http_upstream_rr_peers_t) -> Option<CheckConf> {
    // SAFETY: per the contract; the text never changes.
    let text = unsafe { check_text(list) };
    // Written from a CheckConf by replace(): it reads back.
    CheckConf::from_config_text(&String::from_utf8_lossy(text)).ok().flatten()
}

/// The current list of `record` if it is live and checked.
///
/// # Safety
/// The registry's lock is held (the record and its list stay).
unsafe fn checked_list(record: &Record) -> Option<*mut ngx_http_upstream_rr_peers_t> {
    // SAFETY: per the contract; the text never changes.
    let checked = !record.deleted && !record.peers.is_null() && !unsafe { check_text(record.peers) }.is_empty();
    checked.then_some(record.peers)
}

/// What a replace continues from, so that an upstream never gives a server
/// ID twice nor goes back in revision: a configuration upstream's zone,
/// whose servers and numbering the first replace takes over (hunt 26), or
/// the time a registry loaded anew (a reload with another
/// `dyups_shm_zone_size`) follows. Zero: nothing.
#[derive(Clone, Copy, Default)]
pub struct Continues {
    /// The lowest server ID the replaced list may give a new server.
    pub next_id: u64,
    /// The record's new version is greater.
    pub version_floor: u64,
}

/// The module's zone of the running cycle, inherited by the workers. Set
/// only in init_module ([`Dyups::begin_cycle`]), once the new cycle can no
/// longer fail: a reload that fails earlier frees its cycle and its new
/// zones, and the master's next workers must still find the running one.
static mut ZONE: *mut ngx_shm_zone_t = ptr::null_mut();

/// The epoch of this process's cycle (set by the master in init_module,
/// inherited by its workers).
static MY_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Declares the zone of the cycle being configured (http `init_main_conf`).
/// Keeps it in `main`, its configuration; false if nginx refused it (it
/// said why).
pub fn declare_zone(context: &mut ConfContext<'_>, main: &mut MainConf) -> bool {
    // SAFETY: the registry's zone name and init.
    let zone = unsafe { shm_zone::declare::<RegistryZone>(context, ZONE_NAME, main.shm_zone_size, Some(init_zone)) };
    zone.map(|zone| main.set_dyups_zone(zone)).is_some()
}

/// Zone init: a new registry, or the previous cycle's when nginx reused the
/// zone on reload.
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx calls this in the master with the mapped zone; `data`
    // is the previous cycle's zone data (the registry) when reused.
    unsafe {
        if shm_zone::reuse(zone, data) {
            return NGX_OK as ngx_int_t;
        }
        let pool = (*zone).shm.addr.cast::<ngx_slab_pool_t>();
        // The registry, then its first grace-period slots (see crate::dyups::grace).
        let size = core::mem::size_of::<Registry>() + core::mem::size_of::<SlotBlock>();
        let registry = ngx_slab_calloc(pool, size).cast::<Registry>();
        let index_len = index_len((*zone).shm.size);
        let index = ngx_slab_calloc(pool, index_len * size_of::<*mut Record>()).cast::<*mut Record>();
        if registry.is_null() || index.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        (*registry).index = index;
        (*registry).index_len = index_len;
        // A Registry's size is a multiple of its alignment, which is the
        // slots' alignment.
        GracePeriod::place_first_block(ptr::addr_of_mut!((*registry).reclaim), registry.add(1).cast(), pool);
        (*pool).data = registry.cast();
        (*zone).data = registry.cast();
        NGX_OK as ngx_int_t
    }
}

/// The module's zone of the running cycle (null before the first one, and
/// off nginx's thread).
pub fn zone() -> *mut ngx_shm_zone_t {
    if !on_nginx_thread() {
        return ptr::null_mut();
    }
    // SAFETY: set in the master's init_module only, on nginx's thread,
    // which this is.
    unsafe { ZONE }
}

/// A cycle's registry, for as long as `'z` says its zone is mapped: the
/// running cycle's in a worker ([`Dyups::get`], `'static`: a worker's zone
/// is its life's), the new cycle's in init_module ([`Dyups::of_new_cycle`]).
pub struct Dyups<'z> {
    zone: *mut ngx_shm_zone_t,
    pool: *mut ngx_slab_pool_t,
    registry: *mut Registry,
    /// The same cycle's health zone: run-time upstreams' servers get their
    /// health records there.
    health: HealthOf<'z>,
    _zone: PhantomData<&'z Registry>,
}

/// Where a [`Dyups`] finds its cycle's health zone: looked up when needed
/// for the running one (requests make a `Dyups` for one load, see
/// `sync_on_request`), given for the new cycle's.
#[derive(Clone, Copy)]
enum HealthOf<'z> {
    Running,
    Zone(Option<HealthZone<'z>>),
}

impl Dyups<'static> {
    /// The running cycle's registry, in a process that serves requests, on
    /// nginx's thread; none elsewhere (the master, whose reloads unmap old
    /// zones; another thread). `'static` because a worker's zones stay
    /// mapped for its life, to its exit; the one exception a handle kept
    /// in a thread-local would meet is the one process of
    /// `master_process off`, whose reload unmaps at once a zone it does
    /// not keep (a new `dyups_shm_zone_size`).
    pub fn get() -> Option<Dyups<'static>> {
        if !in_running_process() {
            return None;
        }
        // SAFETY: ZONE is set in the master's init_module only (on nginx's
        // thread, which this is) and points to the running cycle's zone,
        // mapped in every worker for its life.
        unsafe { Dyups::of_zone(ZONE, HealthOf::Running) }
    }
}

impl<'a> Dyups<'a> {
    /// The new cycle's registry, in its init_module (none without the
    /// module's zone).
    pub fn of_new_cycle(init: &InitModule<'a>) -> Option<Dyups<'a>> {
        let zone = init.main_conf().map_or(ptr::null_mut(), MainConf::dyups_zone);
        // SAFETY: in init_module the new cycle's zones are mapped and
        // initialised, for as long as the cycle ('a).
        unsafe { Dyups::of_zone(zone, HealthOf::Zone(HealthZone::of_new_cycle(init))) }
    }

    /// # Safety
    /// `zone` is null or the module's zone, initialised and mapped for `'a`.
    unsafe fn of_zone(zone: *mut ngx_shm_zone_t, health: HealthOf<'a>) -> Option<Dyups<'a>> {
        // SAFETY: per the contract.
        let (pool, registry) = unsafe { shm_zone::parts(zone) }?;
        Some(Dyups { zone, pool, registry, health, _zone: PhantomData })
    }
}

impl<'z> Dyups<'z> {
    /// Its cycle's health zone (none without checks).
    fn health(&self) -> Option<HealthZone<'z>> {
        match self.health {
            HealthOf::Running => HealthZone::running(),
            HealthOf::Zone(zone) => zone,
        }
    }

    pub fn zone_size(&self) -> usize {
        // SAFETY: the handle's zone is mapped (see its makers).
        unsafe { (*self.zone).shm.size }
    }

    /// Starts a configuration cycle (master, init_module, after which the
    /// cycle cannot fail): the new cycle's zone (none without an http
    /// block) becomes the running one, and workers of older cycles are from
    /// now on known to be on their way out.
    pub fn begin_cycle(init: &InitModule) {
        // The running cycle's registry: still mapped, nginx frees the old
        // cycle's zones after init_module.
        // ZONE is the running cycle's zone (or null) when the new cycle
        // replaces the one that set it; else a freed cycle's (see
        // replaces_served_cycle).
        let running = if init.replaces_served_cycle() {
            // SAFETY: ZONE, set on this thread; init_module runs in the
            // master's only thread, before the workers fork.
            unsafe { ZONE }
        } else {
            ptr::null_mut()
        };
        // SAFETY: the running cycle's zone, still mapped (nginx frees the
        // old cycle's zones after init_module), or null.
        let previous = unsafe { Dyups::of_zone(running, HealthOf::Zone(None)) };
        let dyups = Dyups::of_new_cycle(init);
        // SAFETY: as above.
        unsafe { ZONE = init.main_conf().map_or(ptr::null_mut(), MainConf::dyups_zone) };
        if let Some(previous) = previous.filter(|p| dyups.as_ref().map(|d| d.registry) != Some(p.registry)) {
            // A new zone size is a new registry: the old one's workers must
            // see that they are replaced all the same, and stop changing it.
            // SAFETY: see above.
            unsafe {
                (*previous.registry).superseded.store(true, SeqCst);
                (*previous.registry).epoch.fetch_add(1, SeqCst);
            }
        }
        if let Some(dyups) = dyups {
            // SAFETY: the registry lives as long as the zone.
            let epoch = unsafe { (*dyups.registry).epoch.fetch_add(1, SeqCst) } + 1;
            MY_EPOCH.store(epoch, SeqCst);
        }
    }

    /// False in a worker whose configuration a reload has replaced.
    pub fn is_current_cycle(&self) -> bool {
        // SAFETY: as above.
        unsafe { (*self.registry).epoch.load(SeqCst) == MY_EPOCH.load(SeqCst) }
    }

    /// True in a worker whose registry a reload replaced with a new one:
    /// the new workers never see what changes here.
    pub fn is_superseded(&self) -> bool {
        // SAFETY: the registry lives as long as the zone.
        unsafe { (*self.registry).superseded.load(SeqCst) }
    }

    /// Whether the registry is new and not loaded from the file yet (see
    /// [`Self::take_first_load`]). In init_module.
    pub fn is_unloaded(&self, _init: &InitModule) -> bool {
        // SAFETY: as in take_first_load: only this process reaches it now.
        unsafe { (*self.registry).loaded == NOT_LOADED }
    }

    /// Whether the registry is new (a fresh zone: first start, or a reload
    /// that changed the zone's size) and so should be loaded from the file.
    /// Marks a new one loaded (one loaded in part stays so: a reload that
    /// keeps the zone does not read the file again), its versions starting
    /// past `version_floor` (the cycle's, see [`Dyups::record_read`]), where
    /// every deletion before counts as forgotten. In init_module (the
    /// master's, before its workers).
    pub fn take_first_load(&self, _init: &InitModule, version_floor: u64) -> bool {
        // SAFETY: in init_module, whose process alone reaches the new
        // cycle's registry then: the master before it forks the workers (or
        // the one process of `master_process off`, which serves no request
        // during the call).
        unsafe {
            let registry = &mut *self.registry;
            let first = registry.loaded == NOT_LOADED;
            if first {
                registry.loaded = LOADED;
                registry.next_version = registry.next_version.max(version_floor);
                registry.forgotten = registry.next_version;
            }
            first
        }
    }

    /// The file's restore stopped at an upstream it could not restore:
    /// from now on, changes are refused ([`Self::loaded_in_part`]), so that
    /// no write of the file drops the upstreams after it. In init_module,
    /// as [`Self::take_first_load`].
    pub fn mark_loaded_in_part(&self, _init: &InitModule) {
        // SAFETY: as in take_first_load.
        unsafe { (*self.registry).loaded = LOADED_IN_PART };
    }

    /// Whether the file was restored only in part into this registry.
    pub fn loaded_in_part(&self) -> bool {
        // SAFETY: written only in init_module, before the workers that
        // read it exist (a worker of a later cycle was forked after too).
        unsafe { (*self.registry).loaded == LOADED_IN_PART }
    }

    /// Total and free slab pages of the zone (the free count is a
    /// momentary reading: no lock is taken for a status line).
    pub fn pages(&self) -> (usize, usize) {
        // SAFETY: the slab pool's bounds are fixed; pfree is one word,
        // read volatile because other processes change it.
        unsafe {
            let pool = &*self.pool;
            let total = (pool.end as usize - pool.start as usize) / ngx::ffi::ngx_pagesize.max(1);
            (total, ptr::read_volatile(ptr::addr_of!(pool.pfree)))
        }
    }

    /// The registry's version, a momentary reading without the lock (one
    /// word, read volatile: other processes change it).
    pub fn version_now(&self) -> u64 {
        // SAFETY: the registry lives as long as the zone; an aligned word.
        unsafe { ptr::read_volatile(ptr::addr_of!((*self.registry).next_version)) }
    }

    /// The registry's change counter: one atomic load.
    pub fn generation(&self) -> u64 {
        // SAFETY: the registry lives as long as the zone.
        unsafe { (*self.registry).generation.load(SeqCst) }
    }

    pub fn reclaim_state(&self) -> *mut GracePeriod {
        // SAFETY: as above.
        unsafe { ptr::addr_of_mut!((*self.registry).reclaim) }
    }

    fn registry_lock(&self) -> &RegistryLock {
        // SAFETY: the registry lives as long as the zone; the lock is only
        // ever used through shared references (atomics).
        unsafe { &*ptr::addr_of!((*self.registry).lock) }
    }

    /// A hold of the registry's lock, after repairing the registry if the
    /// last holder died inside a change.
    fn repaired<'a>(&'a self, held: Held<'a>) -> Held<'a> {
        if held.needs_repair() {
            // SAFETY: the registry is changed only under its lock, held here.
            unsafe { repair(&mut *self.registry, self.health()) };
        }
        held
    }

    /// Takes the registry for a change, then the slab mutex; with
    /// `try_only`, fails with 409 instead of waiting when another worker
    /// holds the registry.
    fn lock(&self, try_only: bool) -> Result<(Held<'_>, SlabLocked), ApiError> {
        // SAFETY: the state lives as long as the zone; its slots are atomics.
        unsafe { (*self.registry).reclaim.forget_dead() }; // Reads /proc: before the locks.
        let lock = self.registry_lock();
        let held = if try_only { lock.try_hold() } else { Some(lock.hold()) };
        let registry =
            self.repaired(held.ok_or_else(|| {
                ApiError::conflict("locked", "another worker is using the upstream registry; try again")
            })?);
        // Checked again under the lock, which the master holds while
        // it moves the health records to a new zone
        // ([`Dyups::while_write_locked`]): a change either went in
        // before (its records move) or is refused.
        if self.health().is_some_and(HealthZone::is_superseded) {
            drop(registry);
            return Err(ApiError::reloading());
        }
        registry.changing();
        // SAFETY: the zone's slab pool, mapped here; order: registry, then slab.
        Ok((registry, unsafe { SlabLocked::new(self.pool) }))
    }

    /// Runs `f` holding the registry's lock (the master, moving the
    /// health records in init_module: no change of a worker can be half
    /// done meanwhile), with the registry as the lock keeps it. A lock that
    /// a running process keeps past the init_module's budget (`patience`:
    /// one stuck) is given up on: `f` runs without it, and gets None.
    pub fn while_write_locked<T>(
        &self,
        patience: &mut InitPatience,
        f: impl FnOnce(Option<WriteHeld<'_, 'z>>) -> T,
    ) -> T {
        let lock = self.registry_lock();
        let started = Instant::now();
        let held = match INIT_LOCK_BUDGET.saturating_sub(patience.waited) {
            Duration::ZERO => lock.try_hold(),
            left => lock.hold_within(left),
        };
        patience.waited += started.elapsed();
        if let Some(held) = held {
            let held = self.repaired(held);
            // `f` may change records (WriteHeld::ensure_ids): a takeover
            // after this process died meanwhile repairs the registry.
            held.changing();
            return f(Some(WriteHeld { dyups: self }));
        }
        if !patience.gave_up {
            patience.gave_up = true;
            crate::nginx::log::log(
                ngx::ffi::NGX_LOG_WARN,
                &format!(
                    "dynamic upstream: the upstream registry stayed locked for {} s (a stuck process?); this reload \
                     goes on without it: it frees and claims no run-time upstream's health record, gives their \
                     servers no statistics ID and checks none of their hash keys",
                    INIT_LOCK_BUDGET.as_secs()
                ),
            );
        }
        f(None)
    }

    /// Runs `f` holding the registry's lock: no change can be made
    /// meanwhile (reads inside take it again, which the lock allows the
    /// process that holds it).
    pub fn while_read_locked<T>(&self, f: impl FnOnce() -> T) -> T {
        let _locked = self.read_lock();
        f()
    }

    /// Takes the registry for reading.
    fn read_lock(&self) -> Held<'_> {
        self.repaired(self.registry_lock().hold())
    }

    /// Creates or replaces the upstream `name` with `spec`. Builds the new
    /// peer list first: if the zone has no room, nothing changes. Returns
    /// how many servers its record had before (0 if deleted; `None` if it
    /// had no record), for the change log.
    pub fn replace(
        &self,
        name: &str,
        spec: &UpstreamSpec,
        try_only: bool,
        continues: Continues,
    ) -> Result<Option<usize>, ApiError> {
        self.replace_if(name, spec, try_only, None, continues).map(|replaced| replaced.before)
    }

    /// [`Dyups::replace`], only if `pre` holds when the lock is taken: else
    /// 412 (conditional changes: the NGINX Plus API's, dyups' `If-Match`).
    /// Returns the record's new version too. A health zone with no
    /// room for the new servers is tried once more if that freed the slots
    /// of claimers killed inside a change ([`HealthZone::free_dead_claims`]:
    /// /proc, read outside the locks).
    pub fn replace_if(
        &self,
        name: &str,
        spec: &UpstreamSpec,
        try_only: bool,
        pre: Option<Precondition>,
        continues: Continues,
    ) -> Result<Replaced, ApiError> {
        match self.replace_if_once(name, spec, try_only, pre, continues) {
            Err(full)
                if full.code == HEALTH_FULL && self.health().is_some_and(|health| health.free_dead_claims() > 0) =>
            {
                self.replace_if_once(name, spec, try_only, pre, continues)
            }
            done => done,
        }
    }

    /// [`Dyups::replace_if`], tried once.
    fn replace_if_once(
        &self,
        name: &str,
        spec: &UpstreamSpec,
        try_only: bool,
        pre: Option<Precondition>,
        continues: Continues,
    ) -> Result<Replaced, ApiError> {
        let key = match &spec.balancer {
            Balancer::Hash { key, .. } => key.as_str(),
            _ => "",
        };
        let check_text = spec.check.as_ref().map(CheckConf::config_text).unwrap_or_default();
        let mut health = match &spec.check {
            Some(check) => Some(self.runtime_slots(name, spec, check)?),
            None => None,
        };
        let mut inherit_room = InheritRoom::for_servers(spec.servers.len());
        let (registry_lock, slab) = self.lock(try_only)?;
        // SAFETY: the registry is changed only under the lock held here.
        unsafe {
            let registry = &mut *self.registry;
            if pre.is_some_and(|pre| !pre.holds(registry, name)) {
                drop((slab, registry_lock)); // the error allocates: not under the locks
                return Err(revision_mismatch(name));
            }
            registry.reclaim.reap(slab.pool());
            let no_room = || ApiError::dyups_full(ZONE_NAME, self.zone_size());
            let Some(list) = build_list(slab.pool(), name, &spec.servers, list_block_size(&check_text)) else {
                drop((slab, registry_lock)); // the error allocates: not under the locks
                return Err(no_room());
            };
            set_check_text(list, &check_text);
            attach_config_word(list);
            if let Some(health) = health.as_mut() {
                if let Err(slots) = health.prepare() {
                    free_list(slab.pool(), list);
                    drop((slab, registry_lock)); // the error allocates: not under the locks
                    return Err(health_full(slots));
                }
                set_health(list, spec, health.down());
                #[cfg(debug_assertions)]
                stall_for_tests("replace_prepared", name);
            }
            let existed = find_record(registry, name);
            let record = match existed {
                Some(record) => record,
                None => {
                    let record = new_record(slab.pool(), name);
                    if record.is_null() {
                        free_list(slab.pool(), list);
                        // Its claimed slots are freed under the lock: a
                        // repair may free pending slots once it is released.
                        drop(health);
                        drop((slab, registry_lock)); // the error allocates: not under the locks
                        return Err(no_room());
                    }
                    record
                }
            };
            let r = &mut *record;
            let old = r.peers;
            // The next free ID: the old list's, or past what `continues`
            // gave out (a configuration upstream's zone), whichever is later.
            let old_next = if old.is_null() { 0 } else { registry_counters(old).next_id() };
            let numbering = UpstreamCounters::starting_at(old_next.max(continues.next_id));
            inherit(list, registry_counters(list), old, Some(&numbering), &mut inherit_room);
            let before = existed.map(|_| if old.is_null() { 0 } else { server_count(old) });
            // The stores below are ordered so that a holder killed between
            // any two leaves a registry that repair() makes whole, or at
            // worst a leak (see RegistryLock): the new servers' health slots
            // checked first (a list is never published with slots nobody
            // checks), the balancer (whole, see `balancers`), then the new
            // list, and only then the old one retired (a record never points
            // at a list that may be freed) and the slots of servers it alone
            // had freed (it keeps its checks while it is served); a new
            // record is linked once complete.
            if health.as_mut().is_some_and(|health| !health.activate()) {
                // A reload moved the health records to a new zone while
                // this process held the lock past its wait: the change is
                // refused whole, as one that took the lock after it.
                free_list(slab.pool(), list);
                if existed.is_none() {
                    ngx_slab_free_locked(slab.pool(), record.cast());
                }
                // Its claimed slots are freed under the lock, as above.
                drop(health);
                drop((slab, registry_lock)); // the error allocates: not under the locks
                return Err(ApiError::reloading());
            }
            #[cfg(debug_assertions)]
            stall_for_tests("replace_activated", name);
            let next = usize::from(r.current_balancer & 1 ^ 1);
            let slot = &mut r.balancers[next];
            slot.balancer = spec.balancer.code();
            slot.key_len = key.len().min(MAX_KEY);
            slot.key[..slot.key_len].copy_from_slice(&key.as_bytes()[..slot.key_len]);
            #[cfg(debug_assertions)]
            stall_for_tests("replace_balancer", name);
            compiler_fence(SeqCst);
            r.current_balancer = next as u8;
            compiler_fence(SeqCst);
            r.peers = list;
            compiler_fence(SeqCst);
            r.deleted = false;
            compiler_fence(SeqCst);
            match health {
                Some(health) => health.free_others(),
                None => self.forget_runtime(name),
            }
            if !old.is_null() {
                #[cfg(debug_assertions)]
                stall_for_tests("replace_retire", name);
                registry.reclaim.retire_list(old);
            }
            if existed.is_none() {
                compiler_fence(SeqCst);
                append_record(registry, record);
            }
            #[cfg(debug_assertions)]
            stall_for_tests("replace_version", name);
            registry.next_version = registry.next_version.max(continues.version_floor);
            mark_changed(registry, record);
            registry.generation.fetch_add(1, SeqCst);
            registry.reclaim.reap(slab.pool());
            Ok(Replaced { before, version: r.version })
        }
    }

    /// Deletes `name`. A run-time upstream disappears; an upstream of the
    /// configuration (`in_config`) stays as a tombstone so that every worker
    /// hides it, with a version past `continues`'. Returns false if there
    /// was nothing to delete; 412 if `pre` does not hold (checked first: a
    /// stale revision of an upstream deleted since is refused too).
    pub fn delete(
        &self,
        name: &str,
        in_config: bool,
        try_only: bool,
        pre: Option<Precondition>,
        continues: Continues,
    ) -> Result<bool, ApiError> {
        let (registry_lock, slab) = self.lock(try_only)?;
        // SAFETY: the registry is changed only under the lock held here.
        unsafe {
            let registry = &mut *self.registry;
            if pre.is_some_and(|pre| !pre.holds(registry, name)) {
                drop((slab, registry_lock)); // the error allocates: not under the locks
                return Err(revision_mismatch(name));
            }
            registry.reclaim.reap(slab.pool());
            let record = find_record(registry, name);
            // Nothing to delete: a conditional delete still moves the
            // name's revision, so that a change read before it finds
            // another (a late POST does not make again what the client
            // deleted, found absent: review 57 F1). The generation moves as
            // for a deletion, so that busy workers sync at once (32 of these
            // between two syncs of a worker cost it a copy of the whole
            // registry, as 32 deletions do: review 58).
            match record {
                Some(record) if (*record).deleted => {
                    if pre.is_some() {
                        mark_changed(registry, record);
                        registry.generation.fetch_add(1, SeqCst);
                    }
                    return Ok(false);
                }
                None if !in_config => {
                    if pre.is_some() {
                        note_deletion(registry, Removal::of(name));
                        registry.generation.fetch_add(1, SeqCst);
                    }
                    return Ok(false);
                }
                _ => {}
            }
            let record = match record {
                Some(record) => record,
                None => {
                    let record = new_record(slab.pool(), name);
                    if record.is_null() {
                        drop((slab, registry_lock)); // the error allocates: not under the locks
                        return Err(ApiError::dyups_full(ZONE_NAME, self.zone_size()));
                    }
                    // A tombstone: linked once complete.
                    (*record).deleted = true;
                    compiler_fence(SeqCst);
                    append_record(registry, record);
                    record
                }
            };
            // As in replace_if: the list is unpublished before it is retired.
            let old = (*record).peers;
            if !old.is_null() {
                (*record).peers = ptr::null_mut();
                compiler_fence(SeqCst);
                #[cfg(debug_assertions)]
                stall_for_tests("delete_retire", name);
                registry.reclaim.retire_list(old);
            }
            self.forget_runtime(name);
            registry.next_version = registry.next_version.max(continues.version_floor);
            if in_config {
                (*record).deleted = true;
                mark_changed(registry, record);
            } else {
                unlink_record(registry, record);
                #[cfg(debug_assertions)]
                stall_for_tests("delete_unlinked", name);
                note_removal(registry, record);
                ngx_slab_free_locked(slab.pool(), record.cast());
            }
            registry.generation.fetch_add(1, SeqCst);
            registry.reclaim.reap(slab.pool());
        }
        Ok(true)
    }

    /// Whether `section` holds this registry's grace period (a section of
    /// another zone would let its lists be freed while read: the reads
    /// below find nothing then).
    fn read_in(&self, section: &ReadSection) -> bool {
        ptr::eq(section.state, self.reclaim_state())
    }

    /// Copies the records out; returns them with the generation they show
    /// (none outside a section of this registry).
    pub fn records<'s>(&self, section: &'s ReadSection) -> (u64, Vec<RecordView<'s>>) {
        if !self.read_in(section) {
            return (0, Vec::new());
        }
        let (raw, generation) = self.copy_out(self.count() + 4, |registry, raw| {
            // SAFETY: copy_out holds the registry lock.
            let all = unsafe { copy_chain(registry.records, |r| r.next, |_| true, raw) };
            all.then(|| registry.generation.load(SeqCst))
        });
        (generation, raw.iter().map(Record::view).collect())
    }

    /// Each record's name and version, in creation order: what a writer of
    /// the dyups file needs to tell the records that changed since it last
    /// rendered them (a fraction of [`Self::records`]' copy). Copied under
    /// the lock into room reserved before it; none outside a section of
    /// this registry.
    pub fn versions(&self, section: &ReadSection) -> Vec<RecordVersion> {
        if !self.read_in(section) {
            return Vec::new();
        }
        let (out, ()) = self.copy_out(self.count() + 4, |registry, out| {
            let mut record = registry.records;
            // SAFETY: copy_out holds the registry lock; every linked record
            // is allocated; each copy is a fixed-size value pushed within
            // the capacity.
            unsafe {
                while !record.is_null() && out.len() < out.capacity() {
                    let r = &*record;
                    out.push(RecordVersion { version: r.version, name_len: r.name_len, name: r.name });
                    record = r.next;
                }
            }
            record.is_null().then_some(())
        });
        out
    }

    /// What changed after version `seen` (None: never synced): the changed
    /// records and the deleted names, or the whole registry when `seen` is
    /// older than the deletions the ring remembers.
    /// Nothing outside a section of this registry.
    pub fn changes_since<'s>(&self, section: &'s ReadSection, seen: Option<u64>) -> Changes<'s> {
        if !self.read_in(section) {
            let version = seen.unwrap_or(0);
            return Changes { generation: 0, version, complete: false, records: Vec::new(), removed: Vec::new() };
        }
        let mut removals: Vec<Removal> = Vec::with_capacity(REMOVALS);
        let (raw, (generation, version, complete)) = self.copy_out(16, |registry, raw| {
            let complete = seen.map_or(true, |seen| seen < registry.forgotten);
            let seen = if complete { 0 } else { seen.unwrap_or(0) };
            // SAFETY: copy_out holds the registry lock.
            if !unsafe { copy_chain(registry.changes, |r| r.older, |r| r.version > seen, raw) } {
                return None;
            }
            removals.clear();
            if !complete {
                // At most REMOVALS, the capacity: no allocation.
                for removal in registry.removals.iter().filter(|r| r.version > seen) {
                    if removals.len() < removals.capacity() {
                        removals.push(*removal);
                    }
                }
            }
            Some((registry.generation.load(SeqCst), registry.next_version, complete))
        });
        let removed = removals.iter().map(|r| (r.version, String::from_utf8_lossy(r.name()).into_owned())).collect();
        let records = raw.iter().map(Record::view).collect();
        Changes { generation, version, complete, records, removed }
    }

    /// Runs `copy` under the registry's read lock with a vector sized
    /// beforehand, so that nothing is allocated while the lock is held.
    /// `copy` answers None when the records did not fit; it runs again with
    /// more room (the registry can grow between sizing and locking).
    fn copy_out<E, T>(
        &self,
        mut capacity: usize,
        mut copy: impl FnMut(&Registry, &mut Vec<E>) -> Option<T>,
    ) -> (Vec<E>, T) {
        loop {
            let mut raw: Vec<E> = Vec::with_capacity(capacity);
            let reading = self.read_lock();
            // SAFETY: the registry lives as long as the zone and is read
            // under its lock.
            let done = copy(unsafe { &*self.registry }, &mut raw);
            drop(reading);
            if let Some(result) = done {
                return (raw, result);
            }
            capacity = (capacity * 2).max(self.count() + 4);
        }
    }

    /// The health slots a replace of run-time upstream `name` with `spec`
    /// (checked by `check`) prepares, allocated before any lock is taken.
    fn runtime_slots(&self, name: &str, spec: &UpstreamSpec, check: &CheckConf) -> Result<RuntimeSlots<'_>, ApiError> {
        let health = self.health().ok_or_else(|| {
            ApiError::bad_request(
                "invalid_body",
                "add server failed: \"check\" needs the health zone, which this nginx has not declared (add \
                 \"check_shm_size\" or a \"dyups_interface\" location to the configuration)",
            )
        })?;
        let names = spec.servers.iter().map(|s| PeerAddress::new(&s.address).name().to_vec()).collect();
        Ok(RuntimeSlots::new(health, name, names, check))
    }

    /// Frees the health slots of run-time upstream `name`'s servers (see
    /// [`forget_runtime`]).
    fn forget_runtime(&self, name: &str) {
        if let Some(health) = self.health() {
            forget_runtime(health, name);
        }
    }

    /// Sets or clears the health bits of the peers `health_of` names in the
    /// current list of run-time upstream `upstream` (the health checks'
    /// prober applying the records' health: [`health::set_peers_health`]),
    /// read inside a grace-period section so that the list is not freed
    /// meanwhile. False if the list's locks stayed held.
    #[must_use = "false: nothing was written, try again"]
    pub fn set_runtime_health(&self, upstream: &str, health_of: impl FnMut(&[u8]) -> Option<bool>) -> bool {
        let section = ReadSection::new(self);
        // A list without checks takes no verdict (a replace that dropped
        // them publishes it before it frees the old slots).
        match self.record(&section, upstream).filter(|r| r.has_list() && r.check().is_some()) {
            // SAFETY: a registry list read in this section is not freed before
            // it ends; its peers are written only under its write lock.
            Some(record) => unsafe { health::set_peers_health(record.list(), upstream, health_of) },
            None => true,
        }
    }

    /// The record of `name` (any case), copied out (none outside a
    /// section of this registry).
    pub fn record<'s>(&self, section: &'s ReadSection, name: &str) -> Option<RecordView<'s>> {
        self.record_read(section, name, 0).0
    }

    /// [`Dyups::record`], with the version a change of `name` that is
    /// conditional on this read must find ([`Precondition::Unchanged`]):
    /// its record's, or, without one, the registry's then, first moved to
    /// `floor` (the version of the reading process's cycle's load time), so
    /// that every change after the read, in any process, has a greater
    /// version (none outside a section of this registry).
    pub fn record_read<'s>(
        &self,
        section: &'s ReadSection,
        name: &str,
        floor: u64,
    ) -> (Option<RecordView<'s>>, Option<u64>) {
        if !self.read_in(section) {
            return (None, None);
        }
        let reading = self.read_lock();
        // SAFETY: the registry is read under its lock, which is exclusive
        // (one store moves its version: a reader killed after it leaves it
        // whole); the copy is a fixed size value (no heap allocation under
        // the lock).
        let (raw, version) = unsafe {
            let registry = &mut *self.registry;
            let raw = find_record(registry, name).map(|record| *record);
            if raw.is_none() && registry.next_version < floor {
                registry.next_version = floor;
            }
            (raw, raw.map_or(registry.next_version, |raw| raw.version))
        };
        drop(reading);
        (raw.map(|raw| raw.view()), Some(version))
    }

    fn count(&self) -> usize {
        self.count_where(|_| true)
    }

    /// Upstreams the registry shows (records of deleted configuration
    /// upstreams excluded).
    pub fn live_count(&self) -> usize {
        self.count_where(|r| !r.deleted)
    }

    fn count_where(&self, wanted: impl Fn(&Record) -> bool) -> usize {
        let _reading = self.read_lock();
        let mut n = 0;
        // SAFETY: read under the lock.
        unsafe {
            let mut record = (*self.registry).records;
            while !record.is_null() {
                n += usize::from(wanted(&*record));
                record = (*record).next;
            }
        }
        n
    }
}

/// Registration in the registry's grace period for as long as it lives:
/// every list pointer read from the registry after it was created stays
/// allocated until it is dropped (see [`crate::dyups::grace`]).
pub struct ReadSection {
    state: *mut GracePeriod,
    ticket: Ticket,
}

impl ReadSection {
    pub fn new(dyups: &Dyups) -> Self {
        let state = dyups.reclaim_state();
        // SAFETY: the state lives in the zone for the life of the process.
        let ticket = unsafe { (*state).enter() };
        Self { state, ticket }
    }
}

impl Drop for ReadSection {
    fn drop(&mut self) {
        // SAFETY: as in new().
        unsafe { (*self.state).leave(self.ticket) };
    }
}

impl Record {
    /// Its upstream's name, as given when it was made.
    fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }

    /// The balancer in force.
    fn balancer(&self) -> Balancer {
        let slot = &self.balancers[usize::from(self.current_balancer & 1)];
        // Only Balancer::code writes the byte.
        Balancer::from_code(slot.balancer, &String::from_utf8_lossy(&slot.key[..slot.key_len.min(MAX_KEY)]))
            .unwrap_or(Balancer::RoundRobin)
    }

    fn view<'s>(&self) -> RecordView<'s> {
        RecordView {
            name: String::from_utf8_lossy(self.name()).into_owned(),
            version: self.version,
            deleted: self.deleted,
            balancer: self.balancer(),
            list: self.peers,
            _section: PhantomData,
        }
    }
}

/// Makes the registry consistent again after a holder of its lock died
/// inside a change ([`RegistryLock`]). The creation chain's `next` links
/// are consistent after every single store (a record is linked, or
/// unlinked, by one); what several stores update is rebuilt from them:
/// the `previous` links, `last`, the index and the change chain,
/// every record with a new version, and every worker is made to copy the
/// whole registry (`forgotten`, as for one that missed more deletions than
/// the ring holds), so whatever the dead holder had written reaches all of
/// them alike: its change as far as it got (the order of its stores, in
/// `replace_if` and `delete`, makes every prefix a valid registry). Health
/// slots it had claimed and not activated are freed. What it had allocated
/// and not linked stays allocated. Allocates nothing.
///
/// # Safety
/// The caller holds the registry lock.
unsafe fn repair(registry: &mut Registry, health: Option<HealthZone>) {
    registry.changes = ptr::null_mut();
    let mut previous = ptr::null_mut();
    let mut record = registry.records;
    // SAFETY: per the contract; linked records are allocated, the index
    // has index_len chains.
    unsafe {
        ptr::write_bytes(registry.index, 0, registry.index_len);
        while !record.is_null() {
            let r = &mut *record;
            r.previous = previous;
            previous = record;
            let bucket = bucket(registry, r.name());
            r.same_bucket = *bucket;
            *bucket = record;
            registry.next_version += 1;
            r.version = registry.next_version;
            r.newer = ptr::null_mut();
            r.older = registry.changes;
            if !registry.changes.is_null() {
                (*registry.changes).newer = record;
            }
            registry.changes = record;
            record = r.next;
        }
    }
    registry.last = previous;
    registry.forgotten = registry.next_version;
    registry.generation.fetch_add(1, SeqCst);
    // Run-time upstreams' health slots are claimed and activated only under
    // this lock: any still pending is the dead change's.
    if let Some(health) = health {
        free_pending_runtime(health);
    }
}

/// How many chains `Registry::index` has in a zone of `zone_size` bytes:
/// one per 4 KiB (a record and its list take over 1 KiB, so a chain holds
/// a few records at most), a power of two.
fn index_len(zone_size: usize) -> usize {
    (zone_size / 4096).next_power_of_two().max(16)
}

/// The chain of `Registry::index` (of `index_len` chains) that holds the
/// record of `name`, in any case (FNV-1a of its lower case).
fn bucket_of(name: &[u8], index_len: usize) -> usize {
    let hash = name
        .iter()
        .fold(FNV_OFFSET, |hash, byte| (hash ^ u64::from(byte.to_ascii_lowercase())).wrapping_mul(FNV_PRIME));
    (hash as usize) & (index_len - 1)
}

/// Where the chain of `name`'s bucket starts.
///
/// # Safety
/// The registry's index is allocated (init_zone).
unsafe fn bucket(registry: &Registry, name: &[u8]) -> *mut *mut Record {
    // SAFETY: per the contract; bucket_of is below index_len.
    unsafe { registry.index.add(bucket_of(name, registry.index_len)) }
}

/// # Safety
/// The caller holds the registry lock.
unsafe fn find_record(registry: &Registry, name: impl AsRef<[u8]>) -> Option<*mut Record> {
    let name = name.as_ref();
    // SAFETY: per the contract; linked records are allocated.
    unsafe {
        let mut record = *bucket(registry, name);
        while !record.is_null() {
            let r = &*record;
            if r.name().eq_ignore_ascii_case(name) {
                return Some(record);
            }
            record = r.same_bucket;
        }
    }
    None
}

/// # Safety
/// The caller holds the slab mutex of `pool`.
unsafe fn new_record(pool: *mut ngx_slab_pool_t, name: &str) -> *mut Record {
    // SAFETY: per the contract; zeroed memory is a valid empty Record.
    unsafe {
        let record = quietly(pool, || ngx::ffi::ngx_slab_calloc_locked(pool, size_of::<Record>())).cast::<Record>();
        if !record.is_null() {
            let r = &mut *record;
            let len = name.len().min(MAX_NAME);
            r.name[..len].copy_from_slice(&name.as_bytes()[..len]);
            r.name_len = len;
        }
        record
    }
}

/// Appends at the tail, so listings keep creation order, and indexes it.
/// The store that links it in creation order comes first: a holder killed
/// after it leaves `last`, `previous` and the index for [`repair`] to
/// redo, one killed before leaves it unlinked (a leak).
///
/// # Safety
/// The caller holds the registry lock; `record` is not linked.
unsafe fn append_record(registry: &mut Registry, record: *mut Record) {
    // SAFETY: per the contract; linked records are allocated.
    unsafe {
        let r = &mut *record;
        r.next = ptr::null_mut();
        r.previous = registry.last;
        let link = if registry.last.is_null() { &mut registry.records } else { &mut (*registry.last).next };
        compiler_fence(SeqCst);
        *link = record;
        compiler_fence(SeqCst);
        #[cfg(debug_assertions)]
        stall_for_tests("append_chained", &String::from_utf8_lossy(r.name()));
        registry.last = record;
        let bucket = bucket(registry, r.name());
        r.same_bucket = *bucket;
        *bucket = record;
    }
}

/// Takes `record` out of the creation order and the index. The store that
/// unlinks it in creation order comes first (see [`append_record`]).
///
/// # Safety
/// The caller holds the registry lock; `record` is linked.
unsafe fn unlink_record(registry: &mut Registry, record: *mut Record) {
    // SAFETY: per the contract; linked records are allocated.
    unsafe {
        let r = &mut *record;
        let link = if r.previous.is_null() { &mut registry.records } else { &mut (*r.previous).next };
        *link = r.next;
        compiler_fence(SeqCst);
        #[cfg(debug_assertions)]
        stall_for_tests("delete_unchained", &String::from_utf8_lossy(r.name()));
        let back = if r.next.is_null() { &mut registry.last } else { &mut (*r.next).previous };
        *back = r.previous;
        let mut link = bucket(registry, r.name());
        while !(*link).is_null() {
            if *link == record {
                *link = r.same_bucket;
                break;
            }
            link = &mut (**link).same_bucket;
        }
    }
}

/// Copies records from `record` on along `link` while `wanted` holds,
/// without allocating; false if `out` filled up first.
///
/// # Safety
/// The caller holds the registry lock.
unsafe fn copy_chain(
    mut record: *mut Record,
    link: fn(&Record) -> *mut Record,
    wanted: impl Fn(&Record) -> bool,
    out: &mut Vec<Record>,
) -> bool {
    // SAFETY: per the contract, every linked record is allocated.
    unsafe {
        while !record.is_null() && wanted(&*record) {
            if out.len() == out.capacity() {
                return false;
            }
            out.push(*record);
            record = link(&*record);
        }
    }
    true
}

/// Gives `record` the next version and moves it to the head of the change
/// chain.
///
/// # Safety
/// The caller holds the registry lock; `record` is linked.
unsafe fn mark_changed(registry: &mut Registry, record: *mut Record) {
    // SAFETY: per the contract.
    unsafe {
        unchain(registry, record);
        registry.next_version += 1;
        (*record).version = registry.next_version;
        (*record).older = registry.changes;
        if !registry.changes.is_null() {
            (*registry.changes).newer = record;
        }
        registry.changes = record;
    }
}

/// Takes `record` out of the change chain (if it is in it).
///
/// # Safety
/// The caller holds the registry lock.
unsafe fn unchain(registry: &mut Registry, record: *mut Record) {
    // SAFETY: per the contract.
    unsafe {
        let r = &mut *record;
        if !r.newer.is_null() {
            (*r.newer).older = r.older;
        } else if registry.changes == record {
            registry.changes = r.older;
        }
        if !r.older.is_null() {
            (*r.older).newer = r.newer;
        }
        r.newer = ptr::null_mut();
        r.older = ptr::null_mut();
    }
}

/// Records the deletion of a run-time upstream in the ring (its record is
/// about to be freed) under the next version.
///
/// # Safety
/// The caller holds the registry lock; `record` is unlinked.
unsafe fn note_removal(registry: &mut Registry, record: *mut Record) {
    // SAFETY: per the contract.
    unsafe { unchain(registry, record) };
    // SAFETY: per the contract, the record is still allocated.
    let r = unsafe { &*record };
    note_deletion(registry, Removal { version: 0, name_len: r.name_len, name: r.name });
}

/// Notes the deletion of `removal`'s name in the ring, under the next
/// version. The caller holds the registry lock.
fn note_deletion(registry: &mut Registry, removal: Removal) {
    registry.next_version += 1;
    let slot = (registry.removals_written % REMOVALS as u64) as usize;
    if registry.removals_written >= REMOVALS as u64 {
        registry.forgotten = registry.forgotten.max(registry.removals[slot].version);
    }
    registry.removals[slot] = Removal { version: registry.next_version, ..removal };
    registry.removals_written += 1;
}

/// The code of [`health_full`]'s error.
const HEALTH_FULL: &str = "check_zone_full";

fn health_full(slots: usize) -> ApiError {
    ApiError::new(
        507,
        HEALTH_FULL,
        format!(
            "the health zone holds {slots} checked peers and has no room for these servers: raise \"check_shm_size\" \
             and reload"
        ),
    )
}

/// Sets the health bit of the peers of a new list that start down: `down`
/// holds one flag per server of `spec`, whose primaries and backups are in
/// the list and its backup list in the same order. Allocates nothing.
///
/// # Safety
/// `list` was built from `spec` and no other process can reach it yet.
unsafe fn set_health(list: *mut ngx_http_upstream_rr_peers_t, spec: &UpstreamSpec, down: &[bool]) {
    // SAFETY: per the contract.
    unsafe {
        let mut next = [(*list).peer, if (*list).next.is_null() { ptr::null_mut() } else { (*(*list).next).peer }];
        for (server, &down) in spec.servers.iter().zip(down) {
            let at = usize::from(server.backup);
            let peer = next[at];
            if peer.is_null() {
                return;
            }
            if down {
                (*peer).down |= DOWN_HEALTH;
            }
            next[at] = (*peer).next;
        }
        recount(list);
        if !(*list).next.is_null() {
            recount((*list).next);
        }
    }
}

//! Active health checks' shared records: one [`Slot`] per checked peer in
//! the module's health zone (`check_shm_size`), keyed by (upstream name,
//! peer name). A slot holds the probe lease that lets exactly one worker
//! probe the peer at a time (`core::health::probe::Lease`), the rise/fall
//! counters and the last result; [`crate::health::prober`] runs the probes.
//!
//! A peer's health reaches the balancers through its `down` word
//! ([`DOWN_HEALTH`], next to the administrator's [`DOWN_ADMIN`] bit), set
//! under the lists' write locks: the request path never looks at a slot.
//!
//! The table is one array in the zone, allocated once; slots are reused,
//! never freed, so a probe in flight always points at slot memory. Freeing
//! a slot bumps its `gen` and clears its lease: the probe's release fails
//! and its result is dropped. Slots are claimed and freed under the zone's
//! slab mutex (taken with no peers lock held); the per-tick walk of every
//! worker reads them with atomic loads only. Every walk stops at the
//! table's high-water mark (`Table::high`). nginx reuses the zone across
//! reloads when its name and size are unchanged, so health survives them
//! for the peers that still exist ([`begin_cycle`]).

use core::cell::{OnceCell, UnsafeCell};
use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use dynamic_upstream_core::health::check_conf::CheckConf;
use dynamic_upstream_core::health::probe::{Counters, Failure, Lease};
use dynamic_upstream_core::health::zone_size::{self, SlabLayout};
use dynamic_upstream_core::health::PeerHealth;
use dynamic_upstream_core::{ApiError, PeerView};
use ngx::ffi::{
    ngx_current_msec, ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_int_t, ngx_pagesize,
    ngx_shm_zone_t, ngx_slab_calloc_locked, ngx_slab_page_t, ngx_slab_pool_t, NGX_ERROR, NGX_LOG_EMERG, NGX_LOG_WARN,
    NGX_OK,
};

use crate::nginx::conf::{HealthZoneKind, MainConf};
use crate::nginx::holder::Holder;
use crate::nginx::log::log;
use crate::nginx::module_hooks::ConfContext;
use crate::nginx::module_hooks::InitModule;
use crate::nginx::peer_list::{list_peers, peers_of, quietly, recount, DOWN_HEALTH};
use crate::nginx::peer_lock::{ListsWriteLocked, SlabLocked};
use crate::nginx::process::in_running_process;
use crate::nginx::shm_zone;
use crate::nginx::sockaddr::SOCKADDR_STRLEN;
use crate::nginx::upstreams::Upstream;
use crate::nginx::{fingerprint, layout, FNV_OFFSET};

/// The zone's name; its version names the layout of its [`Table`] and
/// [`Slot`]s (a build with another layout must not read a zone nginx hands
/// over on reload: with another name, it gets a zone of its own). The
/// build fails when the layout no longer has [`ZONE_LAYOUT`]'s
/// fingerprint: bump the version here and record the new fingerprint there
/// (v4: the table's header keeps its high-water mark, `high`; v5: a
/// `PENDING` slot names its claimer, `claimer`).
pub const ZONE_NAME: &str = "dynamic_upstream_check_v5";

/// The fingerprint of the layout [`ZONE_NAME`]'s version names (64-bit
/// targets).
const ZONE_LAYOUT: u64 = 0xbac1_4965_c25c_29e0;

/// Everything the zone keeps, as sizes, alignments and field offsets.
const LAYOUTS: [&[usize]; 2] = [
    &layout!(Table; count, used, cycle, high),
    &layout!(Slot; state, gen, lease, claimer, down, rises, falls, transitions, last_error, runtime, checks, fails, unhealthy,
        last_check, upstream_len, name_len, upstream, name),
];

#[cfg(target_pointer_width = "64")]
const _: () = assert!(
    fingerprint(FNV_OFFSET, &LAYOUTS) == ZONE_LAYOUT,
    "the health zone's layout changed: give ZONE_NAME the next version and record the new fingerprint in ZONE_LAYOUT"
);

/// Default and smallest `check_shm_size` (the C module's default; nginx's
/// smallest shared zone is 8 pages).
pub const DEFAULT_SHM_SIZE: usize = 1024 * 1024;
pub const MIN_SHM_SIZE: usize = 32 * 1024;

/// Longest upstream name a checked upstream may have.
pub const UPSTREAM_NAME_MAX: usize = 255;

const FREE: u32 = 0;
/// Claimed for a peer an API is adding: not probed, not applied, until the
/// peer is linked ([`Pending::activate`]). The slot names its claimer
/// (`Slot::claimer`): the slots of a claimer killed before it activated
/// or freed them are freed by [`HealthZone::free_dead_claims`].
const PENDING: u32 = 1;
const LIVE: u32 = 2;

/// A live slot's key and kind, copied without the zone's mutex
/// ([`Slot::key_bytes`]).
struct SlotKey {
    upstream: Vec<u8>,
    name: Vec<u8>,
    /// A run-time upstream's server.
    runtime: bool,
}

/// A run-time upstream's server's record, as [`HealthZone::runtime_records`]
/// read it: its slot and generation, and whether the server was down.
pub struct RuntimeRecord {
    pub index: usize,
    pub gen: u32,
    pub down: bool,
}

/// One checked peer's record.
#[repr(C)]
pub struct Slot {
    state: AtomicU32,
    /// Bumped when the slot is freed: a reader that copied its key checks
    /// it did not change meanwhile.
    gen: AtomicU32,
    lease: AtomicU64,
    /// A `PENDING` slot's claimer ([`Holder::word`]); 0 in a slot claimed
    /// `LIVE`. Written with the key.
    claimer: AtomicU64,
    down: AtomicU32,
    rises: AtomicU32,
    falls: AtomicU32,
    /// Bumped after every change of `down`: workers apply `down` to their
    /// cycle's lists when it moved.
    transitions: AtomicU32,
    /// `Failure::code()` of the last check, 0 after a success.
    last_error: AtomicU32,
    /// 1: a server of a run-time (dyups) upstream; 0: of a configuration
    /// upstream. Written with the key.
    runtime: AtomicU32,
    /// Checks made, failed, and how often the peer went down (the NGINX
    /// Plus API's `health_checks`).
    checks: AtomicU32,
    fails: AtomicU32,
    unhealthy: AtomicU32,
    /// Unix time of the last finished check, 0 before the first.
    last_check: AtomicI64,
    /// The key, written only while the slot is FREE, under the zone's
    /// mutex.
    upstream_len: AtomicU32,
    name_len: AtomicU32,
    upstream: UnsafeCell<[u8; UPSTREAM_NAME_MAX]>,
    name: UnsafeCell<[u8; SOCKADDR_STRLEN]>,
}

/// The zone's table: its length and how many slots are not free, then
/// the slots.
#[repr(C)]
struct Table {
    count: usize,
    used: AtomicUsize,
    /// Bumped by the master for every configuration cycle it starts: the
    /// workers of older cycles no longer probe configuration upstreams'
    /// peers (their checks may have changed).
    cycle: AtomicU64,
    /// The high-water mark: one past the highest slot ever claimed in this
    /// table (every slot from it on is free and always was). Raised under
    /// the zone's mutex when a slot is claimed, never lowered (a worker's
    /// tick reads it without the mutex and forgets what it knew of a slot
    /// only when it sees it free); a new table (a reload that resizes the
    /// zone, [`HealthZone::carry_over`]) starts again from 0. Every walk
    /// of the slots ([`HealthZone::slots`]) stops at it: a zone sized for
    /// growth costs what it holds, not what it could.
    high: AtomicUsize,
}

/// The `cycle` of this process's configuration (set by the master in
/// init_module, inherited by its workers).
static MY_CYCLE: AtomicU64 = AtomicU64::new(0);

/// The number of this process's configuration (see [`Table::cycle`]).
pub fn configuration_number() -> u64 {
    MY_CYCLE.load(Acquire)
}

/// A table's `cycle` once a reload moved its records to a new zone
/// ([`HealthZone::carry_over`]).
const SUPERSEDED: u64 = u64::MAX;

/// Whether a reload moved this process's health records to a new zone (a
/// new `check_shm_size`): a worker of the previous configuration, whose
/// changes to run-time upstreams' records the new workers would not see.
pub fn superseded() -> bool {
    HealthZone::running().is_some_and(HealthZone::is_superseded)
}

/// The health zone of the running cycle (null without checks); set by
/// the master's init_module, which no later failure of the cycle can undo.
static mut ZONE: *mut ngx_shm_zone_t = ptr::null_mut();

/// Declares the health zone of the cycle being configured and keeps it in
/// `main`, its configuration; false if nginx refused it (it said why).
pub fn declare_zone(context: &mut ConfContext<'_>, main: &mut MainConf, size: usize) -> bool {
    // SAFETY: the health zone's name and init.
    let zone = unsafe { shm_zone::declare::<HealthZoneKind>(context, ZONE_NAME, size, Some(init_zone)) };
    zone.map(|zone| main.set_check_zone(zone)).is_some()
}

/// The checked peers of the configuration being read (every address of
/// its checked upstreams' `server` lines), for [`init_zone`].
static CONFIGURED_PEERS: AtomicUsize = AtomicUsize::new(0);

/// postconfiguration: the configuration's checked peers need `count`
/// records.
pub fn expect_configured_peers(count: usize) {
    CONFIGURED_PEERS.store(count, Relaxed);
}

/// Fails the cycle (an [`init_zone`] error, which nginx takes as a
/// configuration it cannot start, or reload to) when the zone's `count`
/// records cannot hold the configuration's checked peers, as the C module
/// does: nginx started with the others unchecked, taking requests whatever
/// their state, and said so in one `[error]` (hunt 37). `layout`: the
/// zone's as nginx laid it out, from which the size that holds them is
/// computed.
fn holds_configured_peers(count: usize, layout: SlabLayout) -> bool {
    let wanted = CONFIGURED_PEERS.load(Relaxed);
    if wanted <= count {
        return true;
    }
    // As configured: `40000`, not a truncated `39k` (review 54).
    let size = match layout.size {
        size if size % 1024 == 0 => format!("{}k", size / 1024),
        size => size.to_string(),
    };
    let enough = zone_size::kib_for(layout, size_of::<Table>(), size_of::<Slot>(), wanted);
    log(
        NGX_LOG_EMERG,
        &format!(
            "check_shm_size {size} holds the records of {count} checked peers, and the configuration checks {wanted}: \
             raise it to {enough}k or more"
        ),
    );
    false
}

/// Zone init: the previous cycle's table when nginx reused the zone, else
/// as many free slots as the zone holds; an error when they cannot hold
/// the configuration's checked peers ([`holds_configured_peers`]).
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx calls this in the master with the mapped zone; `data`
    // is the previous cycle's table when the zone is reused.
    unsafe {
        let pool = (*zone).shm.addr.cast::<ngx_slab_pool_t>();
        if shm_zone::reuse(zone, data) {
            // Laid out as below: its free pages then were at least those
            // free now and the table's.
            let count = (*(*zone).data.cast::<Table>()).count;
            let table_pages = (size_of::<Table>() + count * size_of::<Slot>()).div_ceil(ngx_pagesize);
            let layout = slab_layout(zone, (*pool).pfree + table_pages);
            return init_result(holds_configured_peers(count, layout));
        }
        // The slab's own bookkeeping takes a share of the zone (a share
        // that grows with it); the table takes the rest: the pages nginx
        // left free, one run in a new zone (calloc: every slot FREE, gen
        // 0). It shrank by a tenth until it fit, so that a larger zone
        // could hold fewer records (hunt 43).
        let layout = slab_layout(zone, (*pool).pfree);
        let mut count = zone_size::records_in(layout, size_of::<Table>(), size_of::<Slot>());
        let slab = SlabLocked::new(pool);
        let table = loop {
            if count == 0 {
                return NGX_ERROR as ngx_int_t;
            }
            let bytes = size_of::<Table>() + count * size_of::<Slot>();
            let table = quietly(pool, || ngx_slab_calloc_locked(pool, bytes)).cast::<Table>();
            if !table.is_null() {
                break table;
            }
            // Not seen: the free pages are one run in a new zone.
            count -= count.div_ceil(100);
        };
        drop(slab);
        (*table).count = count;
        (*pool).data = table.cast();
        (*zone).data = table.cast();
        init_result(holds_configured_peers(count, layout))
    }
}

/// The health zone `zone` as nginx's slab allocator laid it out, with
/// `free_pages` free before the table.
///
/// # Safety
/// `zone` is nginx's, mapped.
unsafe fn slab_layout(zone: *mut ngx_shm_zone_t, free_pages: usize) -> SlabLayout {
    SlabLayout {
        // SAFETY: per the contract.
        size: unsafe { (*zone).shm.size },
        free_pages,
        // SAFETY: set once by nginx at start.
        page_size: unsafe { ngx_pagesize },
        page_header: size_of::<ngx_slab_page_t>(),
    }
}

fn init_result(ok: bool) -> ngx_int_t {
    if ok {
        NGX_OK as ngx_int_t
    } else {
        NGX_ERROR as ngx_int_t
    }
}

/// A cycle's health zone (one with checks), for as long as `'z` says it is
/// mapped: the running cycle's in a process that serves requests
/// ([`HealthZone::running`], `'static`: a worker's zones are its life's),
/// the new cycle's in init_module ([`HealthZone::of_new_cycle`]). Never
/// the master's running one outside init_module: a reload that gives the
/// zone a new size unmaps the old one there.
#[derive(Clone, Copy)]
pub struct HealthZone<'z> {
    pool: *mut ngx_slab_pool_t,
    table: *mut Table,
    _zone: PhantomData<&'z Table>,
}

impl HealthZone<'static> {
    /// The running cycle's health zone, in a process that serves requests,
    /// on nginx's thread; none elsewhere (the master; another thread). The
    /// one exception to `'static` is the one process of `master_process
    /// off`, whose reload unmaps at once a zone it does not keep (a new
    /// `check_shm_size`), as for [`crate::dyups::registry::Dyups::get`].
    pub fn running() -> Option<HealthZone<'static>> {
        if !in_running_process() {
            return None;
        }
        // SAFETY: ZONE is set in the master's init_module only (on nginx's
        // thread, which this is) and points at the running cycle's zone,
        // mapped in every worker for its life.
        unsafe { HealthZone::of_zone(ZONE) }
    }
}

impl<'a> HealthZone<'a> {
    /// The new cycle's health zone, in its init_module (none without
    /// checks).
    pub fn of_new_cycle(init: &InitModule<'a>) -> Option<HealthZone<'a>> {
        let zone = init.main_conf().map_or(ptr::null_mut(), MainConf::check_zone);
        // SAFETY: in init_module the new cycle's zones are mapped and
        // initialised, for as long as the cycle ('a).
        unsafe { HealthZone::of_zone(zone) }
    }

    /// # Safety
    /// `zone` is null or the health zone, initialised and mapped for `'a`.
    unsafe fn of_zone(zone: *mut ngx_shm_zone_t) -> Option<HealthZone<'a>> {
        // SAFETY: per the contract.
        let (pool, table) = unsafe { shm_zone::parts(zone) }?;
        Some(HealthZone { pool, table, _zone: PhantomData })
    }
}

impl<'z> HealthZone<'z> {
    pub fn len(self) -> usize {
        // SAFETY: the table lives as long as the zone.
        unsafe { (*self.table).count }
    }

    /// Whether any slot is claimed (one load: a tick with nothing to check
    /// stops here).
    pub fn in_use(self) -> bool {
        // SAFETY: as above.
        unsafe { (*self.table).used.load(Acquire) != 0 }
    }

    /// Takes the zone's mutex; in the master (init_module) without waiting
    /// on a worker that died holding it ([`SlabLocked::in_master`]).
    fn lock(self) -> SlabLocked {
        // SAFETY: the zone's pool, mapped for 'z; no caller takes its mutex
        // twice.
        unsafe {
            if in_running_process() {
                SlabLocked::new(self.pool)
            } else {
                SlabLocked::in_master(self.pool, ZONE_NAME)
            }
        }
    }

    /// init_module (master): the zone belongs to a new cycle from now on.
    /// Heals what processes killed inside a claim or a free left (every
    /// reload): the `PENDING` slots of claimers that are gone are freed
    /// ([`HealthZone::free_dead_claims`]), those of zone upstreams' adds
    /// too, and the count of slots claimed is made again from their states
    /// ([`HealthZone::recount_locked`]).
    pub fn begin_cycle(self) {
        // SAFETY: the table lives as long as the zone.
        let cycle = unsafe { (*self.table).cycle.fetch_add(1, AcqRel) } + 1;
        MY_CYCLE.store(cycle, Release);
        {
            let _slab = self.lock();
            // The pending records of adds to zone upstreams: made by workers
            // of the configurations this cycle replaces, they can no longer
            // go live (Pending::activate checks the cycle under this mutex),
            // and they took the room of this cycle's servers, left unchecked
            // though the configuration fit (hunt 41). A run-time upstream's
            // may still go live (the registry outlives reloads): freed only
            // if its claimer is gone, below (asked after these, so that
            // /proc is read only for the claimers left).
            for (_, slot) in self.slots() {
                if slot.state.load(Acquire) == PENDING && !slot.is_runtime() {
                    self.free_locked(slot);
                }
            }
        }
        self.free_dead_claims();
        let _slab = self.lock();
        self.recount_locked();
    }

    /// Frees the `PENDING` slots whose claimers no longer run (a worker
    /// killed inside an add: nothing else frees them, and the zone lost
    /// their room for good, hunt 40 F3); a running claimer's are never
    /// touched. Returns how many it freed. The claimers are read without
    /// the zone's mutex and asked about outside it (/proc: one read per
    /// claimer, not per slot); each slot is freed under the mutex only if
    /// it is still `PENDING` for one of the claimers found gone (a gone
    /// process claims nothing again; a recycled pid has another start time).
    pub fn free_dead_claims(self) -> usize {
        let me = Holder::me().word();
        let mut claimers: Vec<u64> = self
            .slots()
            .filter(|(_, s)| s.state.load(Acquire) == PENDING)
            .map(|(_, s)| s.claimer.load(Acquire))
            .filter(|&c| c != 0 && c != me)
            .collect();
        if claimers.is_empty() {
            return 0;
        }
        claimers.sort_unstable();
        claimers.dedup();
        claimers.retain(|&c| Holder::from_word(c).gone());
        if claimers.is_empty() {
            return 0;
        }
        let _slab = self.lock();
        let mut freed = 0;
        for (_, slot) in self.slots() {
            if slot.state.load(Acquire) == PENDING && claimers.binary_search(&slot.claimer.load(Acquire)).is_ok() {
                self.free_locked(slot);
                freed += 1;
            }
        }
        freed
    }

    /// Counts the slots claimed (not free) again and stores the count in
    /// `used`; the caller holds the zone's mutex. `used` is raised before a
    /// claim publishes its slot and lowered after a free: a process killed
    /// in between leaves it one too high (never too low: listings reserve
    /// room by it), which made the zone's last free slot unclaimable for
    /// good (hunt 40 F2a). Walks the slots below the high-water mark.
    fn recount_locked(self) -> usize {
        let count = self.slots().filter(|(_, s)| s.state.load(Acquire) != FREE).count();
        self.used().store(count, Release);
        count
    }

    /// Whether this is still the running health zone of this process's
    /// configuration number `cycle` (see [`configuration_number`]): always
    /// in a worker, which a reload replaces; not in the one process of
    /// `master_process off` after a reload.
    pub fn is_running(self, cycle: u64) -> bool {
        HealthZone::running().is_some_and(|z| z.table == self.table) && configuration_number() == cycle
    }

    /// False in a worker whose configuration a reload replaced.
    pub fn is_current_cycle(self) -> bool {
        // SAFETY: the table lives as long as the zone.
        unsafe { (*self.table).cycle.load(Acquire) == MY_CYCLE.load(Acquire) }
    }

    /// Whether a reload moved its records to a new zone (see [`superseded`]).
    pub fn is_superseded(self) -> bool {
        // SAFETY: the table lives as long as the zone.
        unsafe { (*self.table).cycle.load(Acquire) == SUPERSEDED }
    }

    fn used(self) -> &'z AtomicUsize {
        // SAFETY: as above.
        unsafe { &(*self.table).used }
    }

    pub fn slot(self, index: usize) -> &'z Slot {
        assert!(index < self.len());
        // SAFETY: in bounds; slots follow the table header, which is
        // aligned for them (a usize), and are never freed.
        unsafe { &*self.table.add(1).cast::<Slot>().add(index) }
    }

    /// The high-water mark ([`Table::high`]): no slot from it on was ever
    /// claimed.
    pub fn high(self) -> usize {
        // SAFETY: the table lives as long as the zone.
        unsafe { (*self.table).high.load(Acquire) }.min(self.len())
    }

    /// The slots below the high-water mark (read once, when called): every
    /// slot that may be claimed. Under the zone's mutex, all of them; without
    /// it, a slot claimed meanwhile may be left out.
    pub fn slots(self) -> impl Iterator<Item = (usize, &'z Slot)> {
        (0..self.high()).map(move |i| (i, self.slot(i)))
    }

    /// Claims a free slot `PENDING` for (`upstream`, `name`) of a
    /// configuration upstream, named as this process's, the first from
    /// `*next_free` on (then from the start), and moves `*next_free` past
    /// it: a caller claiming many slots searches the zone about once, not
    /// once per slot. Returns its index and generation; None when every
    /// slot is taken, once the slots of claimers that are gone were freed
    /// ([`HealthZone::free_dead_claims`]) and the search made again; None
    /// too in a worker whose configuration a reload replaced.
    fn claim_pending(
        self,
        upstream: &[u8],
        name: &[u8],
        counters: Counters,
        due: u32,
        next_free: &mut usize,
    ) -> Option<(usize, u32)> {
        let key = Key { upstream, name, runtime: false };
        // Read before the mutex (/proc, the first time in a process).
        let claimer = Holder::me().word();
        for retry in [false, true] {
            if retry && self.free_dead_claims() == 0 {
                return None;
            }
            // Slots are keyed under the zone's mutex.
            let _slab = self.lock();
            if !self.is_current_cycle() {
                // A reload replaced this worker's configuration since the
                // change began: the claim could never go live (see
                // Pending::activate), and taken after the reload's master
                // freed such claims, it took the room of the new
                // configuration's servers (review 51).
                return None;
            }
            if let Some(index) = self.claim_locked(*next_free, key, counters, due, claimer, &mut true) {
                *next_free = index + 1;
                return Some((index, self.slot(index).gen()));
            }
        }
        None
    }

    /// Claims the first free slot from `from` on (then from the start),
    /// `PENDING` for `claimer` (a [`Holder::word`]), or `LIVE` if it is 0;
    /// the caller holds the zone's mutex. A zone full by its count answers
    /// at once (a reload that places thousands of servers in a full zone
    /// scanned it whole for each: review 45), unless `*recount` (then
    /// cleared): the count is made again first, which a process killed
    /// inside a free may have left too high (hunt 40 F2a). A caller that
    /// claims many slots passes one `recount` for them all: one walk per
    /// round, not per slot.
    fn claim_locked(
        self,
        from: usize,
        key: Key,
        counters: Counters,
        due: u32,
        claimer: u64,
        recount: &mut bool,
    ) -> Option<usize> {
        let Key { upstream, name, runtime } = key;
        let len = self.len();
        if self.used().load(Acquire) >= len && !(core::mem::take(recount) && self.recount_locked() < len) {
            return None;
        }
        let from = from.min(len);
        let Some((index, slot)) =
            (from..len).chain(0..from).map(|i| (i, self.slot(i))).find(|(_, s)| s.state.load(Acquire) == FREE)
        else {
            // Counted with room, none found: a wrong count (never made
            // here: it errs high), mended.
            self.recount_locked();
            return None;
        };
        // Pairs with `Slot::key_bytes`'s acquire fence: a lock-free reader
        // that copies any byte of the new key then sees the slot's free
        // (its state, its generation), whichever process freed it. x86-64
        // keeps stores in order anyway; a weakly ordered CPU (arm64) would
        // not (hunt 28).
        fence(Release);
        // SAFETY: a FREE slot's key is written only under the mutex we
        // hold; readers check `gen` and `state` around their copies. The
        // callers bound the lengths (upstream names at configuration, peer
        // names by nginx's NGX_SOCKADDR_STRLEN).
        unsafe {
            let upstream = &upstream[..upstream.len().min(UPSTREAM_NAME_MAX)];
            let name = &name[..name.len().min(SOCKADDR_STRLEN)];
            ptr::copy_nonoverlapping(upstream.as_ptr(), slot.upstream.get().cast::<u8>(), upstream.len());
            ptr::copy_nonoverlapping(name.as_ptr(), slot.name.get().cast::<u8>(), name.len());
            slot.upstream_len.store(upstream.len() as u32, Relaxed);
            slot.name_len.store(name.len() as u32, Relaxed);
        }
        slot.runtime.store(u32::from(runtime), Relaxed);
        slot.claimer.store(claimer, Relaxed);
        slot.set_counters(counters);
        slot.last_check.store(0, Relaxed);
        slot.last_error.store(0, Relaxed);
        for count in [&slot.checks, &slot.fails, &slot.unhealthy] {
            count.store(0, Relaxed);
        }
        slot.lease.store(Lease::due_at(due).pack(), Relaxed);
        // The mark and the count before the state: a process killed in
        // between leaves a free slot within the mark and the count one too
        // high, which a recount mends (`recount_locked`); in the other
        // order it left a claimed slot past the mark, which no walk of the
        // slots sees, so nobody ever freed it (hunt 40 F2b), or the count
        // too low, and listings that reserve room by it missed live slots.
        // SAFETY: the table lives as long as the zone; written under the
        // mutex the caller holds.
        unsafe { (*self.table).high.fetch_max(index + 1, AcqRel) };
        self.used().fetch_add(1, AcqRel);
        slot.state.store(if claimer == 0 { LIVE } else { PENDING }, Release);
        Some(index)
    }

    /// A reload gave the zone a new size (nginx made a new zone for it,
    /// so a new, empty table): copies the live records of `old`, the
    /// previous cycle's zone (still mapped until the new cycle has
    /// started), by key into this one, due at `due`, so that every peer
    /// keeps its health and the run-time upstreams' servers (whose slots
    /// only their POSTs claim) stay checked. As many as fit, in this order
    /// ([`NewPeers::pass_of`]): the configuration's servers the new cycle
    /// still checks in the same upstream; the run-time upstreams' (some
    /// may be of upstreams a replaced registry lost: `prober::begin_cycle`
    /// frees those); the other records of the upstreams
    /// it checks (servers a state file adds, or removed ones); the records
    /// of other upstreams of an address the new cycle checks (a renamed
    /// upstream's, whose verdicts `prober::begin_cycle` passes on). In the
    /// old table's order the records of removed servers took the room of
    /// those kept, which started afresh, and of run-time servers, checked
    /// down, which came back up (review 37). Marks `old` superseded (see
    /// [`superseded`]). Returns how many run-time upstreams' servers did
    /// not fit. Nothing else uses the new table yet; the old one's keys are
    /// read under its mutex. Allocates nothing.
    pub fn carry_over(
        self,
        old: HealthZone<'_>,
        due: u32,
        new_peers: &NewPeers,
        runtime_checked: &dyn Fn(&[u8]) -> bool,
    ) -> usize {
        if old.table == self.table {
            return 0;
        }
        // SAFETY: the old table lives as long as its zone, mapped here.
        unsafe { (*old.table).cycle.store(SUPERSEDED, Release) };
        // The old zone's mutex, then the new one's (no other code holds two
        // health zones' mutexes).
        let (_old, _new) = (old.lock(), self.lock());
        let (mut upstream, mut name) = ([0u8; UPSTREAM_NAME_MAX], [0u8; SOCKADDR_STRLEN]);
        let (mut next_free, mut dropped) = (0, 0);
        // A new table, counted by its claims alone: no recount.
        let mut recount = false;
        for pass in 0..NewPeers::PASSES {
            for (_, from) in old.slots().filter(|(_, s)| s.is_live()) {
                let (u, n) = from.key_ranges();
                // SAFETY: the ranges are within the slot and bounded by the
                // arrays; the key does not change under the old zone's mutex.
                unsafe {
                    ptr::copy_nonoverlapping(u.cast::<u8>(), upstream.as_mut_ptr(), u.len());
                    ptr::copy_nonoverlapping(n.cast::<u8>(), name.as_mut_ptr(), n.len());
                }
                let key = Key { upstream: &upstream[..u.len()], name: &name[..n.len()], runtime: from.is_runtime() };
                if new_peers.pass_of(&key, runtime_checked) != Some(pass) {
                    continue;
                }
                let Some(index) = self.claim_locked(next_free, key, from.counters(), due, 0, &mut recount) else {
                    // A configuration upstream's peer is claimed again (or
                    // counted) by begin_cycle.
                    dropped += usize::from(from.is_runtime());
                    continue;
                };
                next_free = index + 1;
                let to = self.slot(index);
                to.last_check.store(from.last_check.load(Relaxed), Relaxed);
                to.last_error.store(from.last_error.load(Relaxed), Relaxed);
                for (to, from) in
                    [(&to.checks, &from.checks), (&to.fails, &from.fails), (&to.unhealthy, &from.unhealthy)]
                {
                    to.store(from.load(Relaxed), Relaxed);
                }
            }
        }
        dropped
    }

    /// The slot of server `name` of upstream `upstream` (a run-time one's
    /// if `runtime`: its key is lower case): `found` (its index and
    /// generation, [`HealthZone::configured_keys`]) if it is still that
    /// slot, or a new one with `counters`, due at `due`, the first free one
    /// from `*next_free` on (then from the start), which `*next_free`
    /// passes. None when every slot is taken. Run-time slots are claimed
    /// under the dyups registry's lock, by a caller that knows the server
    /// has none ([`HealthZone::runtime_keys`]). `recount`: see
    /// [`HealthZone::claim_locked`] (one per round of claims).
    #[allow(clippy::too_many_arguments)] // the key, where to look, and what a new slot holds
    pub fn keep_or_claim(
        self,
        found: Option<(usize, u32)>,
        next_free: &mut usize,
        recount: &mut bool,
        upstream: &[u8],
        name: &[u8],
        runtime: bool,
        counters: Counters,
        due: u32,
    ) -> Option<usize> {
        // Slots are keyed and freed under the zone's mutex.
        let _slab = self.lock();
        if let Some((index, gen)) = found {
            // Freed and claimed again since it was read: another key.
            let slot = self.slot(index);
            if slot.is_live() && slot.gen() == gen {
                return Some(index);
            }
        }
        let key = Key { upstream, name, runtime };
        let index = self.claim_locked(*next_free, key, counters, due, 0, recount)?;
        *next_free = index + 1;
        Some(index)
    }

    /// Frees the `PENDING` slot at `index` if it is still of generation
    /// `gen` (else it was freed, and maybe claimed again by another).
    fn free_pending(self, index: usize, gen: u32) {
        let _slab = self.lock();
        self.free_pending_locked(index, gen);
    }

    /// [`HealthZone::free_pending`]; the caller holds the zone's mutex.
    fn free_pending_locked(self, index: usize, gen: u32) {
        let slot = self.slot(index);
        if slot.state.load(Acquire) == PENDING && slot.gen() == gen {
            self.free_locked(slot);
        }
    }

    /// Makes the `PENDING` slot at `index` `LIVE` if it is still of
    /// generation `gen` (else it was freed meanwhile, as a dead claimer's,
    /// and maybe claimed again by another: never made live for this one);
    /// the caller holds the zone's mutex.
    fn activate_locked(self, index: usize, gen: u32) {
        let slot = self.slot(index);
        if slot.state.load(Acquire) == PENDING && slot.gen() == gen {
            slot.state.store(LIVE, Release);
        }
    }

    fn free_locked(self, slot: &Slot) {
        // Free, then the next generation: a lock-free reader that reads the
        // new generation finds the slot free, or claimed again with its new
        // key whole (`Slot::key_bytes`; review 21: in the other order it
        // could read the new generation on a slot still live, then copy a
        // key a claim was rewriting).
        if slot.state.swap(FREE, AcqRel) != FREE {
            self.used().fetch_sub(1, AcqRel);
        }
        slot.gen.fetch_add(1, AcqRel);
        slot.lease.store(0, Release);
    }

    /// The keys (upstream, peer name) of the live slots of run-time
    /// upstreams' servers, read without the zone's mutex (each copy checked
    /// against its slot's generation; an upstream name that is not UTF-8
    /// reads differently, as if it had no slot).
    pub fn runtime_keys(self) -> HashSet<(Vec<u8>, Vec<u8>)> {
        let live = self.slots().filter(|(_, s)| s.is_live() && s.is_runtime());
        live.filter_map(|(_, s)| s.key_bytes(s.gen()).filter(|key| key.runtime).map(|key| (key.upstream, key.name)))
            .collect()
    }

    /// The live slots of run-time upstreams' servers: index, generation
    /// and upstream name each, read as [`HealthZone::runtime_keys`] reads
    /// them.
    pub fn runtime_slots(self) -> Vec<(usize, u32, Vec<u8>)> {
        let live = self.slots().filter(|(_, s)| s.is_live() && s.is_runtime());
        live.filter_map(|(index, s)| {
            let gen = s.gen();
            s.key_bytes(gen).filter(|key| key.runtime).map(|key| (index, gen, key.upstream))
        })
        .collect()
    }

    /// The live slots of run-time upstreams' servers, each with whether
    /// the server is down, read as [`HealthZone::runtime_keys`] reads them
    /// (for the room the configuration's servers take from them:
    /// `prober::begin_cycle`).
    pub fn runtime_records(self) -> Vec<RuntimeRecord> {
        let live = self.slots().filter(|(_, s)| s.is_live() && s.is_runtime());
        live.filter_map(|(index, s)| {
            let gen = s.gen();
            let down = s.counters().down;
            // The counters were of that record if its key still is.
            s.key_bytes(gen).filter(|key| key.runtime).map(|_| RuntimeRecord { index, gen, down })
        })
        .collect()
    }

    /// The live slots of configuration upstreams' peers by key (upstream
    /// name, peer name), with their generations, read as
    /// [`HealthZone::runtime_keys`] reads them.
    pub fn configured_keys(self) -> HashMap<(Vec<u8>, Vec<u8>), (usize, u32)> {
        let live = self.slots().filter(|(_, s)| s.is_live() && !s.is_runtime());
        live.filter_map(|(index, s)| {
            let gen = s.gen();
            s.key_bytes(gen).filter(|key| !key.runtime).map(|key| ((key.upstream, key.name), (index, gen)))
        })
        .collect()
    }

    /// The live slot of a configuration upstream's peer (`upstream`,
    /// `name`), if any.
    fn find_locked(self, upstream: &[u8], name: &[u8]) -> Option<(usize, &'z Slot)> {
        self.slots().find(|(_, s)| s.state.load(Acquire) == LIVE && !s.is_runtime() && s.is(upstream, name))
    }

    /// Gives `peers` of the checked upstream `upstream` (its key: a
    /// run-time one's name is lower case) the health of their live slots
    /// ("unchecked" without one).
    fn fill_health(self, upstream: &str, runtime: bool, peers: &mut [PeerView]) {
        for peer in peers.iter_mut() {
            peer.health = Some(PeerHealth::default());
        }
        // The peers by name (made before the mutex): each slot finds its
        // peers by binary search, so a listing of a thousand checked peers
        // holds the mutex for a thousand searches, not a million compares.
        let mut by_name: Vec<usize> = (0..peers.len()).collect();
        by_name.sort_by(|&a, &b| peers[a].name.cmp(&peers[b].name));
        let mut name = [0u8; SOCKADDR_STRLEN];
        // Keys do not change under the zone's mutex.
        let _slab = self.lock();
        for (_, slot) in self.slots() {
            if !slot.is_live() || slot.is_runtime() != runtime || !slot.upstream_is(upstream.as_bytes()) {
                continue;
            }
            let name = slot.name_locked(&mut name);
            let first = by_name.partition_point(|&i| peers[i].name.as_bytes() < name);
            for &i in &by_name[first..] {
                if peers[i].name.as_bytes() != name {
                    break;
                }
                peers[i].health = Some(slot.health());
            }
        }
    }

    /// The live slot, as (index, generation), of each of `names` (sorted,
    /// without repeats) of the configuration upstream `upstream`: the first
    /// in the zone's order where several are live. One walk of the zone
    /// under its mutex, allocating nothing there (a replace of thousands of
    /// servers used to walk the zone once per removed server, under the
    /// upstream's write locks: hunt 22 F4).
    pub fn live_slots_named(self, upstream: &[u8], names: &[&[u8]]) -> Vec<Option<(usize, u32)>> {
        let mut found = vec![None; names.len()];
        if names.is_empty() {
            return found;
        }
        let mut name = [0u8; SOCKADDR_STRLEN];
        // Keys do not change under the zone's mutex.
        let _slab = self.lock();
        for (index, slot) in self.slots() {
            if !slot.is_live() || slot.is_runtime() || !slot.upstream_is(upstream) {
                continue;
            }
            if let Ok(i) = names.binary_search(&slot.name_locked(&mut name)) {
                found[i].get_or_insert((index, slot.gen()));
            }
        }
        found
    }

    /// Copies the key and health of every live slot, under the zone's
    /// mutex into room reserved before it (at least as many entries as
    /// slots are claimed: that count changes only under the mutex), ordered
    /// by key outside it.
    fn live_slots(self) -> LiveSlots {
        let mut entries: Vec<LiveSlot> = Vec::new();
        loop {
            entries.reserve_exact(self.used().load(Acquire));
            // Keys do not change under the zone's mutex.
            let _slab = self.lock();
            if self.used().load(Acquire) > entries.capacity() {
                continue; // claimed meanwhile: more room, outside the mutex
            }
            for (_, slot) in self.slots() {
                if !slot.is_live() || entries.len() == entries.capacity() {
                    continue; // (never full: live slots are claimed ones)
                }
                let (u, n) = slot.key_ranges();
                let mut entry = LiveSlot {
                    runtime: slot.is_runtime(),
                    upstream_len: u.len() as u16,
                    name_len: n.len() as u16,
                    upstream: [0; UPSTREAM_NAME_MAX],
                    name: [0; SOCKADDR_STRLEN],
                    health: slot.health(),
                };
                // SAFETY: the ranges are within the slot and bounded by the
                // arrays; the key does not change under the mutex.
                unsafe {
                    ptr::copy_nonoverlapping(u.cast::<u8>(), entry.upstream.as_mut_ptr(), u.len());
                    ptr::copy_nonoverlapping(n.cast::<u8>(), entry.name.as_mut_ptr(), n.len());
                }
                entries.push(entry); // within the capacity: no allocation
            }
            break;
        }
        let mut order: Vec<u32> = (0..entries.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| entries[a as usize].key().cmp(&entries[b as usize].key()));
        LiveSlots { entries, order }
    }

    /// The slot, as (index, generation), of `peer`, which an API just
    /// unlinked from `primary`'s lists of the checked upstream `upstream`;
    /// None if another peer of the same name stays (a server given twice),
    /// or it has none. Allocates nothing: called under the lists' write
    /// locks, so that the slot found is the removed peer's (an add of the
    /// same server by another worker cannot link its own before).
    ///
    /// # Safety
    /// The caller holds `primary`'s write locks; `peer` is a live peer.
    pub unsafe fn slot_of_removed(
        self,
        primary: *mut ngx_http_upstream_rr_peers_t,
        upstream: &[u8],
        peer: *mut ngx_http_upstream_rr_peer_t,
    ) -> Option<(usize, u32)> {
        // SAFETY: per the contract.
        unsafe {
            let name = core::slice::from_raw_parts((*peer).name.data, (*peer).name.len);
            let same = |p: *mut ngx_http_upstream_rr_peer_t| {
                (*p).name.len == name.len() && core::slice::from_raw_parts((*p).name.data, name.len()) == name
            };
            if [primary, (*primary).next].into_iter().any(|list| peers_of(list).any(same)) {
                return None;
            }
            let _slab = self.lock();
            self.find_locked(upstream, name).map(|(index, slot)| (index, slot.gen()))
        }
    }

    /// Records a finished probe's result in the slot at `index`
    /// ([`Slot::record`], with the counters `update` makes from the
    /// current ones) and releases its lease to `released`, if the slot is
    /// still of generation `gen`, live, and leased by `claimed`: checked
    /// and written under the zone's mutex, so that no free and new claim
    /// of the slot (another peer's) comes in between. None if the result
    /// was dropped. Allocates nothing.
    #[allow(clippy::too_many_arguments)] // the probe's identity, and its result
    pub fn record_probe<T>(
        self,
        index: usize,
        gen: u32,
        claimed: u64,
        released: u64,
        now: i64,
        failure: Option<Failure>,
        update: impl FnOnce(&mut Counters) -> T,
    ) -> Option<T> {
        // Slots are claimed and freed under the zone's mutex.
        let _slab = self.lock();
        let slot = self.slot(index);
        if slot.gen() != gen || !slot.is_live() || slot.lease.load(Acquire) != claimed {
            return None;
        }
        let mut counters = slot.counters();
        let result = update(&mut counters);
        slot.record(counters, now, failure);
        let _ = slot.lease.compare_exchange(claimed, released, AcqRel, Acquire);
        Some(result)
    }

    /// Frees every slot `wanted` picks (by index and slot), under the
    /// zone's mutex. Allocates nothing.
    pub fn free_where(self, wanted: impl Fn(usize, &Slot) -> bool) {
        let _slab = self.lock();
        for (index, slot) in self.slots() {
            if wanted(index, slot) {
                self.free_locked(slot);
            }
        }
    }

    /// Frees the slot at `index` if it is still of generation `gen`;
    /// whether it did.
    pub fn free_generation(self, index: usize, gen: u32) -> bool {
        let _slab = self.lock();
        self.free_generation_locked(index, gen)
    }

    /// [`HealthZone::free_generation`] for a server a worker removed from
    /// its lists: not in a worker whose configuration a reload replaced
    /// meanwhile, whose lists no longer count (the new configuration may
    /// have kept that server, and its record: an overtaken PUT left it
    /// unchecked, review 49; the reload's master frees the records it does
    /// not keep). Checked under the mutex, under which that master frees
    /// them after its cycle moved.
    pub fn free_removed(self, index: usize, gen: u32) -> bool {
        let _slab = self.lock();
        self.is_current_cycle() && self.free_generation_locked(index, gen)
    }

    fn free_generation_locked(self, index: usize, gen: u32) -> bool {
        let slot = self.slot(index);
        let freed = slot.is_live() && slot.gen() == gen;
        if freed {
            self.free_locked(slot);
        }
        freed
    }
}

impl Slot {
    pub fn is_live(&self) -> bool {
        self.state.load(Acquire) == LIVE
    }

    /// A server of a run-time (dyups) upstream.
    pub fn is_runtime(&self) -> bool {
        self.runtime.load(Relaxed) != 0
    }

    pub fn gen(&self) -> u32 {
        self.gen.load(Acquire)
    }

    /// Whether the slot is keyed (`upstream`, `name`); the caller holds the
    /// zone's mutex.
    fn is(&self, upstream: &[u8], name: &[u8]) -> bool {
        let (u, n) = self.key_ranges();
        u.len() == upstream.len()
            && n.len() == name.len()
            // SAFETY: the key does not change under the mutex.
            && unsafe { volatile_eq(u, upstream) && volatile_eq(n, name) }
    }

    /// Whether the slot is of upstream `upstream`; the caller holds the
    /// zone's mutex.
    fn upstream_is(&self, upstream: &[u8]) -> bool {
        let (u, _) = self.key_ranges();
        // SAFETY: the key does not change under the mutex.
        u.len() == upstream.len() && unsafe { volatile_eq(u, upstream) }
    }

    /// The peer's name, copied into `buffer`; the caller holds the zone's
    /// mutex. Allocates nothing.
    fn name_locked<'b>(&self, buffer: &'b mut [u8; SOCKADDR_STRLEN]) -> &'b [u8] {
        let (_, name) = self.key_ranges();
        for (i, byte) in buffer.iter_mut().take(name.len()).enumerate() {
            // SAFETY: within the slot's name; the key does not change under
            // the mutex.
            *byte = unsafe { ptr::read_volatile(name.cast::<u8>().add(i)) };
        }
        &buffer[..name.len()]
    }

    /// Where the key is: (upstream name, peer name).
    fn key_ranges(&self) -> (*const [u8], *const [u8]) {
        let u = (self.upstream_len.load(Relaxed) as usize).min(UPSTREAM_NAME_MAX);
        let n = (self.name_len.load(Relaxed) as usize).min(SOCKADDR_STRLEN);
        (
            ptr::slice_from_raw_parts(self.upstream.get().cast::<u8>(), u),
            ptr::slice_from_raw_parts(self.name.get().cast::<u8>(), n),
        )
    }

    /// Copies the key of a live slot of generation `gen` (the upstream's
    /// name and the peer's); None if the slot was freed or reused meanwhile.
    pub fn key_copy(&self, gen: u32) -> Option<(String, Vec<u8>, bool)> {
        let key = self.key_bytes(gen)?;
        Some((String::from_utf8_lossy(&key.upstream).into_owned(), key.name, key.runtime))
    }

    /// [`Slot::key_copy`], the upstream's name as its bytes. `gen` was read
    /// before: a claim does not change it, only a free does, so the slot is
    /// live (fully keyed: its state is stored after its key) when the copy
    /// starts, or the copy is not made (a slot freed and claimed again
    /// between a caller's check and its read of `gen` is being keyed now).
    fn key_bytes(&self, gen: u32) -> Option<SlotKey> {
        if !self.is_live() {
            return None;
        }
        let (u, n) = self.key_ranges();
        // SAFETY: both ranges are within the slot; a concurrent rewrite is
        // detected below and the copy dropped.
        let (upstream, name) = unsafe { (volatile_copy(u), volatile_copy(n)) };
        // Read with the key, inside the same check (review 28: read before
        // it, a slot freed and claimed again meanwhile was taken for the
        // other kind: a configuration peer's slot freed as an orphan).
        let runtime = self.is_runtime();
        fence(Acquire);
        (self.is_live() && self.gen() == gen).then_some(SlotKey { upstream, name, runtime })
    }

    pub fn lease(&self) -> &AtomicU64 {
        &self.lease
    }

    /// Brings its next probe forward to `now` if, on its schedule, it
    /// would come later than one `interval_ms` from now (a replace gave it
    /// that shorter interval: [`Lease::rescheduled`]); a lease a probe
    /// holds is left as it is.
    pub fn reschedule(&self, now: u32, interval_ms: u32) {
        let word = self.lease.load(Acquire);
        if let Some(sooner) = Lease::unpack(word).rescheduled(now, interval_ms) {
            let _ = self.lease.compare_exchange(word, sooner.pack(), AcqRel, Acquire);
        }
    }

    pub fn counters(&self) -> Counters {
        Counters {
            down: self.down.load(Acquire) != 0,
            rises: self.rises.load(Relaxed),
            falls: self.falls.load(Relaxed),
        }
    }

    /// Stores `c`; whether `down` changed.
    fn set_counters(&self, c: Counters) -> bool {
        self.rises.store(c.rises, Relaxed);
        self.falls.store(c.falls, Relaxed);
        let changed = self.down.swap(u32::from(c.down), AcqRel) != u32::from(c.down);
        if changed {
            self.transitions.fetch_add(1, Release);
        }
        changed
    }

    /// The lease holder's record of a finished check.
    fn record(&self, counters: Counters, now: i64, failure: Option<Failure>) {
        self.last_check.store(now, Relaxed);
        self.last_error.store(failure.map_or(0, Failure::code), Relaxed);
        self.checks.fetch_add(1, Relaxed);
        if failure.is_some() {
            self.fails.fetch_add(1, Relaxed);
        }
        if self.set_counters(counters) && counters.down {
            self.unhealthy.fetch_add(1, Relaxed);
        }
    }

    /// Its health as the APIs show it.
    pub fn health(&self) -> PeerHealth {
        let c = self.counters();
        let last_check = self.last_check.load(Relaxed);
        PeerHealth {
            checked: true,
            down: c.down,
            rises: c.rises,
            falls: c.falls,
            checks: self.checks.load(Relaxed).into(),
            fails: self.fails.load(Relaxed).into(),
            unhealthy: self.unhealthy.load(Relaxed).into(),
            last_check,
            last_error: Failure::from_code(self.last_error.load(Relaxed)),
        }
    }

    pub fn transitions(&self) -> u32 {
        self.transitions.load(Acquire)
    }
}

/// # Safety
/// `bytes` is readable.
unsafe fn volatile_copy(bytes: *const [u8]) -> Vec<u8> {
    // SAFETY: per the contract, byte by byte within the range.
    (0..bytes.len()).map(|i| unsafe { ptr::read_volatile(bytes.cast::<u8>().add(i)) }).collect()
}

/// Compares shared bytes with `other` (of the same length), allocating nothing.
///
/// # Safety
/// `bytes` is readable.
unsafe fn volatile_eq(bytes: *const [u8], other: &[u8]) -> bool {
    // SAFETY: per the contract, byte by byte within the range.
    other.iter().enumerate().all(|(i, b)| unsafe { ptr::read_volatile(bytes.cast::<u8>().add(i)) } == *b)
}

/// How long a health bit waits for its list's write locks: nginx's
/// holders keep them for microseconds; one that does not let go (a process
/// killed holding one, which nginx never releases) must not stall the
/// event loop, and the prober tries again at its next tick.
const HEALTH_LOCK_WAIT: Duration = Duration::from_millis(20);

/// The list whose locks a health bit last waited for in vain, and until
/// when (nginx's msec clock) its next verdicts only try once.
static BUSY_LIST: AtomicUsize = AtomicUsize::new(0);
static BUSY_UNTIL: AtomicU64 = AtomicU64::new(0);

/// When a health bit last gave up on its list's locks (nginx's msec
/// clock), so that a lock that stays held warns once a minute, not at
/// every tick.
static LAST_LOCK_WARNING: AtomicU64 = AtomicU64::new(0);

/// Sets or clears the health bit of the peers of `primary`'s lists (of
/// upstream `upstream`) for which `health_of(name)` says whether they are
/// down (None: leave it), in one pass under the lists' write locks: a
/// server given twice is two peers of one name, and the verdicts are read
/// once the locks are held. `health_of` runs under the locks: it neither
/// allocates nor waits. False if their locks stayed held for
/// [`HEALTH_LOCK_WAIT`] (nothing written: the caller tries again later),
/// with a `[warn]` at most once a minute.
///
/// # Safety
/// `primary` is the live shared primary list of a zone upstream, or a
/// registry list.
#[must_use = "false: nothing was written, try again"]
pub unsafe fn set_peers_health(
    primary: *mut ngx_http_upstream_rr_peers_t,
    upstream: &str,
    mut health_of: impl FnMut(&[u8]) -> Option<bool>,
) -> bool {
    // SAFETY: a plain read of nginx's clock, which only this thread writes.
    let now = unsafe { ngx_current_msec } as u64;
    // A list this process found locked in the last second gets one try,
    // not a wait: each of its peers' verdicts would wait again at every
    // tick.
    let recently_busy = BUSY_LIST.load(Relaxed) == primary as usize && now < BUSY_UNTIL.load(Relaxed);
    let wait = if recently_busy { Duration::ZERO } else { HEALTH_LOCK_WAIT };
    // SAFETY: per the contract.
    let Some(locks) = (unsafe { ListsWriteLocked::within(primary, wait) }) else {
        if !recently_busy {
            BUSY_LIST.store(primary as usize, Relaxed);
            BUSY_UNTIL.store(now + 1000, Relaxed);
        }
        let last = LAST_LOCK_WARNING.load(Relaxed);
        if last == 0 || now.wrapping_sub(last) >= 60_000 {
            LAST_LOCK_WARNING.store(now.max(1), Relaxed);
            log(
                NGX_LOG_WARN,
                &format!(
                    "health check: upstream \"{upstream}\" waits for its peer list, locked for more than {} ms (a \
                     process killed holding the lock? replace or delete the upstream, or reload nginx); tried again \
                     at each tick",
                    HEALTH_LOCK_WAIT.as_millis()
                ),
            );
        }
        return false;
    };
    // SAFETY: per the contract; written under both write locks, nothing
    // allocated, bounded by the lists' length.
    unsafe {
        let _locks = locks;
        for list in [primary, (*primary).next] {
            let mut changed = false;
            for peer in peers_of(list) {
                // Read under the locks: another worker may have written a
                // newer verdict while this one waited.
                let name = core::slice::from_raw_parts((*peer).name.data, (*peer).name.len);
                if let Some(down) = health_of(name) {
                    (*peer).down = if down { (*peer).down | DOWN_HEALTH } else { (*peer).down & !DOWN_HEALTH };
                    changed = true;
                }
            }
            if changed {
                recount(list);
            }
        }
    }
    true
}

/// The shared primary peer list of a zone upstream of a live
/// configuration (and its backup list, `next`): the lists whose peers'
/// health bits a checked upstream's records go to. Made only from an
/// [`Upstream`] handle, and only when its `peer.data` is a list in its own
/// zone, where nginx's zone module put it: not a dyups front (which a
/// worker makes of a configuration upstream the REST API replaced, and
/// whose `peer.data` is that worker's own memory). Like the `Upstream`
/// handle, it is valid as long as that configuration lives.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckedList(*mut ngx_http_upstream_rr_peers_t);

impl CheckedList {
    /// `upstream`'s shared primary list, if it has a zone and its
    /// balancer's peer list lies in it.
    pub fn of(upstream: Upstream) -> Option<CheckedList> {
        let primary = upstream.peer_data();
        let in_zone = !primary.is_null() && upstream.zone_holds(primary);
        in_zone.then_some(CheckedList(primary.cast()))
    }

    /// Its peers, primaries then backups ([`list_peers`]).
    pub fn peers(self) -> Vec<PeerView> {
        // SAFETY: a zone upstream's shared primary list (see of()), which
        // lives as long as its configuration.
        unsafe { list_peers(self.0) }
    }

    /// Sets or clears the health bits of its peers of upstream `upstream`
    /// that `health_of` names ([`set_peers_health`]). False if its locks
    /// stayed held (see [`set_peers_health`]).
    #[must_use = "false: nothing was written, try again"]
    pub fn set_health(self, upstream: &str, health_of: impl FnMut(&[u8]) -> Option<bool>) -> bool {
        // SAFETY: as in peers().
        unsafe { set_peers_health(self.0, upstream, health_of) }
    }
}

/// The health slot of a peer an API is adding to a checked configuration
/// upstream: a new one, claimed before the lists' locks and freed unless
/// [`Pending::activate`]d under them once the peer is linked, or, for a
/// server the same change takes out of the other list (a Plus API `PUT`
/// that moves it between primary and backup), the slot it already has,
/// which keeps its health.
pub struct Pending<'z> {
    zone: HealthZone<'z>,
    index: usize,
    /// The generation of the slot claimed or kept.
    gen: u32,
    /// The server's existing slot, of generation `gen`, with its key (to
    /// claim another if a removal freed it meanwhile): nothing to free.
    kept: Option<KeptSlot>,
    /// Whether the new peer starts down: `default_down`, or the kept
    /// slot's health.
    pub starts_down: bool,
}

/// See [`Pending::kept`]: fixed-size, so that nothing is freed under the
/// lists' locks where it is used.
struct KeptSlot {
    upstream: [u8; UPSTREAM_NAME_MAX],
    upstream_len: usize,
    name: [u8; SOCKADDR_STRLEN],
    name_len: usize,
}

impl<'z> Pending<'z> {
    /// A slot in `zone` (the upstream's cycle's health zone, none if it has
    /// none) for the peer `name` being added to the checked upstream
    /// `upstream`: due at once, down if `default_down`.
    pub fn claim(
        zone: Option<HealthZone<'z>>,
        upstream: &str,
        check: &CheckConf,
        name: &[u8],
    ) -> Result<Pending<'z>, ApiError> {
        Self::claim_or_keep(zone, upstream, check, name, false, &mut 0)
    }

    /// As [`Self::claim`], but the live slot of a server of that name (one
    /// the same change removes from the other list) is kept, with its
    /// health. A new slot is searched from `*next_free` on (see
    /// [`HealthZone::claim_pending`]: 0 for the whole zone).
    pub fn claim_or_keep(
        zone: Option<HealthZone<'z>>,
        upstream: &str,
        check: &CheckConf,
        name: &[u8],
        keep: bool,
        next_free: &mut usize,
    ) -> Result<Pending<'z>, ApiError> {
        let zone = zone.ok_or_else(|| ApiError::new(500, "internal", "no health zone"))?;
        if keep && upstream.len() <= UPSTREAM_NAME_MAX && name.len() <= SOCKADDR_STRLEN {
            // Keys do not change under the zone's mutex.
            let _slab = zone.lock();
            if let Some((index, slot)) = zone.find_locked(upstream.as_bytes(), name) {
                let mut kept = KeptSlot {
                    upstream: [0; UPSTREAM_NAME_MAX],
                    upstream_len: upstream.len(),
                    name: [0; SOCKADDR_STRLEN],
                    name_len: name.len(),
                };
                kept.upstream[..upstream.len()].copy_from_slice(upstream.as_bytes());
                kept.name[..name.len()].copy_from_slice(name);
                let starts_down = slot.counters().down;
                return Ok(Pending { zone, index, gen: slot.gen(), kept: Some(kept), starts_down });
            }
        }
        let counters = Counters::new(check.default_down);
        // SAFETY: a plain read of nginx's clock, which only this thread writes.
        let now = unsafe { ngx_current_msec } as u32;
        let (index, gen) = zone.claim_pending(upstream.as_bytes(), name, counters, now, next_free).ok_or_else(|| {
            if !zone.is_current_cycle() {
                return ApiError::reloading();
            }
            ApiError::new(
                507,
                "check_zone_full",
                format!(
                    "the health zone holds {} checked peers and has no room for another: raise \"check_shm_size\" and reload",
                    zone.len()
                ),
            )
        })?;
        Ok(Pending { zone, index, gen, kept: None, starts_down: check.default_down })
    }

    /// The slot an existing server keeps (see [`Self::claim_or_keep`]).
    pub fn kept_slot(&self) -> Option<usize> {
        self.kept.as_ref().map(|_| self.index)
    }

    /// The peer is linked: the slot is checked from now on. Called under
    /// the lists' write locks, so that a removal of the peer (which finds
    /// its slot under them, [`HealthZone::slot_of_removed`]) never misses
    /// it. A slot freed meanwhile (judged a dead claimer's) is not made
    /// live: the peer stays unchecked until a reload gives it a record.
    /// Allocates nothing.
    pub fn activate(self) {
        // The zone's mutex comes after the lists' locks, as everywhere.
        let slab = self.zone.lock();
        if !self.zone.is_current_cycle() {
            // A reload replaced this worker's configuration while it made
            // the change: its lists are no longer served, nor probed.
            // Checked under the mutex, under which the reload's master
            // frees what the new configuration does not keep, after its
            // cycle moved: made live before, the record is freed by the
            // master; after, it kept its room until the next reload
            // (review 48, 49). A claimed record is freed here (a kept one
            // is the new cycle's).
            if self.kept.is_none() {
                self.zone.free_pending_locked(self.index, self.gen);
            }
        } else if let Some(kept) = &self.kept {
            // A removal of that server by another worker may have freed
            // the kept slot since: its new peer gets a fresh one.
            let slot = self.zone.slot(self.index);
            if slot.is_live() && slot.gen() == self.gen {
                // Its health may have moved since `starts_down` was read:
                // every worker applies it again to the server's peers, the
                // new one too.
                slot.transitions.fetch_add(1, Release);
            } else {
                let key = Key {
                    upstream: &kept.upstream[..kept.upstream_len],
                    name: &kept.name[..kept.name_len],
                    runtime: false,
                };
                // SAFETY: a plain read of nginx's clock.
                let now = unsafe { ngx_current_msec } as u32;
                // No room: the peer stays unchecked, as at start.
                let _ = self.zone.claim_locked(0, key, Counters::new(self.starts_down), now, 0, &mut true);
            }
        } else {
            self.zone.activate_locked(self.index, self.gen);
        }
        drop(slab);
        core::mem::forget(self);
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.kept.is_none() {
            self.zone.free_pending(self.index, self.gen);
        }
    }
}

/// Gives `peers` of upstream `upstream` (a run-time one if `runtime`)
/// their health from `zone` (its cycle's health zone), if the upstream is
/// `checked`: from `listing`, the copy of an answer about many upstreams,
/// if given, else with one walk of the zone's slots.
pub fn show_health(
    listing: Option<&HealthListing>,
    zone: Option<HealthZone>,
    upstream: &str,
    runtime: bool,
    checked: bool,
    peers: &mut [PeerView],
) {
    if let Some(listing) = listing {
        return listing.show(zone, upstream, runtime, checked, peers);
    }
    let Some(zone) = zone.filter(|_| checked) else { return };
    if runtime {
        zone.fill_health(&upstream.to_ascii_lowercase(), true, peers);
    } else {
        zone.fill_health(upstream, false, peers);
    }
}

/// The health of the peers of every upstream one answer lists (the Plus
/// API's and dyups' listings, `/metrics`, `check_status`): the live slots
/// of `zone` are copied once, when the first checked upstream needs them,
/// and each upstream's peers then find theirs by binary search, so a
/// listing of U upstreams costs one walk of the zone and O(peers x log
/// slots), not U walks (each under the zone's mutex).
pub struct HealthListing<'z> {
    zone: Option<HealthZone<'z>>,
    copy: OnceCell<LiveSlots>,
}

/// What a [`HealthListing`] copied: the live slots, and their indexes in
/// `entries` ordered by key (runtime, upstream, name).
struct LiveSlots {
    entries: Vec<LiveSlot>,
    order: Vec<u32>,
}

/// One live slot's key and health, fixed-size: copied under the zone's
/// mutex into room reserved before it.
#[derive(Clone, Copy)]
struct LiveSlot {
    runtime: bool,
    upstream_len: u16,
    name_len: u16,
    upstream: [u8; UPSTREAM_NAME_MAX],
    name: [u8; SOCKADDR_STRLEN],
    health: PeerHealth,
}

impl LiveSlot {
    fn key(&self) -> (bool, &[u8], &[u8]) {
        (self.runtime, &self.upstream[..self.upstream_len as usize], &self.name[..self.name_len as usize])
    }
}

impl<'z> HealthListing<'z> {
    /// For one answer, with `zone` (the running health zone; none without
    /// checks). Copies nothing yet.
    pub fn new(zone: Option<HealthZone<'z>>) -> HealthListing<'z> {
        HealthListing { zone, copy: OnceCell::new() }
    }

    /// [`show_health`] from the copy, for an upstream whose health zone is
    /// `zone` (the listing's: else, as [`show_health`] without one).
    fn show(&self, zone: Option<HealthZone>, upstream: &str, runtime: bool, checked: bool, peers: &mut [PeerView]) {
        let Some(zone) = zone.filter(|_| checked) else { return };
        let Some(mine) = self.zone.filter(|mine| mine.table == zone.table) else {
            return show_health(None, Some(zone), upstream, runtime, checked, peers);
        };
        let copy = self.copy.get_or_init(|| mine.live_slots());
        let lower;
        let upstream = if runtime {
            lower = upstream.to_ascii_lowercase();
            lower.as_bytes()
        } else {
            upstream.as_bytes()
        };
        let key = |i: &u32| copy.entries[*i as usize].key();
        // The upstream's slots, then each peer's among them.
        let first = copy.order.partition_point(|i| key(i) < (runtime, upstream, &[][..]));
        let end = first + copy.order[first..].partition_point(|i| key(i).0 == runtime && key(i).1 == upstream);
        let slots = &copy.order[first..end];
        for peer in peers.iter_mut() {
            let name = peer.name.as_bytes();
            let at = slots.partition_point(|i| key(i).2 < name);
            let health = slots.get(at).filter(|i| key(i).2 == name).map(|&i| copy.entries[i as usize].health);
            peer.health = Some(health.unwrap_or_default());
        }
    }
}

/// The checked upstreams of a new cycle and their servers, for
/// [`HealthZone::carry_over`] (made before the zones' mutexes: looking a
/// key up allocates nothing).
#[derive(Default)]
pub struct NewPeers {
    upstreams: HashSet<Vec<u8>>,
    /// `UPSTREAM\0NAME`.
    keys: HashSet<Vec<u8>>,
    names: HashSet<Vec<u8>>,
}

impl NewPeers {
    const PASSES: usize = 4;

    /// The checked upstream `upstream` with its servers `peers`.
    pub fn add(&mut self, upstream: &[u8], peers: impl IntoIterator<Item = Vec<u8>>) {
        self.upstreams.insert(upstream.to_vec());
        for name in peers {
            self.keys.insert([upstream, b"\0", &name].concat());
            self.names.insert(name);
        }
    }

    /// In which pass [`HealthZone::carry_over`] copies the record of
    /// `key`, if it does.
    fn pass_of(&self, key: &Key, runtime_checked: &dyn Fn(&[u8]) -> bool) -> Option<usize> {
        if key.runtime {
            return runtime_checked(key.upstream).then_some(1);
        }
        let mut joined = [0u8; UPSTREAM_NAME_MAX + 1 + SOCKADDR_STRLEN];
        let len = key.upstream.len() + 1 + key.name.len();
        joined[..key.upstream.len()].copy_from_slice(key.upstream);
        joined[key.upstream.len() + 1..len].copy_from_slice(key.name);
        if self.keys.contains(&joined[..len]) {
            Some(0)
        } else if self.upstreams.contains(key.upstream) {
            Some(2)
        } else if self.names.contains(key.name) {
            Some(3)
        } else {
            None
        }
    }
}

/// init_module (master, once per cycle): makes `zone` (null without
/// checks) the running health zone. If a reload gave it a new size, the
/// previous zone's records move into it ([`HealthZone::carry_over`]: the
/// new cycle's `new_peers`, and the run-time upstreams' for which
/// `runtime_checked` says the registry still has them with checks);
/// returns how many run-time upstreams' servers did not fit. The running
/// zone is taken for the previous only if the new cycle
/// `replaces_served` the cycle that set it.
///
/// # Safety
/// In the master's init_module, before the workers fork.
unsafe fn set_running(
    zone: *mut ngx_shm_zone_t,
    replaces_served: bool,
    new_peers: &NewPeers,
    runtime_checked: &dyn Fn(&[u8]) -> bool,
) -> usize {
    // SAFETY: per the contract: the running cycle's zone (or null), still
    // mapped (nginx unmaps the old cycle's zones after init_module), when
    // the new cycle replaces the one that set it (else a freed cycle's:
    // see InitModule::replaces_served_cycle), and the new cycle's,
    // initialised, set on this thread.
    let (previous, running) = unsafe {
        let previous = if replaces_served { HealthZone::of_zone(ZONE) } else { None };
        ZONE = zone;
        (previous, HealthZone::of_zone(zone))
    };
    match (previous, running) {
        (Some(previous), Some(running)) => {
            // SAFETY: a plain read of nginx's clock, which only this thread writes.
            let now = unsafe { ngx_current_msec } as u32;
            running.carry_over(previous, now, new_peers, runtime_checked)
        }
        (Some(previous), None) => {
            // No health zone any more: the old workers' records go nowhere.
            // SAFETY: the old table lives as long as its zone, mapped here.
            unsafe { (*previous.table).cycle.store(SUPERSEDED, Release) };
            0
        }
        _ => 0,
    }
}

/// [`set_running`] in the master's init_module with the new cycle's health
/// zone (none without checks: its main configuration's `check_zone`).
pub fn set_running_for(init: &InitModule, new_peers: &NewPeers, runtime_checked: &dyn Fn(&[u8]) -> bool) -> usize {
    let zone = init.main_conf().map_or(ptr::null_mut(), MainConf::check_zone);
    // SAFETY: an InitModule is only made for the master's init_module, before
    // the workers fork; the zone is the new cycle's (initialised: nginx
    // initialises every shared zone before init_module) or null.
    unsafe { set_running(zone, init.replaces_served_cycle(), new_peers, runtime_checked) }
}

/// A slot's key: (upstream name, peer name), and whose peer it is.
#[derive(Clone, Copy)]
struct Key<'a> {
    upstream: &'a [u8],
    name: &'a [u8],
    runtime: bool,
}

/// The health slots of a run-time upstream's servers while a POST replaces
/// it (see [`RuntimeSlots::prepare`]). Built before the registry's lock is
/// taken (its vectors are allocated then), filled and committed under it.
pub struct RuntimeSlots<'z> {
    zone: HealthZone<'z>,
    /// The upstream's key (lower case: dyups names are case-insensitive).
    upstream: Vec<u8>,
    names: Vec<Vec<u8>>,
    /// Per name: the first earlier name it repeats (a server given twice
    /// has one slot), if any.
    earlier: Vec<Option<usize>>,
    /// The names that repeat none, as indexes sorted by name, and per
    /// name the live slot it keeps (and its health), found by `prepare` in
    /// one walk of the zone.
    by_name: Vec<usize>,
    kept: Vec<Option<(usize, bool)>>,
    default_down: bool,
    /// The new list's check interval.
    interval_ms: u32,
    /// Per name: its slot, once prepared.
    slots: Vec<usize>,
    /// Per name: whether it starts down (its kept slot's health, or
    /// `default_down`).
    down: Vec<bool>,
    /// Slots claimed by `prepare` (index, generation), freed unless
    /// committed.
    claimed: Vec<(usize, u32)>,
    /// This process as the claimer its `PENDING` slots name (read when
    /// made, before any lock: /proc).
    claimer: u64,
}

impl<'z> RuntimeSlots<'z> {
    /// For the servers `names` of run-time upstream `upstream`, checked
    /// as `check` says, in `zone`.
    pub fn new(zone: HealthZone<'z>, upstream: &str, names: Vec<Vec<u8>>, check: &CheckConf) -> RuntimeSlots<'z> {
        let n = names.len();
        let earlier: Vec<Option<usize>> = {
            let mut first: HashMap<&[u8], usize> = HashMap::with_capacity(n);
            names
                .iter()
                .enumerate()
                .map(|(i, name)| Some(*first.entry(name).or_insert(i)).filter(|&j| j != i))
                .collect()
        };
        let mut by_name: Vec<usize> = (0..n).filter(|&i| earlier[i].is_none()).collect();
        by_name.sort_unstable_by(|&a, &b| names[a].cmp(&names[b]));
        RuntimeSlots {
            zone,
            upstream: upstream.to_ascii_lowercase().into_bytes(),
            names,
            earlier,
            by_name,
            kept: vec![None; n],
            default_down: check.default_down,
            interval_ms: check.interval_ms,
            slots: Vec::with_capacity(n),
            down: Vec::with_capacity(n),
            claimed: Vec::with_capacity(n),
            claimer: Holder::me().word(),
        }
    }

    /// Finds the live slot of each server (a server that stays keeps its
    /// health) and claims one, due at once, for each new server. Allocates
    /// nothing. Err (nothing claimed) when the zone has no room: the
    /// number of slots it holds.
    pub fn prepare(&mut self) -> Result<(), usize> {
        let zone = self.zone;
        // Slots are keyed under the zone's mutex.
        let slab = zone.lock();
        // SAFETY: a plain read of nginx's clock, which only this thread writes.
        let now = unsafe { ngx_current_msec } as u32;
        // One walk finds the live slots of the servers that stay (a walk
        // per server cost servers x slots under the mutex).
        let mut buffer = [0; SOCKADDR_STRLEN];
        for (index, slot) in zone.slots() {
            if !(slot.is_live() && slot.is_runtime() && slot.upstream_is(&self.upstream)) {
                continue;
            }
            let name = slot.name_locked(&mut buffer);
            if let Ok(at) = self.by_name.binary_search_by(|&i| self.names[i].as_slice().cmp(name)) {
                self.kept[self.by_name[at]].get_or_insert((index, slot.counters().down));
            }
        }
        let (mut next_free, mut recount) = (0, true);
        for (i, (name, earlier)) in self.names.iter().zip(&self.earlier).enumerate() {
            if let Some(&j) = earlier.as_ref() {
                // A server given twice: the slot of its first line.
                let (index, down) = (self.slots[j], self.down[j]);
                self.slots.push(index);
                self.down.push(down);
                continue;
            }
            let key = Key { upstream: &self.upstream, name, runtime: true };
            let (index, down) = match self.kept[i] {
                Some(kept) => {
                    // On the new interval from now on, if it is shorter.
                    zone.slot(kept.0).reschedule(now, self.interval_ms);
                    kept
                }
                None => {
                    let counters = Counters::new(self.default_down);
                    let claimed = zone.claim_locked(next_free, key, counters, now, self.claimer, &mut recount);
                    let Some(index) = claimed else {
                        for &(index, gen) in &self.claimed {
                            zone.free_pending_locked(index, gen);
                        }
                        self.claimed.clear();
                        drop(slab);
                        return Err(zone.len());
                    };
                    next_free = index + 1;
                    self.claimed.push((index, zone.slot(index).gen()));
                    (index, self.default_down)
                }
            };
            self.slots.push(index);
            self.down.push(down);
        }
        Ok(())
    }

    /// Per server, in the order given: whether it starts down.
    pub fn down(&self) -> &[bool] {
        &self.down
    }

    /// The new servers' slots are checked from now on: called before their
    /// list is published, so that it never is with slots nobody checks.
    /// False, and nothing activated (dropped, the claims are freed), when a
    /// reload moved the records to a new zone meanwhile (this process held
    /// the registry's lock past the reload's wait for it): the new workers
    /// would find no record for these servers, which would take requests
    /// unchecked (hunt 41). Decided under the zone's mutex, which the reload
    /// takes to copy the records once it marked the zone superseded.
    /// Allocates nothing.
    #[must_use]
    pub fn activate(&mut self) -> bool {
        let zone = self.zone;
        let _slab = zone.lock();
        if zone.is_superseded() {
            return false;
        }
        for &(index, gen) in &self.claimed {
            zone.activate_locked(index, gen);
        }
        self.claimed.clear();
        true
    }

    /// Frees the upstream's other slots (servers its new list no longer
    /// has): called once the new list is published, so that the old one
    /// keeps its checks while it is served. Allocates nothing.
    pub fn free_others(mut self) {
        // Sorted (in place) before the zone's mutex: one search per slot.
        let mut kept = std::mem::take(&mut self.slots);
        kept.sort_unstable();
        self.zone.free_where(|index, slot| {
            slot.is_live()
                && slot.is_runtime()
                && kept.binary_search(&index).is_err()
                && slot.upstream_is(&self.upstream)
        });
    }
}

impl Drop for RuntimeSlots<'_> {
    fn drop(&mut self) {
        if self.claimed.is_empty() {
            return;
        }
        let _slab = self.zone.lock();
        for &(index, gen) in &self.claimed {
            self.zone.free_pending_locked(index, gen);
        }
    }
}

/// Frees every run-time upstream's slot that is still being claimed
/// (`PENDING`): called by the dyups registry's repair, under the registry's
/// lock, under which alone such slots are claimed and activated, so every
/// one left is a dead change's. Allocates nothing.
pub fn free_pending_runtime(zone: HealthZone) {
    zone.free_where(|_, slot| slot.state.load(Acquire) == PENDING && slot.is_runtime());
}

/// Frees the slots of run-time upstream `upstream`'s servers (it was
/// deleted, or replaced by a body without checks). Allocates nothing.
pub fn forget_runtime(zone: HealthZone, upstream: &str) {
    let mut key = [0u8; UPSTREAM_NAME_MAX];
    let len = upstream.len().min(UPSTREAM_NAME_MAX);
    key[..len].copy_from_slice(&upstream.as_bytes()[..len]);
    key[..len].make_ascii_lowercase();
    zone.free_where(|_, slot| slot.is_live() && slot.is_runtime() && slot.upstream_is(&key[..len]));
}

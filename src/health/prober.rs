//! The probes of the active health checks, on each worker's event loop.
//!
//! Every worker runs one tick timer (every 100 ms, or the smallest
//! `interval` of the checks it knows, the configuration's and the run-time
//! upstreams', if shorter). Each tick walks the health
//! zone's slots up to its high-water mark ([`crate::zone::health`]): for a
//! slot of one of its cycle's checked upstreams, or of a run-time upstream
//! of the dyups registry whose list carries checks, it applies the slot's
//! health to the peer lists when it changed (the registry's current list
//! for a run-time upstream, read inside a grace-period section), and, when
//! the slot's lease is due, claims it (one CAS) and starts a probe: a
//! non-blocking connection ([`ProbeConnection`]: `ngx_event_connect_peer`),
//! whose read, write and timeout events come back here. `type=tcp` peeks
//! one byte once connected (up on a byte or EAGAIN, as
//! nginx_upstream_check_module); `type=http` sends `check_http_send` and
//! reads the status line ([`HttpProbe`]). The lease holder records the
//! result and releases the lease due one interval after the probe was due
//! (not after it started: ticks come up to 100 ms late, which would stretch
//! every interval), so the probes of a peer are `interval` apart whatever
//! the number of workers. Nothing here blocks; nothing allocates under a lock.

use core::cell::RefCell;
use core::mem::ManuallyDrop;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use dynamic_upstream_core::health::check_conf::{CheckConf, CheckType};
use dynamic_upstream_core::health::probe::{Counters, Failure, HttpProbe, Lease, Transition, Verdict};
use dynamic_upstream_core::name_set::NameSet;
use dynamic_upstream_core::Address;
use ngx::ffi::{ngx_int_t, ngx_msec_t, NGX_LOG_WARN, NGX_OK};

use crate::dyups::registry::{Dyups, InitPatience, ReadSection};
use crate::dyups::worker::is_front;
use crate::nginx::entry::request_guard;
use crate::nginx::log::{log, os_error_text};
use crate::nginx::module_hooks::Cycle;
use crate::nginx::module_hooks::InitModule;
use crate::nginx::probe_connection::{connection_limit, ConnectError, Io, ProbeConnection, ProbeEvent};
use crate::nginx::process::{cached_time_sec, current_msec, exiting, in_running_process, pid};
use crate::nginx::timer::Timer;
use crate::nginx::upstreams::Upstream;
use crate::zone::health::{configuration_number, set_running_for, CheckedList, HealthZone, NewPeers};
use crate::zone::upstream::check_of;

/// The longest time between two ticks.
const TICK_MS: u32 = 100;

/// The shortest tick a run-time upstream's checks bring: an API client's
/// `interval=1` would make every worker walk every health record each
/// millisecond (review 29: 11% of a worker's CPU beside 3,000 checked
/// servers, 21% beside 9,000). The configuration's own intervals are
/// taken as they are.
const RUNTIME_TICK_FLOOR_MS: u32 = 10;
/// How long a claimed lease outlives the probe's timeout: a worker that
/// dies while probing delays the peer's next probe by at most this.
const LEASE_SLACK_MS: u32 = 1000;
/// Bytes read from a probe's connection at a time (then dropped).
const READ_CHUNK: usize = 512;

/// A checked upstream, as a slot names it.
#[derive(Clone)]
struct Target {
    /// A zone upstream's shared primary list; None for a run-time upstream,
    /// whose current list is read from the registry each time.
    primary: Option<CheckedList>,
    check: Rc<CheckConf>,
}

/// What this worker knows of one slot, for its generation `gen`.
struct Known {
    gen: u32,
    upstream: String,
    name: Vec<u8>,
    /// A server of a run-time upstream.
    runtime: bool,
    /// None: the slot is not of this cycle's checked upstreams (or of a
    /// run-time upstream with checks).
    target: Option<Target>,
    /// The slot's `transitions` last applied to this cycle's lists.
    applied: Option<u32>,
    /// A run-time upstream's: the version of its record this was read
    /// from, and whether the registry changed since (then it is read
    /// again, kept as it is if the record's version stayed).
    version: u64,
    stale: bool,
}

/// What one tick resolves, each upstream once: a slot found no cheaper
/// than by a walk of every upstream (configuration slots) or a parse of
/// its record's checks (run-time slots) made a worker's first tick, each
/// reload's and each change's cost slots x upstreams (hunt 25: 21 s
/// without an answer at start with 5,000 checked upstreams).
#[derive(Default)]
struct Resolver {
    /// The running cycle's checked zone upstreams by name, made at the
    /// first configuration slot.
    configured: Option<HashMap<String, Target>>,
    /// Run-time upstreams looked up: their record's version and checks
    /// (None: no record with checks).
    runtime: HashMap<String, Option<(u64, Rc<CheckConf>)>>,
    /// Run-time upstreams whose servers were looked up: their record's
    /// version and its peers' names (None: no record).
    listed: HashMap<String, Option<Listed>>,
}

/// A run-time upstream's record version and the names of its list's
/// peers (primaries and backups).
type Listed = (u64, Rc<NameSet>);

impl Resolver {
    /// The checked zone upstream `upstream` of the running cycle.
    fn configured(&mut self, upstream: &str) -> Option<Target> {
        let by_name = self.configured.get_or_insert_with(|| {
            let mut by_name = HashMap::new();
            Upstream::with_running(|running| {
                for (u, target) in checked_upstreams(running.upstreams().to_vec()) {
                    by_name.entry(u.name()).or_insert(target);
                }
            });
            by_name
        });
        by_name.get(upstream).cloned()
    }

    /// Run-time upstream `upstream`'s record version and checks; `known`,
    /// what the slot had, gives them without a parse if the version is the
    /// same.
    fn runtime(&mut self, upstream: &str, known: Option<(u64, &Rc<CheckConf>)>) -> Option<(u64, Rc<CheckConf>)> {
        if let Some(found) = self.runtime.get(upstream) {
            return found.clone();
        }
        let found = (|| {
            let dyups = Dyups::get()?;
            let section = ReadSection::new(&dyups);
            let record = dyups.record(&section, upstream)?;
            match known {
                Some((version, check)) if version == record.version => Some((version, Rc::clone(check))),
                _ => Some((record.version, Rc::new(record.check()?))),
            }
        })();
        self.runtime.insert(upstream.to_string(), found.clone());
        found
    }

    /// Run-time upstream `upstream`'s record version and the names of its
    /// list's peers: read only for a slot whose server may have left the
    /// list (one walk of the list per upstream and tick).
    fn listed(&mut self, upstream: &str) -> Option<Listed> {
        if let Some(found) = self.listed.get(upstream) {
            return found.clone();
        }
        let found = (|| {
            let dyups = Dyups::get()?;
            let section = ReadSection::new(&dyups);
            let record = dyups.record(&section, upstream)?;
            Some((record.version, Rc::new(record.peer_names())))
        })();
        self.listed.insert(upstream.to_string(), found.clone());
        found
    }
}

/// What a probe's result is recorded against.
struct Job {
    slot: usize,
    gen: u32,
    claimed: u64,
    /// When the probe was due (or started, if it is an interval late).
    scheduled: u32,
    check: Rc<CheckConf>,
    /// The interval the next probe is due after: the check's, or a shorter
    /// one a replace gave the server while this probe ran (review 26).
    interval_ms: u32,
    upstream: String,
    /// The peer's name (the address probed differs with `port=`).
    peer: String,
}

/// One probe in flight: its connection's events come back, with the
/// slot's index, to [`on_probe_event`].
struct Probe {
    job: Job,
    connection: ProbeConnection,
    http: HttpProbe,
    sent: usize,
    /// The system error number the connection failed with (0: none or
    /// not known), for the line that says the peer went down.
    os_error: i32,
}

struct Worker {
    health: HealthZone<'static>,
    /// The configuration number it was started for.
    cycle: u64,
    /// The dyups registry's generation the run-time slots were resolved at.
    registry: Option<u64>,
    /// By slot index, up to the zone's high-water mark (grown as it rises:
    /// a zone sized for growth costs what it holds).
    known: Vec<Option<Known>>,
    /// By slot index: one probe per slot at a time (a slot with one in
    /// flight is not claimed again), and a probe's connection is open
    /// exactly as long as it is here (taken out, it is closed).
    probes: HashMap<usize, Probe>,
    /// The slot the next tick looks at first: the first one the last tick
    /// had no room to probe, so that every due slot gets its turn.
    first_slot: usize,
    /// When this worker last said its probes wait for connections.
    last_wait_warning: Option<u32>,
    /// The slots whose verdicts changed their peers' health since they
    /// were last applied, with the line that says so: applied together
    /// (one pass per list) at the next turn of the event loop
    /// (`apply_soon`), then logged.
    transitions: Vec<(usize, String)>,
    apply_soon: Timer,
    tick_ms: ngx_msec_t,
    tick: Timer,
}

thread_local! {
    /// This worker's prober (None in the master, and without checks).
    ///
    /// nginx runs a worker's event handlers one after the other on its one
    /// thread, never one inside another; the handlers here (the tick and
    /// the probes' events) hold the borrow for their whole run, across
    /// `ngx_event_connect_peer` (which posts, never runs, the write event
    /// of a connection made at once, and may close nginx's idle HTTP
    /// connections to free one: their handlers, not these), closing
    /// connections (which removes their events, runs none), logging and
    /// the lists' locks. None of those runs a handler of this prober, so
    /// no borrow is ever refused; if one were, the RefCell's panic would
    /// end that handler at its entry's guard, never alias the prober.
    /// [`release_all`] takes the prober out before it closes anything.
    ///
    /// ManuallyDrop: no destructor at thread (process) exit, when nginx's
    /// cycle may be gone; exit_process releases it ([`release_all`]).
    static WORKER: RefCell<ManuallyDrop<Option<Worker>>> = const { RefCell::new(ManuallyDrop::new(None)) };
}

/// Runs `f` on this worker's prober, if it has one (see [`WORKER`] for
/// why the borrow can be held for all of `f`).
fn with_worker<T>(f: impl FnOnce(&mut Worker) -> T) -> Option<T> {
    WORKER.with(|cell| Option::as_mut(&mut **cell.borrow_mut()).map(f))
}

fn now_msec() -> u32 {
    current_msec() as u32
}

/// init_process: starts the tick if the cycle has checks.
pub fn start(cycle: Cycle<'_>) {
    if !in_running_process() {
        // The cache manager and loader run init_process too, but leave
        // without exit_process: they do not probe. The one process of
        // `master_process off` does (else its checked peers, down by
        // default, would never come up).
        return;
    }
    release_unchecked_runtime(HealthZone::running());
    let Some(health) = HealthZone::running() else { return };
    // The first tick: after the configuration's shortest interval; the
    // next ones follow the checks known then ([`tick`]).
    let intervals = checked_upstreams(cycle.upstreams()).into_iter().map(|(_, t)| t.check.interval_ms);
    let tick_ms = intervals.fold(TICK_MS, u32::min);
    let mut worker = Worker {
        health,
        cycle: configuration_number(),
        registry: None,
        known: Vec::new(),
        probes: HashMap::new(),
        first_slot: 0,
        last_wait_warning: None,
        transitions: Vec::new(),
        apply_soon: Timer::new(on_apply_soon),
        tick_ms: tick_ms as ngx_msec_t,
        tick: Timer::new(on_tick),
    };
    worker.tick.add(worker.tick_ms);
    WORKER.with(|cell| **cell.borrow_mut() = Some(worker));
}

/// init_process: the servers of checked run-time upstreams whose health
/// no slot of the running health zone keeps any more (a reload dropped the
/// zone, or gave it a size too small for them) are no longer checked: the
/// health bit a check set on their peers is cleared, else they would stay
/// down for good (the workers of the previous configuration no longer
/// apply their zone's results: see [`apply`]). Their checks resume with
/// the next cycle whose zone has room ([`resume_runtime_checks`]), or at
/// the upstream's next replace. Every worker does it: the same result.
fn release_unchecked_runtime(health: Option<HealthZone>) {
    let Some(dyups) = Dyups::get() else { return };
    let section = ReadSection::new(&dyups);
    let (_, records) = dyups.records(&section);
    let slots = health.map(|h| h.runtime_keys()).unwrap_or_default();
    // Only checked lists carry health bits.
    for record in records.iter().filter(|r| !r.deleted && r.check().is_some()) {
        let key = record.name.to_ascii_lowercase().into_bytes();
        let unkept: HashSet<Vec<u8>> = record
            .health_down_names()
            .into_iter()
            .filter(|name| !slots.contains(&(key.clone(), name.clone())))
            .collect();
        if !unkept.is_empty() {
            record.clear_health(|name| unkept.contains(name));
        }
    }
}

/// exit_process: closes the probes in flight (unreported: their leases
/// expire) and frees the prober.
pub fn release_all() {
    // Taken out first: nothing below runs with the prober borrowed.
    let Some(mut w) = WORKER.with(|cell| Option::take(&mut **cell.borrow_mut())) else { return };
    w.tick.del();
    w.apply_soon.del();
    for (_, probe) in w.probes.drain() {
        drop(probe.connection);
    }
}

/// init_module (master), before the state files are restored: makes the
/// new cycle's health zone (none without checks) the running one; if a reload gave
/// it a new size, the previous zone's records move into it (those of the
/// configuration upstreams this cycle still checks). Returns how many
/// run-time upstreams' servers did not fit, for [`begin_cycle`].
pub fn set_zone(init: &InitModule, patience: &mut InitPatience) -> usize {
    let mut new_peers = NewPeers::default();
    for (upstream, target) in checked_upstreams(init.cycle().upstreams()) {
        // The new cycle's lists, which only this process reaches yet.
        let peers = target.primary.map(|primary| primary.peers()).unwrap_or_default();
        new_peers.add(upstream.name().as_bytes(), peers.into_iter().map(|p| p.name.into_bytes()));
    }
    // The new cycle's health zone (none without checks).
    let set = |runtime_checked: &dyn Fn(&[u8]) -> bool| set_running_for(init, &new_peers, runtime_checked);
    // Under the registry's lock: a worker of the previous configuration
    // changing a run-time upstream either did before (its records move) or
    // finds the old records superseded under it and answers 503. Records
    // of run-time upstreams the registry no longer has (a reload that
    // replaced it) stay behind. Without the lock (held by a stuck process),
    // every run-time upstream's records move (the workers free what the
    // registry does not check).
    match Dyups::of_new_cycle(init) {
        // A new registry (a new dyups_shm_zone_size), which the dyups file
        // fills only later: every run-time record moves, and begin_cycle
        // frees those of upstreams it does not restore
        // ([`free_orphaned_runtime`]; they were dropped: a checked-down
        // server took requests again, review 39).
        Some(dyups) if dyups.is_unloaded(init) => set(&|_| true),
        Some(dyups) => dyups.while_write_locked(patience, |held| match held {
            Some(held) => set(&|name| held.has_checked(name)),
            None => set(&|_| true),
        }),
        None => set(&|_| false),
    }
}

/// First probes' times at start: the C module's random start, so that a
/// thousand peers do not connect in one tick.
#[derive(Default)]
struct Spread(u32);

impl Spread {
    /// The next peer's: within min(`interval_ms`, 1 s) of `now`.
    fn due(&mut self, now: u32, interval_ms: u32) -> u32 {
        self.0 = self.0.wrapping_add(7919);
        now.wrapping_add(self.0 % interval_ms.clamp(1, 1000))
    }
}

/// init_module (master, once the configuration's peers have their slots:
/// they come first, as in [`set_zone`]): gives every server of a checked
/// run-time upstream that has no slot one, so that its checks resume with
/// this cycle. A previous reload left such servers unchecked (a zone too
/// small for them, or none at all) and its workers cleared the down their
/// checks had set ([`release_unchecked_runtime`]); their checks start up
/// (not `default_down`: they took requests meanwhile), due within a second
/// (spread as [`begin_cycle`] spreads the configuration's), and each new
/// worker applies that to their peers at its first sight of them (see
/// [`apply`]). Returns the servers still left without a slot (no room:
/// the configuration's servers may have taken theirs, [`take_runtime_room`]),
/// None without a registry or when its lock stayed held. One walk of the
/// slots and one of the registry: a reload where nothing is missing
/// claims nothing.
fn resume_runtime_checks(
    init: &InitModule,
    health: HealthZone,
    now: u32,
    patience: &mut InitPatience,
) -> Option<Vec<Unchecked>> {
    let dyups = Dyups::of_new_cycle(init)?;
    // Under the registry's lock, under which run-time slots are claimed:
    // no change of an old worker runs meanwhile.
    dyups.while_write_locked(patience, |held| {
        let held = held?;
        let mut has_slot = health.runtime_keys();
        let (mut unchecked, mut spread, mut next_free) = (Vec::new(), Spread::default(), 0);
        // One recount of a zone full by its count, for all of them.
        let mut recount = true;
        for checked in held.checked_servers() {
            let upstream = checked.upstream.to_ascii_lowercase().into_bytes();
            for name in checked.servers {
                // A server given twice gets one slot.
                if !has_slot.insert((upstream.clone(), name.clone())) {
                    continue;
                }
                let due = spread.due(now, checked.interval_ms);
                if health
                    .keep_or_claim(
                        None,
                        &mut next_free,
                        &mut recount,
                        &upstream,
                        &name,
                        true,
                        Counters::new(false),
                        due,
                    )
                    .is_none()
                {
                    unchecked.push(Unchecked { upstream: checked.upstream.clone(), name });
                }
            }
        }
        Some(unchecked)
    })
}

/// A peer left without a record, for the `[error]` that names it.
struct Unchecked {
    upstream: String,
    name: Vec<u8>,
}

/// How many of the peers left unchecked the `[error]` names (nginx cuts a
/// log line at 2048 bytes).
const UNCHECKED_NAMED: usize = 10;

/// The `[error]` of a cycle that left `count` checked peers without a
/// record in a zone of `len`: the first [`UNCHECKED_NAMED`] of `named` by
/// upstream, and how many more there are. `registry_stuck`: the cycle went
/// on without the registry's lock, and so took no run-time record.
fn not_checked_text(len: usize, count: usize, named: &[Unchecked], registry_stuck: bool) -> String {
    let mut text =
        format!("the health zone holds {len} checked peers: {count} peers are not checked; raise \"check_shm_size\"");
    if registry_stuck {
        text.push_str(", or reload once the upstream registry is no longer locked");
    }
    if named.is_empty() {
        return text;
    }
    let mut upstream: Option<&str> = None;
    text.push_str(" (");
    for (i, peer) in named.iter().take(UNCHECKED_NAMED).enumerate() {
        if upstream != Some(peer.upstream.as_str()) {
            if i > 0 {
                text.push_str("; ");
            }
            text.push_str(&format!("upstream \"{}\": ", peer.upstream));
            upstream = Some(&peer.upstream);
        } else {
            text.push_str(", ");
        }
        text.push_str(&String::from_utf8_lossy(&peer.name));
    }
    if count > UNCHECKED_NAMED.min(named.len()) {
        text.push_str(&format!(", and {} more", count - UNCHECKED_NAMED.min(named.len())));
    }
    text.push(')');
    text
}

/// init_module (master, after the state files were restored): gives
/// every peer of the cycle's checked upstreams its slot, keeping the
/// counters of a peer that had one (a reload) and setting its health bit
/// from them. A peer without one takes the verdict of a peer of the same
/// address that is gone (its upstream renamed, or the server moved to
/// another upstream: it was `default_down` again, a 502 until it rose,
/// where the C module keeps it, hunt 37). The slots of the peers that are
/// gone are freed before any is claimed (claimed first, a reload that
/// swaps servers in a full zone left the new ones unchecked, hunt 37).
///
/// The configuration's own servers (the `server` lines of nginx.conf,
/// which the zone's init made sure it holds) come first, in every
/// upstream, then the servers a state file added: claimed upstream by
/// upstream, a state file's servers of one upstream took the room of the
/// configuration's servers of a later one, which took requests unchecked
/// (review 37 R1b). A configuration server that still finds no room takes
/// it from the records of a state file's servers, then from run-time
/// upstreams' ([`take_runtime_room`]; a reload that keeps the zone keeps
/// theirs, which took that room: review 37 R1), those that are up first.
/// The peers left without a record stay unchecked; the error names them
/// (with the `not_carried` run-time servers of [`set_zone`] when their
/// registry's lock stayed held); failing init_module would stop nginx.
/// In the master's init_module, after [`set_zone`].
pub fn begin_cycle(init: &InitModule, not_carried: usize, patience: &mut InitPatience) -> Result<(), String> {
    let cycle = init.cycle();
    let Some(health) = HealthZone::of_new_cycle(init) else {
        return Ok(());
    };
    health.begin_cycle();
    let now = now_msec();
    let mut spread = Spread::default();
    // Each peer's slot found by key: a reload of thousands of checked peers
    // compares no key twice.
    let mut found = health.configured_keys();
    // By upstream: its name, primary list and `default_down`; the peers,
    // each with the slot it keeps, or the counters it starts with, of
    // every upstream (a server given twice: one slot).
    let mut upstreams = Vec::new();
    let mut planned = Vec::new();
    // Slot index -> generation, of the slots kept.
    let mut kept_slots = HashMap::new();
    for (upstream, primary, check) in
        checked_upstreams(cycle.upstreams()).into_iter().filter_map(|(u, t)| Some((u, t.primary?, t.check)))
    {
        // The primary list of an upstream of the new cycle, which only this
        // process reaches yet; its `server` lines' addresses, as its peers
        // are named.
        let (name, peers) = (upstream.name(), primary.peers());
        let configured: HashSet<Vec<u8>> = upstream.server_addresses().into_iter().map(String::into_bytes).collect();
        let mut seen = HashSet::new();
        for peer in peers.into_iter().map(|p| p.name.into_bytes()) {
            if !seen.insert(peer.clone()) {
                continue;
            }
            let known = found.remove(&(name.as_bytes().to_vec(), peer.clone()));
            if let Some((index, gen)) = known {
                kept_slots.insert(index, gen);
            }
            let due = spread.due(now, check.interval_ms);
            let configured = configured.contains(&peer);
            planned.push(PlannedSlot { upstream: upstreams.len(), configured, due, known, peer, slot: None });
        }
        upstreams.push((name, primary, check.default_down));
    }
    // What `found` still holds is gone: each address's verdict, for the new
    // peers of that address; of two records of one address, the first in
    // the table's order, as the C module takes (not a hash map's order,
    // review 37).
    let mut gone: Vec<(usize, u32, Vec<u8>)> = found.into_iter().map(|((_, peer), (i, gen))| (i, gen, peer)).collect();
    gone.sort_unstable_by_key(|&(index, ..)| index);
    let mut verdicts: HashMap<Vec<u8>, Counters> = HashMap::new();
    for (index, gen, peer) in gone {
        let slot = health.slot(index);
        let counters = slot.counters();
        if slot.is_live() && slot.gen() == gen {
            verdicts.entry(peer).or_insert(counters);
        }
    }
    free_orphaned_runtime(init, health, patience);
    // Run-time upstreams' slots live as long as their upstreams, which the
    // dyups registry keeps across reloads. Decided under the mutex: the
    // previous configuration's workers may free and claim slots meanwhile
    // (a slot kept but freed and claimed again since: theirs, or nobody's).
    health
        .free_where(|index, slot| slot.is_live() && !slot.is_runtime() && kept_slots.get(&index) != Some(&slot.gen()));
    // One recount of a zone full by its count for all the claims
    // (HealthZone::begin_cycle recounted it; old workers may have died in
    // a free since).
    let (mut next_free, mut recount) = (0, true);
    // Keeps or claims the slot of each peer `which` picks that has none
    // yet; how many of them are left without one.
    let mut claim = |planned: &mut [PlannedSlot], which: &dyn Fn(&PlannedSlot) -> bool| {
        let mut short = 0;
        for p in planned.iter_mut().filter(|p| p.slot.is_none() && which(p)) {
            let (upstream, _, default_down) = &upstreams[p.upstream];
            let counters = verdicts.get(&p.peer).copied().unwrap_or_else(|| Counters::new(*default_down));
            let (name, peer) = (upstream.as_bytes(), &p.peer);
            match health.keep_or_claim(p.known, &mut next_free, &mut recount, name, peer, false, counters, p.due) {
                Some(index) => {
                    // A carried slot is due on the new schedule (the interval
                    // may have changed): its lease from the old one could be
                    // a day away.
                    health.slot(index).lease().store(Lease::due_at(p.due).pack(), Release);
                    p.slot = Some(index);
                }
                None => short += 1,
            }
        }
        short
    };
    let short = claim(&mut planned, &|p| p.configured);
    if short > 0 {
        // The room of a state file's servers first (this cycle's own
        // peers, whose records nobody else frees or claims), those up
        // before those down (an unchecked peer takes requests), the last
        // ones first.
        let mut extras: Vec<usize> =
            (0..planned.len()).filter(|&i| !planned[i].configured && planned[i].known.is_some()).collect();
        let down = |i: usize| planned[i].known.is_some_and(|(index, _)| health.slot(index).counters().down);
        extras.sort_by_key(|&i| (down(i), core::cmp::Reverse(i)));
        for &i in extras.iter().take(short) {
            if let Some((index, gen)) = planned[i].known.take() {
                health.free_generation(index, gen);
            }
        }
        if claim(&mut planned, &|p| p.configured) > 0 {
            take_runtime_room(init, health, patience, || claim(&mut planned, &|p| p.configured));
        }
    }
    // Then the servers the state files added.
    claim(&mut planned, &|p| !p.configured);
    for (i, (upstream, primary, _)) in upstreams.iter().enumerate() {
        let peers = planned.iter().filter(|p| p.upstream == i);
        let slots: HashMap<&[u8], usize> = peers.filter_map(|p| Some((p.peer.as_slice(), p.slot?))).collect();
        // One pass over the list sets every peer's health bit.
        let _ = primary.set_health(upstream, |name| slots.get(name).map(|&index| health.slot(index).counters().down));
    }
    // Those left without a record: the configuration's servers first.
    let mut left: Vec<&PlannedSlot> = planned.iter().filter(|p| p.slot.is_none()).collect();
    left.sort_by_key(|p| !p.configured);
    let mut unchecked: Vec<Unchecked> = left
        .into_iter()
        .map(|p| Unchecked { upstream: upstreams[p.upstream].0.clone(), name: p.peer.clone() })
        .collect();
    let count = unchecked.len();
    let (runtime_count, runtime_named) = match resume_runtime_checks(init, health, now, patience) {
        Some(named) => (named.len(), named),
        None => (not_carried, Vec::new()),
    };
    if count + runtime_count > 0 {
        unchecked.extend(runtime_named);
        return Err(not_checked_text(health.len(), count + runtime_count, &unchecked, patience.gave_up()));
    }
    Ok(())
}

/// init_module (master), for configuration servers of the new cycle that
/// found no room ([`begin_cycle`]): frees run-time upstreams' records, as
/// many as `claim` (which claims those servers' slots) says it still
/// lacks, those of servers that are up first (a server that loses its
/// record is no longer checked: the new workers clear the down a check had
/// set, [`release_unchecked_runtime`], and it takes requests; one that is
/// up only loses its probes), the last in the zone first. Their servers are
/// left without a record, as a smaller zone leaves them (the error names
/// them: [`resume_runtime_checks`] finds no room for them). Under the
/// registry's lock, under which run-time records are claimed, kept and
/// freed: no change of an old worker is half done meanwhile (a replace
/// that found a server's record and set its list's health from it), and
/// none takes the room freed before `claim` does. A freed record's
/// generation is bumped, its lease cleared: a worker that knew it (the
/// previous cycle's, which probe run-time upstreams until they exit)
/// drops its probe's result and no longer applies it ([`apply`] checks the
/// generation), and every reader that looks a server's record up by key
/// (listings, replaces, [`release_unchecked_runtime`]) finds none: the
/// server is unchecked, never given another peer's record. Without the
/// lock (held by a stuck process) nothing is freed. Without a registry in
/// the new cycle, the run-time records are nobody's (the workers free them
/// as orphans) and are taken as they are.
fn take_runtime_room(
    init: &InitModule,
    health: HealthZone,
    patience: &mut InitPatience,
    mut claim: impl FnMut() -> usize,
) {
    match Dyups::of_new_cycle(init) {
        Some(dyups) => dyups.while_write_locked(patience, |held| {
            if held.is_some() {
                free_runtime_for(health, &mut claim);
            }
        }),
        None => free_runtime_for(health, &mut claim),
    }
}

/// [`take_runtime_room`]'s frees, the caller holding the registry's lock
/// (if there is a registry).
fn free_runtime_for(health: HealthZone, claim: &mut impl FnMut() -> usize) {
    let mut records = health.runtime_records();
    // Up before down, then the last first: popped from the end.
    records.sort_by_key(|r| (core::cmp::Reverse(r.down), r.index));
    // Claimed again first: room freed meanwhile is taken before any record.
    let mut short = claim();
    while short > 0 && !records.is_empty() {
        while short > 0 {
            let Some(record) = records.pop() else { break };
            if health.free_generation(record.index, record.gen) {
                short -= 1;
            }
        }
        short = claim();
    }
}

/// Frees the records of run-time upstreams the new cycle's registry does
/// not check, before the configuration's peers claim theirs: a reload
/// that replaced the registry carried every run-time record ([`set_zone`]),
/// and those the file did not restore took the room of servers the
/// configuration added, which stayed unchecked (review 40; the workers
/// would free them a tick later). Under the registry's lock, under which
/// run-time records are claimed.
fn free_orphaned_runtime(init: &InitModule, health: HealthZone, patience: &mut InitPatience) {
    let Some(dyups) = Dyups::of_new_cycle(init) else { return };
    dyups.while_write_locked(patience, |held| {
        let Some(held) = held else { return };
        for (index, gen, upstream) in health.runtime_slots() {
            if !held.has_checked(&upstream) {
                health.free_generation(index, gen);
            }
        }
    });
}

/// A peer of a checked upstream of the new cycle, in [`begin_cycle`]: its
/// upstream (an index), whether a `server` line of the configuration
/// names it (else a state file added it), the slot it had, when its probes
/// are due, and the slot it keeps or got.
struct PlannedSlot {
    upstream: usize,
    configured: bool,
    peer: Vec<u8>,
    known: Option<(usize, u32)>,
    due: u32,
    slot: Option<usize>,
}

/// The checked zone upstreams among `upstreams` (of this process's cycle,
/// or of the new one in init_module).
fn checked_upstreams(upstreams: Vec<Upstream>) -> Vec<(Upstream, Target)> {
    let mut checked = Vec::new();
    for upstream in upstreams {
        let Some(check) = check_of(upstream) else { continue };
        if is_front(upstream) {
            // Served by the dyups registry in this worker: its peer.data
            // is the front, not a peer list.
            continue;
        }
        // A zone upstream with its shared list.
        if let Some(primary) = CheckedList::of(upstream) {
            checked.push((upstream, Target { primary: Some(primary), check: Rc::new(check) }));
        }
    }
    checked
}

/// The tick timer's handler.
fn on_tick() {
    if with_worker(|w| !w.health.is_running(w.cycle)).unwrap_or(false) {
        // `master_process off` after a reload: nginx runs no new
        // init_process and sets up no connections for the new cycle (every
        // connect fails from then on), and this prober's zone and lists
        // may be gone. It stops; its timer (freed with it) is not set
        // again.
        log(NGX_LOG_WARN, "health checks stop: a reload of a single process (master_process off) cannot probe; peers keep their last health");
        release_all();
        return;
    }
    let _ = request_guard(|| {
        with_worker(|w| {
            if !exiting() {
                tick(w);
            }
        });
        NGX_OK as ngx_int_t
    });
    if !exiting() {
        with_worker(|w| w.tick.add(w.tick_ms));
    }
}

/// The `apply_soon` timer's handler: the verdicts of the last turn of the
/// event loop.
fn on_apply_soon() {
    let _ = request_guard(|| {
        with_worker(|w| {
            if !exiting() && w.health.is_running(w.cycle) {
                apply_transitions(w);
            }
        });
        NGX_OK as ngx_int_t
    });
}

/// Applies the pending transitions to the lists, then logs them (a line
/// says the peer is down once this worker no longer picks it).
fn apply_transitions(w: &mut Worker) {
    w.apply_soon.del();
    let transitions = std::mem::take(&mut w.transitions);
    apply(w, transitions.iter().map(|(index, _)| *index));
    for (_, line) in transitions {
        log(NGX_LOG_WARN, &line);
    }
}

fn tick(w: &mut Worker) {
    // A reload moved the records to a new zone, whose workers probe them.
    if !w.health.in_use() || w.health.is_superseded() {
        return;
    }
    let now = now_msec();
    let pid = pid() as u32;
    let current_cycle = w.health.is_current_cycle();
    let registry = Dyups::get().map(|d| d.generation());
    if registry != w.registry {
        // A run-time upstream was replaced or deleted: its checks, and the
        // list its servers' health goes to, are read again (those whose
        // record's version stayed are kept as they are).
        w.registry = registry;
        for known in w.known.iter_mut().flatten() {
            known.stale |= known.runtime;
        }
    }
    // Up to the high-water mark: every slot from it on is free.
    let slots = w.health.high();
    // A worker's probes hold at most a quarter of the connections it can
    // have, so that its clients keep theirs however many checked peers
    // hang (and a probe never takes one of the last sixteenth: see
    // ProbeConnection::connect).
    let limit = connection_limit();
    let most_probes = (limit / 4).max(1);
    if w.known.len() < slots {
        w.known.resize_with(slots, || None);
    }
    let first = if w.first_slot < slots { w.first_slot } else { 0 };
    let mut waiting = 0;
    let mut resolver = Resolver::default();
    // The next tick comes after the shortest interval of the checks known
    // now, run-time upstreams' too, at least RUNTIME_TICK_FLOOR_MS for
    // those (hunt 25: only the configuration's counted, and a run-time
    // interval=20 was probed every 100 ms at best).
    let mut shortest = TICK_MS;
    w.first_slot = 0;
    for index in (first..slots).chain(0..first) {
        let slot = w.health.slot(index);
        if !slot.is_live() {
            w.known[index] = None;
            continue;
        }
        let gen = slot.gen();
        if !w.known[index].as_ref().is_some_and(|k| k.gen == gen && !k.stale) {
            let was = w.known[index].take().filter(|k| k.gen == gen);
            let interval_was = was.as_ref().and_then(|k| k.target.as_ref()).map(|t| t.check.interval_ms);
            w.known[index] = resolve(w.health, index, gen, &mut resolver, was);
            let interval = w.known[index].as_ref().and_then(|k| k.target.as_ref()).map(|t| t.check.interval_ms);
            if let (Some(was), Some(now_ms)) = (interval_was, interval) {
                if now_ms < was {
                    shorten_interval(w, index, now, now_ms);
                }
            }
        }
        let Some(target) = w.known[index].as_ref().and_then(|k| k.target.clone()) else { continue };
        let floor = if target.primary.is_none() { RUNTIME_TICK_FLOOR_MS } else { 1 };
        shortest = shortest.min(target.check.interval_ms.max(floor));
        if w.probes.contains_key(&index) {
            continue;
        }
        if target.primary.is_some() && !current_cycle {
            // A reload made a new cycle, whose workers probe its
            // configuration's peers with its settings.
            continue;
        }
        let word = slot.lease().load(Acquire);
        let Some(claimed) = Lease::claim(word, pid, now, target.check.timeout_ms.saturating_add(LEASE_SLACK_MS)) else {
            continue;
        };
        if w.probes.len() >= most_probes {
            // Due, and left for a later tick (or another worker).
            if waiting == 0 {
                w.first_slot = index;
            }
            waiting += 1;
            continue;
        }
        let lease = slot.lease();
        if lease.compare_exchange(word, claimed, AcqRel, Acquire).is_ok() {
            let due = Lease::unpack(word).until;
            let late = now.wrapping_sub(due) >= target.check.interval_ms;
            if !start_probe(w, index, claimed, if late { now } else { due }) {
                waiting += 1;
            }
        }
    }
    w.tick_ms = shortest.max(1) as ngx_msec_t;
    apply(w, 0..slots);
    apply_transitions(w);
    if waiting > 0 && w.last_wait_warning.map_or(true, |last| now.wrapping_sub(last) >= 60_000) {
        w.last_wait_warning = Some(now);
        log(
            NGX_LOG_WARN,
            &format!(
                "health checks: {waiting} probes wait for a connection: {} are in flight, a worker's probes use at \
                 most a quarter of the {limit} connections it can have (worker_connections, or fewer file \
                 descriptors); raise worker_connections (and worker_rlimit_nofile), or lengthen the checks' \
                 interval or shorten their timeout",
                w.probes.len()
            ),
        );
    }
}

/// A replace gave the server of the slot at `index` a shorter check
/// interval, `interval_ms`: a probe of it in flight here hands it back on
/// that interval, and a next probe due later than one interval from `now`
/// (handed back on the old interval before the replace was seen here) is
/// due at once. The replace itself reschedules a slot no probe holds
/// (`RuntimeSlots::prepare`); a probe in flight held it then (review 26).
fn shorten_interval(w: &mut Worker, index: usize, now: u32, interval_ms: u32) {
    if let Some(probe) = w.probes.get_mut(&index) {
        probe.job.interval_ms = probe.job.interval_ms.min(interval_ms);
    }
    w.health.slot(index).reschedule(now, interval_ms);
}

/// What this worker's cycle makes of the slot at `index` (generation `gen`),
/// which it knew as `was` (the same generation) before the registry
/// changed: kept, applied health included, if its record's version stayed.
/// A run-time slot seen first, or whose record's version moved, is kept
/// only if its server is in the record's list (see [`free_orphan`]).
fn resolve(health: HealthZone, index: usize, gen: u32, resolver: &mut Resolver, was: Option<Known>) -> Option<Known> {
    if let Some(was) = was {
        let known = was.target.as_ref().map(|t| (was.version, &t.check));
        return match resolver.runtime(&was.upstream, known) {
            Some((version, _)) if version == was.version && was.target.is_some() => Some(Known { stale: false, ..was }),
            Some((version, check)) => {
                if !still_listed(health, index, gen, resolver, &was.upstream, &was.name) {
                    return None;
                }
                let target = Some(Target { primary: None, check });
                Some(Known { target, version, applied: None, stale: false, ..was })
            }
            None => {
                free_orphan(health, index, gen, &was.upstream, None);
                None
            }
        };
    }
    let (upstream, name, runtime) = health.slot(index).key_copy(gen)?;
    let (target, version) = if runtime {
        let Some((version, check)) = resolver.runtime(&upstream, None) else {
            free_orphan(health, index, gen, &upstream, None);
            return None;
        };
        if !still_listed(health, index, gen, resolver, &upstream, &name) {
            return None;
        }
        (Some(Target { primary: None, check }), version)
    } else {
        (resolver.configured(&upstream), 0)
    };
    Some(Known { gen, upstream, name, runtime, target, applied: None, version, stale: false })
}

/// Whether the server of run-time slot `index` (generation `gen`), `name`
/// of `upstream`, is in its record's list; if not, the slot is freed
/// ([`free_orphan`]) or, when a change came in between, left for the next
/// tick to resolve again. The names compared are the peers' own (nginx's),
/// never a spelling of the body's: `[::102:304]:80` is `[::1.2.3.4]:80`.
fn still_listed(
    health: HealthZone,
    index: usize,
    gen: u32,
    resolver: &mut Resolver,
    upstream: &str,
    name: &[u8],
) -> bool {
    let Some((version, names)) = resolver.listed(upstream) else {
        // Deleted since: the next tick finds no record.
        return false;
    };
    if names.contains(name) {
        return true;
    }
    free_orphan(health, index, gen, upstream, Some(version));
    false
}

/// Frees the record of a server of run-time upstream `upstream` that the
/// registry no longer has with checks (deleted, or replaced without them,
/// by a worker of a previous configuration whose records a reload moved;
/// or the upstream was lost with a registry a reload replaced), or, with
/// `unlisted_at`, whose server the list of that version of the record does
/// not have: records a change left behind (its worker was killed after
/// they went live and before it published its list or freed the servers
/// it removed; or it held the registry's lock past a reload's wait, and
/// the reload copied the records of the servers it then removed, review
/// 50). Decided and freed under the registry's lock, so that no change of
/// that upstream comes in between: one made since `unlisted_at` (a new
/// version) leaves the record to the next tick.
fn free_orphan(health: HealthZone, index: usize, gen: u32, upstream: &str, unlisted_at: Option<u64>) {
    let Some(dyups) = Dyups::get() else {
        health.free_generation(index, gen);
        return;
    };
    if !dyups.is_current_cycle() || !health.is_current_cycle() {
        // A worker of a previous configuration: its registry may not be the
        // one the records now belong to (a reload that replaced it).
        return;
    }
    // Entered before the lock: a process's first section claims its slot
    // (reading /proc), which grace.rs does outside the registry's lock.
    let section = ReadSection::new(&dyups);
    dyups.while_read_locked(|| {
        let orphan = match dyups.record(&section, upstream) {
            Some(record) if record.check().is_some() => unlisted_at == Some(record.version),
            _ => true,
        };
        if orphan {
            health.free_generation(index, gen);
        }
    });
}

/// The list a slot's health goes to.
#[derive(PartialEq, Eq, Hash)]
enum HealthList {
    /// A checked zone upstream's shared primary list, which lives as long
    /// as this worker's cycle.
    Configured(CheckedList),
    /// The registry's current list of this run-time upstream.
    Runtime(String),
}

/// The verdicts to write into one list: its upstream's name, and by peer
/// name the slot, its generation, and the `transitions` count it is
/// applied at.
type Verdicts = (String, HashMap<Vec<u8>, (usize, u32, u32)>);

/// Applies the health of the slots `indexes` whose records changed since
/// to this cycle's lists: each list in one pass under its locks (a worker's
/// first tick applies every slot: thousands of checked peers of one
/// upstream cost one walk of its list, not one each).
fn apply(w: &mut Worker, indexes: impl IntoIterator<Item = usize>) {
    let mut lists: HashMap<HealthList, Verdicts> = HashMap::new();
    for index in indexes {
        // (`known` reaches every slot a probe or the tick names.)
        let Some(known) = w.known.get(index).and_then(Option::as_ref) else { continue };
        let Some(target) = &known.target else { continue };
        if target.primary.is_none() && w.health.is_superseded() {
            // A run-time upstream's list is the registry's, which outlives
            // this zone: the new zone's workers set its health (or, for a
            // server that zone has no slot for, clear it: see
            // release_unchecked_runtime); a late result from here must not.
            continue;
        }
        let transitions = w.health.slot(index).transitions();
        if known.applied == Some(transitions) {
            continue;
        }
        let list = match target.primary {
            Some(primary) => HealthList::Configured(primary),
            None => HealthList::Runtime(known.upstream.clone()),
        };
        let (_, names) = lists.entry(list).or_insert_with(|| (known.upstream.clone(), HashMap::new()));
        names.insert(known.name.clone(), (index, known.gen, transitions));
    }
    let health = w.health;
    for (list, (upstream, names)) in lists {
        // Read under the list's locks; a slot freed since this worker read
        // it (its peer removed, or a reload's master gave its room to a
        // configuration server: [`take_runtime_room`]) is left as it is,
        // never read for another peer's record: its generation, read after
        // its health, is bumped before a new claim writes that health.
        let health_of = |name: &[u8]| {
            let &(index, gen, _) = names.get(name)?;
            let slot = health.slot(index);
            let down = slot.counters().down;
            (slot.is_live() && slot.gen() == gen).then_some(down)
        };
        let written = match list {
            HealthList::Configured(primary) => primary.set_health(&upstream, health_of),
            HealthList::Runtime(upstream) => {
                Dyups::get().map_or(true, |dyups| dyups.set_runtime_health(&upstream, health_of))
            }
        };
        // Not written (the list's locks stayed held): tried again next tick.
        if written {
            for (index, _, transitions) in names.into_values() {
                if let Some(known) = w.known.get_mut(index).and_then(Option::as_mut) {
                    known.applied = Some(transitions);
                }
            }
        }
    }
}

/// Starts a probe of the slot at `index`; false if this worker had no
/// connection, descriptor or buffer to spare (the probe waits).
fn start_probe(w: &mut Worker, index: usize, claimed: u64, scheduled: u32) -> bool {
    let Some(known) = w.known[index].as_ref() else { return true };
    let Some(target) = &known.target else { return true };
    let check = target.check.clone();
    let address = match Address::parse(&String::from_utf8_lossy(&known.name)) {
        Ok(Address::Inet(mut a)) if check.port != 0 => {
            a.set_port(check.port);
            Address::Inet(a)
        }
        Ok(a) => a,
        // Names come from validated addresses; one that does not read back
        // is not probed.
        Err(_) => return true,
    };
    let job = Job {
        slot: index,
        gen: known.gen,
        claimed,
        scheduled,
        upstream: known.upstream.clone(),
        peer: String::from_utf8_lossy(&known.name).into_owned(),
        interval_ms: check.interval_ms,
        check: check.clone(),
    };
    // A connection made at once (a unix socket) gets its write event
    // posted: it runs from the event loop, not from here, where the tick
    // still borrows the worker.
    let connection = match ProbeConnection::connect(&address, check.timeout_ms as ngx_msec_t, index, on_probe_event) {
        Ok(connection) => connection,
        Err(ConnectError::Failed(os_error)) => {
            report(w, &job, Verdict::Down(Failure::Connect), os_error);
            return true;
        }
        // This worker had no connection, descriptor or buffer to spare: no
        // probe, no verdict on the peer; it is due again a second or so
        // later (spread, so that a burst does not come back at once).
        Err(ConnectError::NoConnection) => {
            let due = now_msec().wrapping_add(1000 + (index as u32).wrapping_mul(7919) % 1000);
            let _ = w.health.slot(index).lease().compare_exchange(claimed, Lease::due_at(due).pack(), AcqRel, Acquire);
            return false;
        }
    };
    w.probes.insert(index, Probe { job, connection, http: HttpProbe::new(check.expect_alive), sent: 0, os_error: 0 });
    true
}

/// A probe connection's event: runs the probe's next step and ends the
/// probe on a verdict, or at once when the worker is exiting.
fn on_probe_event(slot: usize, event: ProbeEvent) {
    with_worker(|w| {
        let Some(probe) = w.probes.get_mut(&slot) else { return };
        let verdict = if exiting() { Verdict::NeedMore } else { step(probe, event) };
        if verdict == Verdict::NeedMore && !exiting() {
            return;
        }
        let Some(Probe { job, connection, os_error, .. }) = w.probes.remove(&slot) else { return };
        // Deletes its timer and closes it.
        drop(connection);
        // Not into a zone a `master_process off` reload replaced (the next
        // tick stops the prober).
        if !exiting() && w.health.is_running(w.cycle) {
            report(w, &job, verdict, os_error);
        }
    });
}

fn step(probe: &mut Probe, event: ProbeEvent) -> Verdict {
    let tcp = probe.job.check.check_type == CheckType::Tcp;
    match event {
        ProbeEvent::Write if tcp => peek(probe),
        ProbeEvent::Write => send(probe),
        ProbeEvent::Read if tcp => peek(probe),
        ProbeEvent::Read => receive(probe),
        ProbeEvent::Timeout => Verdict::Down(Failure::Timeout),
    }
}

/// `type=tcp`: connected, and the connection neither failed nor closed.
fn peek(probe: &mut Probe) -> Verdict {
    match probe.connection.peek() {
        Ok(1) => Verdict::Up,
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Verdict::Up,
        Ok(0) => Verdict::Down(Failure::Closed),
        Ok(_) => Verdict::Down(Failure::Connect),
        Err(e) => {
            probe.os_error = e.raw_os_error().unwrap_or(0);
            Verdict::Down(Failure::Connect)
        }
    }
}

/// `type=http`, writable: sends what is left of the request.
fn send(probe: &mut Probe) -> Verdict {
    let check = probe.job.check.clone();
    let request = check.send.as_bytes();
    while probe.sent < request.len() {
        match probe.connection.send(&request[probe.sent..]) {
            Io::Done(n) => probe.sent += n,
            Io::Again => {
                if !probe.connection.handle_write_event() {
                    return Verdict::Down(Failure::Io);
                }
                return Verdict::NeedMore;
            }
            Io::Unsupported => return Verdict::Down(Failure::Io),
            Io::Closed => return Verdict::Down(if probe.sent == 0 { Failure::Connect } else { Failure::Io }),
            Io::Error(os_error) => return failed(probe, os_error),
        }
    }
    // All sent: with a level-triggered event method (`use poll` or
    // `select`) nginx stops watching a ready write event only here;
    // else it would call on_write again and again until the answer.
    if !probe.connection.handle_write_event() {
        return Verdict::Down(Failure::Io);
    }
    probe.http.verdict()
}

/// `type=http`, readable: feeds the response to the status-line parser.
fn receive(probe: &mut Probe) -> Verdict {
    let mut buf = [0u8; READ_CHUNK];
    loop {
        match probe.connection.recv(&mut buf) {
            Io::Done(n) => {
                let verdict = probe.http.feed(&buf[..n]);
                if verdict != Verdict::NeedMore {
                    return verdict;
                }
            }
            Io::Closed => return probe.http.closed(),
            Io::Again => {
                if !probe.connection.handle_read_event() {
                    return Verdict::Down(Failure::Io);
                }
                return Verdict::NeedMore;
            }
            Io::Unsupported => return Verdict::Down(Failure::Io),
            Io::Error(os_error) => return failed(probe, os_error),
        }
    }
}

/// The verdict on a connection that failed with `os_error` once
/// `probe.sent` bytes of the request were sent (none: the connect failed).
fn failed(probe: &mut Probe, os_error: i32) -> Verdict {
    probe.os_error = os_error;
    Verdict::Down(if probe.sent == 0 { Failure::Connect } else { Failure::Io })
}

/// The lease holder's record of a probe's verdict; dropped if the lease
/// is no longer this probe's (the slot was freed, or the lease expired).
/// `os_error` (0: none) is what the connection failed with, for the log.
fn report(w: &mut Worker, probe: &Job, verdict: Verdict, os_error: i32) {
    let failure = match verdict {
        Verdict::Down(failure) => Some(failure),
        _ => None,
    };
    let check = &probe.check;
    let now = cached_time_sec();
    let released = Lease::release(probe.scheduled, probe.interval_ms);
    let recorded = w.health.record_probe(probe.slot, probe.gen, probe.claimed, released, now, failure, |counters| {
        counters.record(failure.is_none(), check.rise, check.fall)
    });
    // Applied to the lists at the next turn of the event loop, with every
    // other verdict of this one, in one pass per list (a verdict applied
    // at once cost a walk of its list each: thousands of peers going down
    // together, or at start, stalled the worker for as long as it took).
    let Some(Some(transition)) = recorded else { return };
    let text = match (transition, failure) {
        (Transition::WentDown, Some(f)) if os_error != 0 => {
            format!("down ({f}: {os_error}: {})", os_error_text(os_error))
        }
        (Transition::WentDown, Some(f)) => format!("down ({f})"),
        (Transition::WentDown, None) => "down".to_string(),
        (Transition::WentUp, _) => "up".to_string(),
    };
    let line = format!("health check: server {} of upstream \"{}\" is {text}", probe.peer, probe.upstream);
    w.transitions.push((probe.slot, line));
    if !w.apply_soon.is_set() {
        w.apply_soon.add(0);
    }
}

//! The probes of the active health checks, on each worker's event loop.
//!
//! Every worker runs one tick timer (every 100 ms, or the smallest
//! `interval` of the configuration if shorter). Each tick walks the health
//! zone's slots ([`crate::zone::health`]): for a slot of one of its cycle's
//! checked upstreams, or of a run-time upstream of the dyups registry whose
//! list carries checks, it applies the slot's health to the peer lists
//! when it changed (the registry's current list for a run-time upstream,
//! read inside a grace-period section), and, when the slot's lease is due,
//! claims it (one CAS) and
//! starts a probe: a non-blocking connection through
//! `ngx_event_connect_peer`, whose read, write and timeout events come back
//! here. `type=tcp` peeks one byte once connected (up on a byte or EAGAIN,
//! as nginx_upstream_check_module); `type=http` sends `check_http_send` and
//! reads the status line ([`HttpProbe`]). The lease holder records the
//! result and releases the lease due one interval after the probe was due
//! (not after it started: ticks come up to 100 ms late, which would stretch
//! every interval), so the probes of a peer are `interval` apart whatever
//! the number of workers. Nothing here blocks; nothing allocates under a lock.

use core::ffi::c_void;
use core::mem::zeroed;
use core::ptr;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::collections::HashMap;
use std::rc::Rc;

use dynamic_upstream_core::health::check_conf::{CheckConf, CheckType};
use dynamic_upstream_core::health::probe::{Counters, Failure, HttpProbe, Lease, Transition, Verdict};
use dynamic_upstream_core::Address;
use ngx::ffi::{
    ngx_cached_time, ngx_close_connection, ngx_connection_log_error_e_NGX_ERROR_ERR, ngx_connection_t,
    ngx_current_msec, ngx_cycle, ngx_cycle_t, ngx_event_connect_peer, ngx_event_get_peer, ngx_event_t, ngx_exiting,
    ngx_handle_read_event, ngx_handle_write_event, ngx_http_upstream_rr_peers_t, ngx_int_t, ngx_msec_t,
    ngx_peer_connection_t, ngx_pid, ngx_quit, ngx_str_t, ngx_terminate, NGX_AGAIN, NGX_LOG_WARN, NGX_OK,
};
use ngx::ffi::{ngx_post_event, ngx_posted_events};

use crate::dyups::registry::{Dyups, ReadSection};
use crate::dyups::worker::is_front;
use crate::nginx::entry::request_guard;
use crate::nginx::log::log;
use crate::nginx::module_hooks::InitModule;
use crate::nginx::peer_list::list_peers;
use crate::nginx::process::in_running_process;
use crate::nginx::sockaddr::PeerAddress;
use crate::nginx::upstreams::{str_eq, Upstream};
use crate::zone::health::{configuration_number, set_peer_health, set_running, HealthZone};
use crate::zone::upstream::check_of;
use crate::Module;
use ngx::http::HttpModuleMainConf;

/// The longest time between two ticks.
const TICK_MS: u32 = 100;
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
    primary: Option<*mut ngx_http_upstream_rr_peers_t>,
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
}

/// One probe in flight (boxed: nginx holds pointers into it).
struct Probe {
    slot: usize,
    gen: u32,
    claimed: u64,
    /// When the probe was due (or started, if it is an interval late).
    scheduled: u32,
    check: Rc<CheckConf>,
    upstream: String,
    /// The peer's name (the address probed differs with `port=`).
    peer: String,
    address: PeerAddress,
    name: ngx_str_t,
    pc: ngx_peer_connection_t,
    timeout: ngx_event_t,
    http: HttpProbe,
    sent: usize,
}

struct Worker {
    health: HealthZone,
    /// The configuration number it was started for.
    cycle: u64,
    /// The dyups registry's generation the run-time slots were resolved at.
    registry: Option<u64>,
    known: Vec<Option<Known>>,
    probes: HashMap<usize, Box<Probe>>,
    tick_ms: ngx_msec_t,
    tick: ngx_event_t,
    /// The tick event's `data` (nginx's timer code reads it as a connection).
    tick_connection: ngx_connection_t,
}

/// This worker's prober (null in the master, and without checks).
static mut WORKER: *mut Worker = ptr::null_mut();

/// The worker's prober.
///
/// # Safety
/// The worker's only thread, with no other reference to it alive.
unsafe fn worker<'a>() -> Option<&'a mut Worker> {
    // SAFETY: per the contract.
    unsafe { WORKER.as_mut() }
}

fn exiting() -> bool {
    // SAFETY: plain reads of nginx's process flags, written by this thread
    // (or its signal handler, as nginx's own loop reads them).
    unsafe { ngx_exiting != 0 || ngx_quit != 0 || ngx_terminate != 0 }
}

fn now_msec() -> u32 {
    // SAFETY: a plain read of nginx's clock, which only this thread writes.
    unsafe { ngx_current_msec as u32 }
}

/// init_process: starts the tick if the cycle has checks.
pub fn start(cycle: &ngx_cycle_t) {
    if !in_running_process() {
        // The cache manager and loader run init_process too, but leave
        // without exit_process: they do not probe. The one process of
        // `master_process off` does (else its checked peers, down by
        // default, would never come up).
        return;
    }
    let Some(health) = HealthZone::running() else { return };
    let intervals = checked_upstreams(cycle).into_iter().map(|(_, t)| t.check.interval_ms);
    let tick_ms = intervals.fold(TICK_MS, u32::min);
    let worker = Box::into_raw(Box::new(Worker {
        health,
        cycle: configuration_number(),
        registry: None,
        known: (0..health.len()).map(|_| None).collect(),
        probes: HashMap::new(),
        tick_ms: tick_ms as ngx_msec_t,
        // SAFETY: plain C structs, all-zero is their initial state.
        tick: unsafe { zeroed() },
        // SAFETY: as above.
        tick_connection: unsafe { zeroed() },
    }));
    // SAFETY: the worker's only thread; the box lives until release_all.
    unsafe {
        WORKER = worker;
        let w = &mut *worker;
        w.tick_connection.fd = -1;
        w.tick.handler = Some(on_tick);
        w.tick.log = (*ngx_cycle).log;
        w.tick.data = ptr::addr_of_mut!(w.tick_connection).cast();
        w.tick.set_cancelable(1);
        ngx::ffi::ngx_add_timer(&mut w.tick, w.tick_ms);
    }
}

/// exit_process: closes the probes in flight (unreported: their leases
/// expire) and frees the prober.
pub fn release_all() {
    // SAFETY: the worker's only thread; WORKER is cleared before the box
    // is dropped.
    unsafe {
        let worker = WORKER;
        if worker.is_null() {
            return;
        }
        WORKER = ptr::null_mut();
        let mut w = Box::from_raw(worker);
        if w.tick.timer_set() != 0 {
            ngx::ffi::ngx_del_timer(&mut w.tick);
        }
        for (_, probe) in w.probes.drain() {
            close(probe);
        }
    }
}

/// init_module (master), before the state files are restored: makes the
/// new cycle's health zone (none without checks) the running one; if a reload gave
/// it a new size, the previous zone's records move into it (those of the
/// configuration upstreams this cycle still checks). Returns how many
/// run-time upstreams' servers did not fit, for [`begin_cycle`].
pub fn set_zone(init: &InitModule) -> usize {
    let zone = Module::main_conf(init.cycle()).map_or(ptr::null_mut(), |main| main.check_zone);
    let names: Vec<String> = checked_upstreams(init.cycle()).into_iter().map(|(upstream, _)| upstream.name()).collect();
    let names: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    // SAFETY: in init_module, the new cycle's health zone (initialised) or
    // null.
    let set = |runtime_checked: &dyn Fn(&[u8]) -> bool| unsafe { set_running(zone, &names, runtime_checked) };
    // Under the registry's lock: a worker of the previous configuration
    // changing a run-time upstream either did before (its records move) or
    // finds the old records superseded under it and answers 503. Records
    // of run-time upstreams the registry no longer has (a reload that
    // replaced it) stay behind.
    match Dyups::get() {
        Some(dyups) => dyups.while_write_locked(set),
        None => set(&|_| false),
    }
}

/// init_module (master, after the state files were restored): gives
/// every peer of the cycle's checked upstreams its slot, keeping the
/// counters of a peer that had one (a reload) and setting its health bit
/// from them; frees the slots of peers that are gone. A peer the zone has
/// no room for stays unchecked (the error says so, with the
/// `not_carried` run-time servers of [`set_zone`]; failing init_module
/// would stop nginx).
/// In the master's init_module, after [`set_zone`].
pub fn begin_cycle(init: &InitModule, not_carried: usize) -> Result<(), String> {
    let cycle = init.cycle();
    let Some(health) = HealthZone::running() else {
        return Ok(());
    };
    health.begin_cycle();
    // SAFETY: a plain read of nginx's clock, which only this thread writes.
    let now = unsafe { ngx_current_msec } as u32;
    let mut keep = vec![false; health.len()];
    let mut unchecked = 0usize;
    let mut spread = 0u32;
    let checked = checked_upstreams(cycle);
    for (upstream, primary, check) in checked.into_iter().filter_map(|(u, t)| Some((u, t.primary?, t.check))) {
        // SAFETY: the primary list of an upstream of the new cycle, which
        // only this process reaches yet.
        let (upstream, peers) = (upstream.name(), unsafe { list_peers(primary) });
        let upstream = upstream.as_bytes();
        for name in peers.into_iter().map(|p| p.name.into_bytes()) {
            // The C module's random start: a thousand peers do not connect
            // in one tick.
            spread = spread.wrapping_add(7919);
            let due = now.wrapping_add(spread % check.interval_ms.min(1000));
            let Some(index) = health.find_or_claim(upstream, &name, Counters::new(check.default_down), due) else {
                unchecked += 1;
                continue;
            };
            keep[index] = true;
            // A carried slot is due on the new schedule (the interval may
            // have changed): its lease from the old one could be a day away.
            health.slot(index).lease().store(Lease::due_at(due).pack(), Release);
            // SAFETY: as above.
            unsafe { set_peer_health(primary, &name, health.slot(index).counters().down) };
        }
    }
    for (index, slot) in health.slots() {
        // Run-time upstreams' slots live as long as their upstreams, which
        // the dyups registry keeps across reloads.
        if slot.is_live() && !slot.is_runtime() && !keep[index] {
            health.free(index);
        }
    }
    if unchecked > 0 || not_carried > 0 {
        return Err(format!(
            "the health zone holds {} checked peers: {} peers are not checked; raise \"check_shm_size\"",
            health.len(),
            unchecked + not_carried
        ));
    }
    Ok(())
}

/// The checked zone upstreams of `cycle` (this process's, or the new one
/// in init_module).
fn checked_upstreams(cycle: &ngx_cycle_t) -> Vec<(Upstream, Target)> {
    let mut checked = Vec::new();
    for upstream in Upstream::of_cycle(cycle) {
        let Some(check) = check_of(upstream) else { continue };
        if is_front(upstream) {
            // Served by the dyups registry in this worker: its peer.data
            // is the front, not a peer list.
            continue;
        }
        let primary = upstream.conf().peer.data.cast::<ngx_http_upstream_rr_peers_t>();
        if upstream.zone().is_some() && !primary.is_null() {
            checked.push((upstream, Target { primary: Some(primary), check: Rc::new(check) }));
        }
    }
    checked
}

unsafe extern "C" fn on_tick(ev: *mut ngx_event_t) {
    // SAFETY: the worker's only thread; no other reference is alive in a
    // timer handler.
    if unsafe { worker() }.is_some_and(|w| !w.health.is_running(w.cycle)) {
        // `master_process off` after a reload: nginx runs no new
        // init_process and sets up no connections for the new cycle (every
        // connect fails from then on), and this prober's zone and lists
        // may be gone. It stops; its event (in the freed box) is not
        // touched again.
        log(NGX_LOG_WARN, "health checks stop: a reload of a single process (master_process off) cannot probe; peers keep their last health");
        release_all();
        return;
    }
    let _ = request_guard(|| {
        // SAFETY: the worker's only thread; no other reference is alive in
        // a timer handler.
        if let Some(w) = unsafe { worker() } {
            if !exiting() {
                tick(w);
            }
        }
        NGX_OK as ngx_int_t
    });
    // SAFETY: the tick event is the worker's, in its box.
    unsafe {
        if !exiting() {
            if let Some(w) = worker() {
                ngx::ffi::ngx_add_timer(ev, w.tick_ms);
            }
        }
    }
}

fn tick(w: &mut Worker) {
    if !w.health.in_use() {
        return;
    }
    let now = now_msec();
    // SAFETY: a plain read of this process's pid.
    let pid = unsafe { ngx_pid } as u32;
    let current_cycle = w.health.is_current_cycle();
    let registry = Dyups::get().map(|d| d.generation());
    if registry != w.registry {
        // A run-time upstream was replaced or deleted: its checks, and the
        // list its servers' health goes to, are read again.
        w.registry = registry;
        for known in w.known.iter_mut() {
            if known.as_ref().is_some_and(|k| k.runtime) {
                *known = None;
            }
        }
    }
    for index in 0..w.health.len() {
        let slot = w.health.slot(index);
        if !slot.is_live() {
            w.known[index] = None;
            continue;
        }
        let gen = slot.gen();
        if !w.known[index].as_ref().is_some_and(|k| k.gen == gen) {
            w.known[index] = resolve(w.health, index, gen);
        }
        let Some(target) = w.known[index].as_ref().and_then(|k| k.target.clone()) else { continue };
        apply(w, index);
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
        let lease = slot.lease();
        if lease.compare_exchange(word, claimed, AcqRel, Acquire).is_ok() {
            let due = Lease::unpack(word).until;
            let late = now.wrapping_sub(due) >= target.check.interval_ms;
            start_probe(w, index, claimed, if late { now } else { due });
        }
    }
}

/// What this worker's cycle makes of the slot at `index` (generation `gen`).
fn resolve(health: HealthZone, index: usize, gen: u32) -> Option<Known> {
    let slot = health.slot(index);
    let runtime = slot.is_runtime();
    let (upstream, name) = slot.key_copy(gen)?;
    let target = if runtime {
        let check = runtime_check(&upstream);
        if check.is_none() {
            free_orphan(health, index, gen, &upstream);
            return None;
        }
        check.map(|check| Target { primary: None, check: Rc::new(check) })
    } else {
        // SAFETY: at run time ngx_cycle is this worker's cycle.
        checked_upstreams(unsafe { &*ngx_cycle })
            .into_iter()
            .find(|(u, _)| str_eq(&u.conf().host, &upstream))
            .map(|(_, target)| target)
    };
    Some(Known { gen, upstream, name, runtime, target, applied: None })
}

/// Frees the record of a server of run-time upstream `upstream` that the
/// registry no longer has with checks (deleted, or replaced without them,
/// by a worker of a previous configuration whose records a reload moved;
/// or the upstream was lost with a registry a reload replaced): decided
/// and freed under the registry's read lock, so that no change of that
/// upstream (which takes its write lock) comes in between.
fn free_orphan(health: HealthZone, index: usize, gen: u32, upstream: &str) {
    let Some(dyups) = Dyups::get() else {
        health.free_generation(index, gen);
        return;
    };
    if !dyups.is_current_cycle() || !health.is_current_cycle() {
        // A worker of a previous configuration: its registry may not be the
        // one the records now belong to (a reload that replaced it).
        return;
    }
    dyups.while_read_locked(|| {
        if runtime_check(upstream).is_none() {
            health.free_generation(index, gen);
        }
    });
}

/// The checks of run-time upstream `upstream`'s current list.
fn runtime_check(upstream: &str) -> Option<CheckConf> {
    let dyups = Dyups::get()?;
    let section = ReadSection::new(&dyups);
    let record = dyups.record(upstream).filter(|r| !r.peers.is_null())?;
    section.check_of(record.peers)
}

/// Sets the health bit of peer `name` of run-time upstream `upstream` in
/// the registry's current list.
fn set_runtime_health(upstream: &str, name: &[u8], down: bool) {
    let Some(dyups) = Dyups::get() else { return };
    let section = ReadSection::new(&dyups);
    if let Some(record) = dyups.record(upstream).filter(|r| !r.peers.is_null()) {
        // SAFETY: a registry list read in this section is not freed before
        // it ends; its peers are written only under its write lock.
        unsafe { set_peer_health(record.peers, name, down) };
    }
    drop(section);
}

/// Applies the slot's health to this cycle's lists if it changed since.
fn apply(w: &mut Worker, index: usize) {
    let slot = w.health.slot(index);
    let Some(known) = w.known[index].as_mut() else { return };
    let Some(target) = &known.target else { return };
    let transitions = slot.transitions();
    if known.applied == Some(transitions) {
        return;
    }
    let down = slot.counters().down;
    match target.primary {
        // SAFETY: a checked zone upstream's shared primary list, which
        // lives as long as this worker's cycle.
        Some(primary) => unsafe {
            set_peer_health(primary, &known.name, down);
        },
        None => set_runtime_health(&known.upstream, &known.name, down),
    }
    known.applied = Some(transitions);
}

fn start_probe(w: &mut Worker, index: usize, claimed: u64, scheduled: u32) {
    let Some(known) = w.known[index].as_ref() else { return };
    let Some(target) = &known.target else { return };
    let check = target.check.clone();
    let address = match Address::parse(&String::from_utf8_lossy(&known.name)) {
        Ok(Address::Inet(mut a)) if check.port != 0 => {
            a.set_port(check.port);
            PeerAddress::new(&Address::Inet(a))
        }
        Ok(a) => PeerAddress::new(&a),
        // Names come from validated addresses; one that does not read back
        // is not probed.
        Err(_) => return,
    };
    let raw = Box::into_raw(Box::new(Probe {
        slot: index,
        gen: known.gen,
        claimed,
        scheduled,
        upstream: known.upstream.clone(),
        peer: String::from_utf8_lossy(&known.name).into_owned(),
        address,
        name: ngx_str_t::empty(),
        // SAFETY: plain C structs, all-zero is their initial state.
        pc: unsafe { zeroed() },
        // SAFETY: as above.
        timeout: unsafe { zeroed() },
        http: HttpProbe::new(check.expect_alive),
        sent: 0,
        check: check.clone(),
    }));
    // SAFETY: `raw` is the fresh box, owned here until it goes into
    // `w.probes` (or is dropped); the connection's sockaddr and name point
    // into it and the connection is closed before it is dropped.
    let rc = unsafe {
        let p = &mut *raw;
        let name = p.address.name();
        p.name = ngx_str_t { len: name.len(), data: name.as_ptr().cast_mut() };
        p.pc.sockaddr = ptr::addr_of_mut!(p.address.sockaddr).cast();
        p.pc.socklen = p.address.socklen;
        p.pc.name = &mut p.name;
        p.pc.get = Some(ngx_event_get_peer);
        p.pc.log = (*ngx_cycle).log;
        p.pc.set_log_error(ngx_connection_log_error_e_NGX_ERROR_ERR);
        ngx_event_connect_peer(&mut p.pc)
    };
    // SAFETY: as above.
    let probe = unsafe { Box::from_raw(raw) };
    if rc != NGX_OK as ngx_int_t && rc != NGX_AGAIN as ngx_int_t {
        // NGX_ERROR, or NGX_DECLINED (refused at once): no connection left.
        report(w, &probe, Verdict::Down(Failure::Connect));
        return;
    }
    // SAFETY: a fresh connection of this worker; its data points at the
    // boxed probe, which stays in `w.probes` until the connection is closed.
    unsafe {
        let c = (*raw).pc.connection;
        (*c).data = raw.cast::<c_void>();
        (*(*c).read).handler = Some(on_read);
        (*(*c).write).handler = Some(on_write);
        let timeout = ptr::addr_of_mut!((*raw).timeout);
        (*timeout).handler = Some(on_timeout);
        (*timeout).data = c.cast();
        (*timeout).log = (*raw).pc.log;
        (*timeout).set_cancelable(1);
        ngx::ffi::ngx_add_timer(timeout, check.timeout_ms as ngx_msec_t);
    }
    w.probes.insert(index, probe);
    if rc == NGX_OK as ngx_int_t {
        // Connected at once (a unix socket): no write event may come. Run
        // the write handler from the event loop, not from here, where the
        // tick still borrows the worker.
        // SAFETY: the live connection's write event, posted as nginx posts
        // its own; ngx_close_connection drops it if the probe ends first.
        unsafe { ngx_post_event((*(*raw).pc.connection).write, ptr::addr_of_mut!(ngx_posted_events)) };
    }
}

unsafe extern "C" fn on_write(ev: *mut ngx_event_t) {
    let _ = request_guard(|| {
        // SAFETY: nginx calls this with a probe's write event.
        unsafe { event(ev, |probe| if probe.check.check_type == CheckType::Tcp { peek(probe) } else { send(probe) }) };
        NGX_OK as ngx_int_t
    });
}

unsafe extern "C" fn on_read(ev: *mut ngx_event_t) {
    let _ = request_guard(|| {
        // SAFETY: nginx calls this with a probe's read event.
        unsafe {
            event(ev, |probe| if probe.check.check_type == CheckType::Tcp { peek(probe) } else { receive(probe) })
        };
        NGX_OK as ngx_int_t
    });
}

unsafe extern "C" fn on_timeout(ev: *mut ngx_event_t) {
    let _ = request_guard(|| {
        // SAFETY: nginx calls this with a probe's timeout event.
        unsafe { event(ev, |_| Verdict::Down(Failure::Timeout)) };
        NGX_OK as ngx_int_t
    });
}

/// Runs `step` on the probe of `ev` and ends the probe on a verdict, or
/// at once when the worker is exiting.
///
/// # Safety
/// `ev` is a read, write or timeout event of a probe's connection (its
/// `data` is the connection, whose `data` is the probe).
unsafe fn event(ev: *mut ngx_event_t, step: impl FnOnce(&mut Probe) -> Verdict) {
    // SAFETY: per the contract; the probe is boxed in `w.probes` and this
    // is the only reference to it until it is taken out below.
    let (slot, verdict) = unsafe {
        let probe = &mut *(*(*ev).data.cast::<ngx_connection_t>()).data.cast::<Probe>();
        let verdict = if exiting() { Verdict::NeedMore } else { step(probe) };
        (probe.slot, verdict)
    };
    if verdict == Verdict::NeedMore && !exiting() {
        return;
    }
    // SAFETY: the worker's only thread, in an event handler.
    let Some(w) = (unsafe { worker() }) else { return };
    let Some(probe) = w.probes.remove(&slot) else { return };
    // SAFETY: the probe's connection and timer are live; close() ends them.
    let probe = unsafe { close(probe) };
    // Not into a zone a `master_process off` reload replaced (the next
    // tick starts the prober again).
    if !exiting() && w.health.is_running(w.cycle) {
        report(w, &probe, verdict);
    }
}

/// `type=tcp`: connected, and the connection neither failed nor closed.
fn peek(probe: &mut Probe) -> Verdict {
    let mut byte = 0u8;
    // SAFETY: the probe's live connection; one byte into a local.
    let (n, err) = unsafe {
        let fd = (*probe.pc.connection).fd;
        let n = libc::recv(fd, ptr::addr_of_mut!(byte).cast(), 1, libc::MSG_PEEK);
        (n, *libc::__errno_location())
    };
    if n == 1 || (n == -1 && err == libc::EAGAIN) {
        Verdict::Up
    } else if n == 0 {
        Verdict::Down(Failure::Closed)
    } else {
        Verdict::Down(Failure::Connect)
    }
}

/// `type=http`, writable: sends what is left of the request.
fn send(probe: &mut Probe) -> Verdict {
    let request = probe.check.send.as_bytes();
    // SAFETY: the probe's live connection; c->send writes from our bytes.
    unsafe {
        let c = probe.pc.connection;
        while probe.sent < request.len() {
            let Some(send) = (*c).send else { return Verdict::Down(Failure::Io) };
            let rest = &request[probe.sent..];
            let n = send(c, rest.as_ptr().cast_mut(), rest.len());
            if n == NGX_AGAIN as isize {
                if ngx_handle_write_event((*c).write, 0) != NGX_OK as ngx_int_t {
                    return Verdict::Down(Failure::Io);
                }
                return Verdict::NeedMore;
            }
            if n <= 0 {
                return Verdict::Down(if probe.sent == 0 { Failure::Connect } else { Failure::Io });
            }
            probe.sent += n as usize;
        }
        // All sent: with a level-triggered event method (`use poll` or
        // `select`) nginx stops watching a ready write event only here;
        // else it would call on_write again and again until the answer.
        if ngx_handle_write_event((*c).write, 0) != NGX_OK as ngx_int_t {
            return Verdict::Down(Failure::Io);
        }
    }
    probe.http.verdict()
}

/// `type=http`, readable: feeds the response to the status-line parser.
fn receive(probe: &mut Probe) -> Verdict {
    let mut buf = [0u8; READ_CHUNK];
    // SAFETY: the probe's live connection; c->recv reads into our buffer.
    unsafe {
        let c = probe.pc.connection;
        loop {
            let Some(recv) = (*c).recv else { return Verdict::Down(Failure::Io) };
            let n = recv(c, buf.as_mut_ptr(), buf.len());
            if n > 0 {
                let verdict = probe.http.feed(&buf[..n as usize]);
                if verdict != Verdict::NeedMore {
                    return verdict;
                }
            } else if n == 0 {
                return probe.http.closed();
            } else if n == NGX_AGAIN as isize {
                if ngx_handle_read_event((*c).read, 0) != NGX_OK as ngx_int_t {
                    return Verdict::Down(Failure::Io);
                }
                return Verdict::NeedMore;
            } else {
                return Verdict::Down(if probe.sent == 0 { Failure::Connect } else { Failure::Io });
            }
        }
    }
}

/// Closes a probe's connection and removes its timer.
///
/// # Safety
/// The probe's connection, if any, is open.
unsafe fn close(mut probe: Box<Probe>) -> Box<Probe> {
    // SAFETY: per the contract.
    unsafe {
        if probe.timeout.timer_set() != 0 {
            ngx::ffi::ngx_del_timer(&mut probe.timeout);
        }
        if !probe.pc.connection.is_null() {
            ngx_close_connection(probe.pc.connection);
            probe.pc.connection = ptr::null_mut();
        }
    }
    probe
}

/// The lease holder's record of a probe's verdict; dropped if the lease
/// is no longer this probe's (the slot was freed, or the lease expired).
fn report(w: &mut Worker, probe: &Probe, verdict: Verdict) {
    let failure = match verdict {
        Verdict::Down(failure) => Some(failure),
        _ => None,
    };
    let check = &probe.check;
    // SAFETY: a plain read of nginx's cached time.
    let now = unsafe { (*ngx_cached_time).sec };
    let released = Lease::release(probe.scheduled, check.interval_ms);
    let recorded = w.health.record_probe(probe.slot, probe.gen, probe.claimed, released, now, failure, |counters| {
        counters.record(failure.is_none(), check.rise, check.fall)
    });
    let Some(transition) = recorded else { return };
    apply(w, probe.slot);
    if let Some(transition) = transition {
        let text = match (transition, failure) {
            (Transition::WentDown, Some(f)) => format!("down ({f})"),
            (Transition::WentDown, None) => "down".to_string(),
            (Transition::WentUp, _) => "up".to_string(),
        };
        log(NGX_LOG_WARN, &format!("health check: server {} of upstream \"{}\" is {text}", probe.peer, probe.upstream));
    }
}

//! Each worker's view of the dyups registry, and how requests reach it.
//!
//! `proxy_pass http://$host` looks the host up in the worker's own
//! `umcf->upstreams` array. For every name in the registry, a worker keeps
//! a *front*: the `upstream {}` block of that name from the configuration,
//! or a small `ngx_http_upstream_srv_conf_t` of its own that it adds to the
//! array. A front's `peer.init` is [`init_front_peer`], which hands each
//! request to the front's current *version*.
//!
//! A version is one state of the upstream in this worker: a scratch
//! upstream on which the balancer's own directive handler and
//! `init_upstream` ran (so every built-in balancer works, consistent hash
//! included, without reimplementing any), with its `peer.data` pointing at
//! the registry's shared peer list. A version lives in its own pool, freed
//! when a newer version replaced it and its last request finished.
//!
//! Workers sync when the registry's generation moved: checked with one
//! atomic load at the start of every request (POST_READ phase), again in
//! [`init_front_peer`] inside a grace-period section (so it never picks up
//! a list that was retired meanwhile), and on a timer
//! (`dyups_read_msg_timeout`) so idle workers catch up too.
//!
//! A worker that cannot set a version up (no memory) drops the front's
//! previous version, whose list the change retired: requests get 502. It
//! logs that once; only the timer tries again, 1 s later, then after a
//! delay that doubles up to 60 s (back to 1 s when the upstream changes
//! again), and logs a notice once it works.

#![allow(clippy::disallowed_types)] // nginx's upstream table and the fronts' configurations (see clippy.toml)

use core::ffi::c_void;
use core::mem::{size_of, zeroed};
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use crate::dyups::grace::{hold_list, release_list};
use crate::dyups::registry::{Dyups, ReadSection, RecordView};
use crate::nginx::balancers::{balancer_directive, run_directive, BALANCER_CONF_WORDS};
use crate::nginx::entry::request_guard;
use crate::nginx::log::log;
use crate::nginx::module_hooks::PostReadHandler;
use crate::nginx::peer_stats::wrap_dyups_free;
use crate::nginx::process;
use crate::nginx::sockaddr::PeerAddress;
use crate::nginx::timer::Timer;
use crate::nginx::upstreams::{configured_upstreams, http_conf_ctx, Upstream};
use crate::nginx::variables::evaluate_key;
use crate::nginx::version::{free_worker_tables, UPSTREAM_MODIFY};
use crate::zone::upstream::keeps_round_robin_peers;
use dynamic_upstream_core::dyups::{split_hash_key, KeyPart};
use dynamic_upstream_core::{Address, Balancer};
use ngx::ffi::{
    ngx_array_create, ngx_array_push, ngx_array_t, ngx_conf_t, ngx_create_pool, ngx_cycle, ngx_destroy_pool,
    ngx_http_complex_value_t, ngx_http_request_t, ngx_http_upstream_init_round_robin, ngx_http_upstream_rr_peers_t,
    ngx_http_upstream_server_t, ngx_http_upstream_srv_conf_t, ngx_int_t, ngx_log_t, ngx_msec_t, ngx_palloc,
    ngx_pcalloc, ngx_peer_connection_t, ngx_pnalloc, ngx_pool_cleanup_add, ngx_pool_t, ngx_str_t, ngx_uint_t, NGX_BUSY,
    NGX_DECLINED, NGX_ERROR, NGX_HTTP_UPSTREAM_BACKUP, NGX_HTTP_UPSTREAM_CREATE, NGX_HTTP_UPSTREAM_DOWN,
    NGX_HTTP_UPSTREAM_FAIL_TIMEOUT, NGX_HTTP_UPSTREAM_MAX_CONNS, NGX_HTTP_UPSTREAM_MAX_FAILS, NGX_HTTP_UPSTREAM_WEIGHT,
    NGX_LOG_ERR, NGX_LOG_NOTICE, NGX_LOG_WARN, NGX_OK,
};

/// One name's entry point in this worker.
struct Front {
    /// The upstream `proxy_pass` finds: from the configuration, or ours.
    uscf: *mut ngx_http_upstream_srv_conf_t,
    /// An upstream of the configuration stays in nginx's table, in its
    /// place, even while deleted (its peer.init answers 502): the table is
    /// what tells the API that a name is the configuration's, and a DELETE
    /// must tombstone it, not unlink it, whatever this worker last synced.
    from_config: bool,
    /// A run-time upstream named like an implicit upstream of the
    /// configuration (see [`add_to_array`]).
    before_implicit: bool,
    /// An upstream of the configuration with `server NAME resolve` (nginx
    /// 1.27.3 and later): nginx's resolver changes its zone list through
    /// `peer.data` (`ngx_http_upstream_zone_set_single`), so the front is
    /// never installed there (it wrote past this struct, hunt 23); the
    /// REST API refuses to replace or delete such an upstream.
    resolving: bool,
    in_array: bool,
    /// The registry version this front shows (0: none yet).
    version_id: u64,
    /// Null when the upstream is deleted (requests get 502).
    current: *mut Version,
}

/// One state of an upstream in this worker.
struct Version {
    pool: *mut ngx_pool_t,
    /// Scratch upstream set up by the balancer; `peer.data` is shared.
    uscf: *mut ngx_http_upstream_srv_conf_t,
    /// Parts of a `hash` key, evaluated per request.
    hash_key: Vec<KeyPart>,
    /// The hash module's srv conf of the scratch upstream (hash only).
    hash_conf: *mut ngx_http_complex_value_t,
    /// The random module's srv conf (random only): its cached table is
    /// per worker and freed with the version (as consistent hash's, where
    /// nginx builds it per worker: `free_worker_tables`).
    random_conf: *mut c_void,
    requests: usize,
    superseded: bool,
}

/// An upstream of the configuration, as a name's front sees it.
#[derive(Clone, Copy)]
enum ConfigUpstream {
    /// An `upstream {}` block: the front.
    Block(*mut ngx_http_upstream_srv_conf_t),
    /// Only implicit upstreams (`proxy_pass http://NAME;`) of that name.
    Implicit,
}

#[derive(Default)]
struct WorkerView {
    /// Registry version last synced (None: never).
    version: Option<u64>,
    /// Lower-case name → front. Fronts are never freed: the config's
    /// upstreams reference them until the cycle ends.
    fronts: HashMap<String, Box<Front>>,
    /// The configuration's upstreams by lower-case name, for new fronts
    /// (taken at the first sync, before this worker added any of its own).
    config: Option<HashMap<String, ConfigUpstream>>,
    /// Lower-case names this worker could not set up (no memory, say):
    /// the timer tries them again (see [`note_outcome`]).
    failed: HashMap<String, Failure>,
}

/// An upstream this worker could not set up, and when to try again.
struct Failure {
    /// The registry version that failed.
    version: u64,
    /// Wait before the next try: doubles from [`FIRST_RETRY`] up to
    /// [`LAST_RETRY`].
    delay: ngx_msec_t,
    /// `ngx_current_msec` of the next try.
    next_try: ngx_msec_t,
}

const FIRST_RETRY: ngx_msec_t = 1000;
const LAST_RETRY: ngx_msec_t = 60_000;

thread_local! {
    // nginx workers are single-threaded: this is the worker's state.
    static VIEW: RefCell<WorkerView> = RefCell::new(WorkerView::default());
}

/// The registry generation this process last synced to ([`NEVER`]: none).
/// Process-local (one per worker), outside [`VIEW`] so that a request reads
/// it without a thread-local borrow.
static SYNCED: AtomicU64 = AtomicU64::new(NEVER);
const NEVER: u64 = u64::MAX;

/// The POST_READ phase handler [`sync_on_request`].
pub struct SyncOnRequest;

// SAFETY: sync_on_request takes any request, in any phase (it does not
// read it).
unsafe impl PostReadHandler for SyncOnRequest {
    const HANDLER: unsafe extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t = sync_on_request;
}

/// POST_READ phase handler: sync when the registry moved. When it did not
/// (nearly always), one load of the registry's generation and one of
/// [`SYNCED`], nothing else (no panic possible, so no guard).
unsafe extern "C" fn sync_on_request(_r: *mut ngx_http_request_t) -> ngx_int_t {
    let moved = Dyups::get().is_some_and(|dyups| dyups.generation() != SYNCED.load(Relaxed));
    if moved {
        request_guard(|| {
            sync_if_moved();
            NGX_DECLINED as ngx_int_t
        });
    }
    NGX_DECLINED as ngx_int_t
}

/// Syncs this worker if the registry's generation moved (requests and
/// the API: they never try an earlier failure again).
pub fn sync_if_moved() {
    sync_if_stale(false);
}

/// Syncs this worker if the registry's generation moved or, with
/// `retry_due` (the timer), if an upstream it could not set up is due for
/// another try.
fn sync_if_stale(retry_due: bool) {
    let Some(dyups) = Dyups::get() else { return };
    let current = dyups.generation();
    let now = current_msec();
    let stale = VIEW.with(|v| {
        let v = v.borrow();
        SYNCED.load(Relaxed) != current || (retry_due && v.failed.values().any(|f| f.next_try <= now))
    });
    if stale {
        sync(&dyups, retry_due, now);
    }
}

/// Brings the fronts up to the registry: rebuilds those whose upstream
/// changed since the last sync (all of them the first time, or after more
/// deletions than the registry remembers) and, with `retry_due`, tries
/// again those this worker could not set up whose delay has passed.
fn sync(dyups: &Dyups, retry_due: bool, now: ngx_msec_t) {
    let section = ReadSection::new(dyups);
    let seen = VIEW.with(|v| v.borrow().version);
    let changes = dyups.changes_since(&section, seen);
    VIEW.with(|view| {
        let mut view = view.borrow_mut();
        let view = &mut *view;
        let config = view.config.get_or_insert_with(config_upstreams_by_name);
        let mut retries = Vec::new();
        if retry_due {
            let due: Vec<String> = view
                .failed
                .iter()
                .filter(|(name, f)| {
                    f.next_try <= now && !changes.records.iter().any(|r| r.name.eq_ignore_ascii_case(name))
                })
                .map(|(name, _)| name.clone())
                .collect();
            for name in due {
                match dyups.record(&section, &name) {
                    Some(record) => retries.push(record),
                    // Gone from the registry: nothing to set up.
                    None => drop(view.failed.remove(&name)),
                }
            }
        }
        for record in changes.records.iter().cloned().chain(retries) {
            let key = record.name.to_ascii_lowercase();
            let front =
                view.fronts.entry(key.clone()).or_insert_with(|| Box::new(new_front(&record.name, config.get(&key))));
            if front.version_id != record.version {
                let ok = update_front(front, &record);
                note_outcome(&mut view.failed, key, &record, ok, now);
            }
        }
        if changes.complete {
            // Upstreams no longer in the registry were deleted.
            let listed: HashSet<String> = changes.records.iter().map(|r| r.name.to_ascii_lowercase()).collect();
            for (name, front) in view.fronts.iter_mut() {
                if !listed.contains(name) {
                    forget_deleted_front(front, u64::MAX);
                }
            }
        } else {
            for (version, name) in &changes.removed {
                if let Some(front) = view.fronts.get_mut(&name.to_ascii_lowercase()) {
                    forget_deleted_front(front, *version);
                }
            }
        }
        SYNCED.store(changes.generation, Relaxed);
        view.version = Some(changes.version);
    });
    drop(section);
}

/// Keeps `failed` up to date after an attempt to set `record` up: a new
/// failure (or a failure of a newer version) is logged and tried again
/// [`FIRST_RETRY`] later; a repeated one waits twice as long as the last
/// time (up to [`LAST_RETRY`]), unlogged; a success after a failure is
/// logged once.
fn note_outcome(failed: &mut HashMap<String, Failure>, key: String, record: &RecordView, ok: bool, now: ngx_msec_t) {
    if ok {
        if failed.remove(&key).is_some() && !record.deleted {
            log(NGX_LOG_NOTICE, &format!("dyups: upstream \"{}\" is set up again in this worker", record.name));
        }
        return;
    }
    match failed.get_mut(&key) {
        Some(f) if f.version == record.version => {
            f.delay = (f.delay * 2).min(LAST_RETRY);
            f.next_try = now + f.delay;
        }
        _ => {
            log(
                NGX_LOG_ERR,
                &format!(
                    "dyups: could not set up upstream \"{}\" in this worker; it answers 502 until it can (tried again \
                     after 1 s, then after twice the last wait, up to 60 s)",
                    record.name
                ),
            );
            failed.insert(key, Failure { version: record.version, delay: FIRST_RETRY, next_try: now + FIRST_RETRY });
        }
    }
}

/// nginx's cached time of the event loop, in milliseconds.
fn current_msec() -> ngx_msec_t {
    // SAFETY: a plain integer nginx updates in this (the only) thread.
    unsafe { ptr::read_volatile(ptr::addr_of!(ngx::ffi::ngx_current_msec)) }
}

/// Drops the version of an upstream whose record was deleted at version
/// `deleted` (its peer list is retired), unless this worker already shows a
/// later version of it (it was created again). A run-time upstream leaves
/// nginx's table. An upstream of this worker's configuration answers 502
/// like a deleted one: its record can only have gone if this worker is of
/// an older cycle and a newer configuration dropped the block.
fn forget_deleted_front(front: &mut Front, deleted: u64) {
    if front.version_id == 0 || front.version_id > deleted {
        return;
    }
    set_version(front, ptr::null_mut());
    if !front.from_config {
        remove_from_array(front);
    }
    front.version_id = 0;
}

/// The configuration's upstreams by lower-case name: its `upstream {}`
/// blocks, then the names that only implicit upstreams have.
fn config_upstreams_by_name() -> HashMap<String, ConfigUpstream> {
    // SAFETY: ngx_cycle is the running cycle in a worker, which has added
    // no front of its own to nginx's table yet; all its entries have a host.
    unsafe {
        let mut config: HashMap<String, ConfigUpstream> = configured_upstreams(ngx_cycle)
            .into_iter()
            .map(|u| (Upstream::from_raw(u).name().to_ascii_lowercase(), ConfigUpstream::Block(u)))
            .collect();
        if let Some(array) = upstreams_array() {
            let all =
                core::slice::from_raw_parts((*array).elts as *const *mut ngx_http_upstream_srv_conf_t, (*array).nelts);
            for &u in all {
                config.entry(Upstream::from_raw(u).name().to_ascii_lowercase()).or_insert(ConfigUpstream::Implicit);
            }
        }
        config
    }
}

fn new_front(name: &str, config: Option<&ConfigUpstream>) -> Front {
    let runtime = |before_implicit| Front {
        uscf: runtime_upstream(name),
        from_config: false,
        before_implicit,
        resolving: false,
        in_array: false,
        version_id: 0,
        current: ptr::null_mut(),
    };
    match config {
        Some(&ConfigUpstream::Block(uscf)) => Front {
            uscf,
            from_config: true,
            before_implicit: false,
            // SAFETY: an upstream block of the running configuration,
            // which outlives the worker's fronts.
            resolving: unsafe { Upstream::from_raw(uscf) }.resolves_any(),
            in_array: true,
            version_id: 0,
            current: ptr::null_mut(),
        },
        Some(ConfigUpstream::Implicit) => runtime(true),
        None => runtime(false),
    }
}

/// A bare upstream entry for `proxy_pass http://$host` to find (cycle
/// pool; lives as long as the cycle, like the configuration's).
fn runtime_upstream(name: &str) -> *mut ngx_http_upstream_srv_conf_t {
    // SAFETY: the cycle pool outlives every request of the cycle; a failed
    // allocation leaves a null that callers check.
    unsafe {
        let pool = (*ngx_cycle).pool;
        let uscf = ngx_pcalloc(pool, size_of::<ngx_http_upstream_srv_conf_t>()).cast::<ngx_http_upstream_srv_conf_t>();
        let host = ngx_pnalloc(pool, name.len()).cast::<u8>();
        if uscf.is_null() || host.is_null() {
            return ptr::null_mut();
        }
        ptr::copy_nonoverlapping(name.as_ptr(), host, name.len());
        (*uscf).host = ngx_str_t { len: name.len(), data: host };
        (*uscf).flags = NGX_HTTP_UPSTREAM_CREATE as ngx_uint_t | UPSTREAM_MODIFY;
        (*uscf).port = 0;
        (*uscf).no_port = 1;
        uscf
    }
}

/// Shows `record` through `front`; false if this worker could not set it
/// up (it then has no version: 502).
fn update_front(front: &mut Front, record: &RecordView) -> bool {
    if front.resolving {
        // The registry's record (from a dyups_upstream_conf, or made before
        // the configuration gave the upstream `resolve` servers) is not
        // shown: the configuration's servers stay.
        log(
            NGX_LOG_WARN,
            &format!(
                "dynamic upstream: upstream \"{}\" has servers with \"resolve\": its run-time replacement or deletion \
                 is not used (nginx's resolver changes its servers); remove its entry from dyups_upstream_conf and \
                 restart nginx",
                record.name
            ),
        );
        front.version_id = record.version;
        return true;
    }
    if front.uscf.is_null() {
        // The cycle pool had no room for it when the front was made.
        front.uscf = runtime_upstream(&record.name);
        if front.uscf.is_null() {
            return false;
        }
    }
    if record.deleted || !record.has_list() {
        set_version(front, ptr::null_mut());
        if !front.from_config {
            remove_from_array(front);
        }
        front.version_id = record.version;
        return true;
    }
    let Some(version) = build_version(record) else {
        // The previous version's list was retired by this very change and
        // is freed once the requests that could see it end: later requests
        // must not reach it. They get 502 until a retry works.
        set_version(front, ptr::null_mut());
        return false;
    };
    set_version(front, version);
    // SAFETY: the front's upstream lives as long as the cycle; only this
    // worker's requests read these fields.
    unsafe {
        (*front.uscf).peer.init = Some(init_front_peer);
        (*front.uscf).peer.data = (front as *mut Front).cast();
    }
    add_to_array(front);
    front.version_id = record.version;
    true
}

/// Makes `version` current; the old one is freed now if idle, or by its
/// last request.
fn set_version(front: &mut Front, version: *mut Version) {
    let old = core::mem::replace(&mut front.current, version);
    if !old.is_null() {
        // SAFETY: versions are only reached from fronts and requests of
        // this worker.
        unsafe {
            (*old).superseded = true;
            release_if_done(old);
        }
    }
    if version.is_null() && front.from_config && !front.resolving && !front.uscf.is_null() {
        // A deleted upstream of the configuration: static proxy_pass
        // references to it reach no peer (502) from now on. Never one with
        // `resolve` servers, whose peer.data nginx's resolver reads as its
        // list (see Front::resolving; review 24: a record of it leaving the
        // registry came here through forget_deleted_front).
        // SAFETY: as in update_front.
        unsafe {
            (*front.uscf).peer.init = Some(init_front_peer);
            (*front.uscf).peer.data = (front as *mut Front).cast();
        }
    }
}

/// # Safety
/// `version` is a live version of this worker.
unsafe fn release_if_done(version: *mut Version) {
    // SAFETY: per the contract.
    unsafe {
        if (*version).superseded && (*version).requests == 0 {
            let v = Box::from_raw(version);
            free_worker_tables(v.random_conf, v.hash_conf.cast());
            ngx_destroy_pool(v.pool);
        }
    }
}

/// Adds a run-time front to nginx's table of upstreams; one named like an
/// implicit upstream (`proxy_pass http://NAME;` creates one) goes before
/// it: `proxy_pass http://$host` takes the first match, and the upstream
/// created through the API must win. A literal `proxy_pass http://NAME;`
/// keeps its own, found when nginx read the configuration.
fn add_to_array(front: &mut Front) {
    if front.in_array || front.uscf.is_null() {
        return;
    }
    // SAFETY: the upstream main conf's array lives in the cycle pool; this
    // worker is its only user; all its entries have a host.
    unsafe {
        let Some(array) = upstreams_array() else { return };
        if ngx_array_push(array).is_null() {
            return;
        }
        // The push may have moved the elements.
        let elts = (*array).elts.cast::<*mut ngx_http_upstream_srv_conf_t>();
        let n = (*array).nelts - 1;
        let at = if front.before_implicit {
            let host = host_bytes(front.uscf);
            (0..n).find(|&i| host_bytes(*elts.add(i)).eq_ignore_ascii_case(host)).unwrap_or(n)
        } else {
            n
        };
        ptr::copy(elts.add(at), elts.add(at + 1), n - at);
        *elts.add(at) = front.uscf;
    }
    front.in_array = true;
}

/// # Safety
/// `uscf` is an upstream of the running cycle, or a front's.
unsafe fn host_bytes<'a>(uscf: *const ngx_http_upstream_srv_conf_t) -> &'a [u8] {
    // SAFETY: per the contract, `host` points at `len` bytes (or is empty).
    unsafe {
        let host = &(*uscf).host;
        if host.len == 0 {
            return &[];
        }
        core::slice::from_raw_parts(host.data, host.len)
    }
}

fn remove_from_array(front: &mut Front) {
    if !front.in_array {
        return;
    }
    // SAFETY: as in add_to_array.
    unsafe {
        let Some(array) = upstreams_array() else { return };
        let elts = (*array).elts.cast::<*mut ngx_http_upstream_srv_conf_t>();
        let n = (*array).nelts;
        if let Some(i) = (0..n).find(|&i| *elts.add(i) == front.uscf) {
            ptr::copy(elts.add(i + 1), elts.add(i), n - i - 1);
            (*array).nelts = n - 1;
        }
    }
    front.in_array = false;
}

/// # Safety
/// Called in a worker of a cycle with an http block.
unsafe fn upstreams_array() -> Option<*mut ngx_array_t> {
    use ngx::http::{HttpModuleMainConf, NgxHttpUpstreamModule};
    #[allow(clippy::disallowed_methods)] // this unsafe fn's contract: see clippy.toml
    // SAFETY: per the contract.
    unsafe {
        NgxHttpUpstreamModule::main_conf_mut(&*ngx_cycle).map(|umcf| ptr::addr_of_mut!(umcf.upstreams))
    }
}

/// Builds this worker's version of a registry record (see module docs).
fn build_version(record: &RecordView) -> Option<*mut Version> {
    let balancer = &record.balancer;
    let hash_key = match balancer {
        Balancer::Hash { key, .. } => split_hash_key(key).ok()?,
        _ => Vec::new(),
    };
    let peers = record.peers();
    // SAFETY: everything below is allocated from the version's own pool,
    // which lives until the version is released.
    unsafe {
        let log = (*ngx_cycle).log;
        // Small: a version holds a few hundred bytes per server.
        let pool = ngx_create_pool(1024, log);
        if pool.is_null() {
            return None;
        }
        let built = set_up_scratch(pool, log, &record.name, balancer, &peers, record.list());
        let Some((uscf, module_conf)) = built else {
            ngx_destroy_pool(pool);
            return None;
        };
        let (hash_conf, random_conf) = match balancer {
            Balancer::Hash { .. } => (module_conf.cast(), ptr::null_mut()),
            Balancer::Random | Balancer::RandomTwo { .. } => (ptr::null_mut(), module_conf.cast()),
            _ => (ptr::null_mut(), ptr::null_mut()),
        };
        Some(Box::into_raw(Box::new(Version {
            pool,
            uscf,
            hash_key,
            hash_conf,
            random_conf,
            requests: 0,
            superseded: false,
        })))
    }
}

/// Creates the scratch upstream in `pool`, runs the balancer's directive
/// (see [`balancer_directive`]) and `init_upstream` on it, and points it at the shared list. Returns it and
/// the balancer module's srv conf.
///
/// # Safety
/// `pool` is a fresh pool; `shared` a live registry list.
unsafe fn set_up_scratch(
    pool: *mut ngx_pool_t,
    log: *mut ngx_log_t,
    name: &str,
    balancer: &Balancer,
    peers: &[dynamic_upstream_core::PeerView],
    shared: *mut ngx_http_upstream_rr_peers_t,
) -> Option<(*mut ngx_http_upstream_srv_conf_t, *mut c_void)> {
    // SAFETY: per the contract; all memory comes from `pool`.
    unsafe {
        let uscf = ngx_pcalloc(pool, size_of::<ngx_http_upstream_srv_conf_t>()).cast::<ngx_http_upstream_srv_conf_t>();
        if uscf.is_null() {
            return None;
        }
        (*uscf).host = pool_str(pool, name)?;
        (*uscf).flags = (NGX_HTTP_UPSTREAM_CREATE
            | NGX_HTTP_UPSTREAM_WEIGHT
            | NGX_HTTP_UPSTREAM_MAX_FAILS
            | NGX_HTTP_UPSTREAM_FAIL_TIMEOUT
            | NGX_HTTP_UPSTREAM_DOWN
            | NGX_HTTP_UPSTREAM_MAX_CONNS
            | NGX_HTTP_UPSTREAM_BACKUP) as ngx_uint_t
            | UPSTREAM_MODIFY;
        (*uscf).no_port = 1;
        (*uscf).file_name = c"dyups".as_ptr().cast_mut().cast();
        // The zone makes random compute its table from the shared list on
        // first use (as for zone upstreams), not from local copies.
        (*uscf).shm_zone = crate::dyups::registry::zone();
        (*uscf).servers = servers_array(pool, peers)?;

        let mut cf: ngx_conf_t = zeroed();
        cf.pool = pool;
        cf.temp_pool = pool;
        cf.log = log;
        cf.cycle = ngx_cycle;
        // The http block's context: round robin's init reads its core loc
        // conf (`resolver`) for upstreams with a zone.
        cf.ctx = http_conf_ctx();

        let module_conf = ngx_pcalloc(pool, BALANCER_CONF_WORDS * 8);
        if module_conf.is_null() {
            return None;
        }
        let srv_conf = srv_conf_array(pool, uscf, balancer, module_conf)?;
        (*uscf).srv_conf = srv_conf;
        if let Some((module, args)) = balancer_directive(balancer) {
            if !run_directive(&cf, module, &args, uscf, module_conf) {
                return None;
            }
        }
        let init = (*uscf).peer.init_upstream.unwrap_or(ngx_http_upstream_init_round_robin);
        if init(&mut cf, uscf) != NGX_OK as ngx_int_t {
            return None;
        }
        (*uscf).peer.data = shared.cast();
        Some((uscf, module_conf))
    }
}

/// The srv conf array a balancer looks its own conf up in.
///
/// # Safety
/// `pool` is live.
unsafe fn srv_conf_array(
    pool: *mut ngx_pool_t,
    uscf: *mut ngx_http_upstream_srv_conf_t,
    balancer: &Balancer,
    module_conf: *mut c_void,
) -> Option<*mut *mut c_void> {
    // SAFETY: per the contract.
    unsafe {
        let count = ngx::ffi::ngx_http_max_module;
        let array = ngx_pcalloc(pool, count * size_of::<*mut c_void>()).cast::<*mut c_void>();
        if array.is_null() {
            return None;
        }
        let upstream_index = (*ptr::addr_of!(ngx::ffi::ngx_http_upstream_module)).ctx_index;
        *array.add(upstream_index) = uscf.cast();
        if let Some((module, _)) = balancer_directive(balancer) {
            *array.add((*module).ctx_index) = module_conf;
        }
        Some(array)
    }
}

/// `ngx_http_upstream_server_t`s for the peers (for the balancer's init).
///
/// # Safety
/// `pool` is live.
unsafe fn servers_array(pool: *mut ngx_pool_t, peers: &[dynamic_upstream_core::PeerView]) -> Option<*mut ngx_array_t> {
    // SAFETY: per the contract.
    unsafe {
        let array = ngx_array_create(pool, peers.len().max(1), size_of::<ngx_http_upstream_server_t>());
        if array.is_null() {
            return None;
        }
        for p in peers {
            let address = Address::parse(&p.name).ok()?;
            let peer_address = PeerAddress::new(&address);
            let addr = ngx_pcalloc(pool, size_of::<ngx::ffi::ngx_addr_t>()).cast::<ngx::ffi::ngx_addr_t>();
            let sockaddr = ngx_palloc(pool, peer_address.socklen as usize).cast::<u8>();
            if addr.is_null() || sockaddr.is_null() {
                return None;
            }
            ptr::copy_nonoverlapping(
                ptr::addr_of!(peer_address.sockaddr).cast::<u8>(),
                sockaddr,
                peer_address.socklen as usize,
            );
            (*addr).sockaddr = sockaddr.cast();
            (*addr).socklen = peer_address.socklen;
            (*addr).name = pool_str(pool, &p.name)?;
            let server = ngx_array_push(array).cast::<ngx_http_upstream_server_t>();
            if server.is_null() {
                return None;
            }
            server.write(zeroed());
            let s = &mut *server;
            // The balancer's copies must carry the same `server` text as the
            // shared peers: consistent hash matches peers by it.
            s.name = pool_str(pool, &p.server)?;
            s.addrs = addr;
            s.naddrs = 1;
            s.weight = p.weight as ngx_uint_t;
            s.max_fails = p.max_fails as ngx_uint_t;
            s.fail_timeout = p.fail_timeout as _;
            s.max_conns = p.max_conns as ngx_uint_t;
            s.down = p.down as ngx_uint_t;
            s.set_backup(p.backup as _);
        }
        Some(array)
    }
}

/// # Safety
/// `pool` is live.
unsafe fn pool_str(pool: *mut ngx_pool_t, text: &str) -> Option<ngx_str_t> {
    // SAFETY: per the contract.
    unsafe {
        let data = ngx_pnalloc(pool, text.len().max(1)).cast::<u8>();
        if data.is_null() {
            return None;
        }
        ptr::copy_nonoverlapping(text.as_ptr(), data, text.len());
        Some(ngx_str_t { len: text.len(), data })
    }
}

/// What a request's pool cleanup releases.
#[repr(C)]
struct RequestHold {
    version: *mut Version,
    /// The version's shared list, held (see [`crate::dyups::grace`]).
    list: *mut ngx_http_upstream_rr_peers_t,
}

/// `peer.init` of every front: holds the current version and its list,
/// then runs the version's balancer.
pub unsafe extern "C" fn init_front_peer(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    request_guard(|| {
        // SAFETY: nginx calls peer.init with the live request and the front
        // upstream, whose peer.data is its Front (set in update_front).
        unsafe {
            let Some(dyups) = Dyups::get() else {
                return NGX_ERROR as ngx_int_t;
            };
            let cleanup = ngx_pool_cleanup_add((*r).pool, size_of::<RequestHold>());
            if cleanup.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            let hold = (*cleanup).data.cast::<RequestHold>();
            hold.write(RequestHold { version: ptr::null_mut(), list: ptr::null_mut() });
            (*cleanup).handler = Some(release_request);
            // In a section first, then synced: the list this request picks
            // up is not freed before the request holds it.
            let section = ReadSection::new(&dyups);
            sync_if_moved();

            let front = (*us).peer.data.cast::<Front>();
            let version = (*front).current;
            if version.is_null() {
                return no_peers(r);
            }
            (*version).requests += 1;
            (*hold).version = version;
            let v_uscf = (*version).uscf;
            let list = (*v_uscf).peer.data.cast::<ngx_http_upstream_rr_peers_t>();
            hold_list(list);
            (*hold).list = list;
            drop(section);
            if let Some(conf) = (*version).hash_conf.as_mut() {
                match evaluate_key(r, &(*version).hash_key) {
                    Some(key) => conf.value = key,
                    None => return NGX_ERROR as ngx_int_t,
                }
            }
            let rc = match (*v_uscf).peer.init {
                Some(init) => init(r, v_uscf),
                None => NGX_ERROR as ngx_int_t,
            };
            if rc == NGX_OK as ngx_int_t {
                wrap_dyups_free((*r).upstream);
            }
            rc
        }
    })
}

unsafe extern "C" fn release_request(data: *mut c_void) {
    // SAFETY: data is the RequestHold written in init_front_peer.
    unsafe {
        let hold = &*data.cast::<RequestHold>();
        if !hold.list.is_null() {
            release_list(hold.list);
        }
        if !hold.version.is_null() {
            // Never below zero (an overflow check would panic in nginx).
            (*hold.version).requests = (*hold.version).requests.saturating_sub(1);
            release_if_done(hold.version);
        }
    }
}

/// A deleted upstream: no peer, so nginx answers 502 as for an upstream
/// with no live servers.
///
/// # Safety
/// `r` is the live request inside peer.init.
unsafe fn no_peers(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: per the contract.
    unsafe {
        let u = (*r).upstream;
        (*u).peer.get = Some(get_no_peer);
        (*u).peer.free = Some(free_no_peer);
        (*u).peer.tries = 1;
        // What get names, as nginx's balancers do when they find no peer.
        (*u).peer.data = ptr::addr_of_mut!((*(*u).upstream).host).cast();
    }
    NGX_OK as ngx_int_t
}

/// No peer: `NGX_BUSY`, the upstream's name as the peer's (nginx copies
/// the name of a zone upstream's peer right after `get`, busy or not).
unsafe extern "C" fn get_no_peer(pc: *mut ngx_peer_connection_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: `data` is the upstream's `host` (no_peers), which lives as
    // long as the cycle; `pc` is the request's peer connection.
    unsafe { (*pc).name = data.cast() };
    NGX_BUSY as ngx_int_t
}

unsafe extern "C" fn free_no_peer(_pc: *mut ngx_peer_connection_t, _data: *mut c_void, _state: ngx_uint_t) {}

/// Whether `name` is currently served by the registry in this worker (so
/// the query-string API must leave it alone).
pub fn is_front(upstream: Upstream) -> bool {
    upstream.peer_init().map(|f| f as usize) == Some(init_front_peer as *const () as usize)
}

/// The peers of an upstream of the configuration as configured, unless
/// this worker made it a front (its peer.data is then the front). Those of
/// a balancer of another module are its `server` lines: its peer.data may
/// be a struct of its own (upstream fair's is; reading it as a peer list
/// crashed the worker).
pub fn configured_peers(upstream: Upstream) -> Option<Vec<dynamic_upstream_core::PeerView>> {
    if is_front(upstream) {
        return None;
    }
    if !keeps_round_robin_peers(upstream) {
        return Some(upstream.configured_server_peers());
    }
    // SAFETY: not a front, and one of nginx's balancers: its peer.data is
    // the configuration's round-robin peer list.
    Some(unsafe { upstream.configured_peers() })
}

/// Releases this worker's versions (exit_process): nothing runs after it,
/// and freeing them keeps memory checkers' reports meaningful.
pub fn release_all() {
    VIEW.with(|view| {
        for front in view.borrow_mut().fronts.values_mut() {
            set_version(front, ptr::null_mut());
        }
    });
}

thread_local! {
    /// The timer that keeps idle workers in sync, and its interval.
    static SYNC_TIMER: RefCell<Option<(Timer, ngx_msec_t)>> = const { RefCell::new(None) };
}

/// Starts the sync timer (init_process).
pub fn start_timer(interval: ngx_msec_t) {
    let interval = interval.max(1);
    let mut timer = Timer::new(on_timer);
    timer.add(interval);
    SYNC_TIMER.with(|slot| *slot.borrow_mut() = Some((timer, interval)));
}

fn on_timer() {
    sync_if_stale(true);
    if !process::exiting() {
        SYNC_TIMER.with(|slot| {
            if let Some((timer, interval)) = slot.borrow_mut().as_mut() {
                timer.add(*interval);
            }
        });
    }
}

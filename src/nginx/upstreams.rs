//! nginx's table of upstreams (`upstream {}` blocks), and nginx's strings and
//! buffers as bytes.

#![allow(clippy::disallowed_types)] // the wrapper layer: nginx's own structs (see clippy.toml)

use core::marker::PhantomData;

use dynamic_upstream_core::Balancer;
use ngx::ffi::{ngx_http_upstream_main_conf_t, ngx_http_upstream_srv_conf_t, ngx_str_t, NGX_HTTP_UPSTREAM_CREATE};

use crate::nginx::process::in_running_process;

/// Upstreams declared with `upstream {}` blocks (not the implicit ones
/// nginx makes for `proxy_pass http://address`).
///
/// # Safety
/// `cycle` must be a fully configured cycle: the running one, or the new
/// one inside `init_module` (where the global `ngx_cycle` is still the old).
pub unsafe fn configured_upstreams(cycle: *const ngx::ffi::ngx_cycle_t) -> Vec<*mut ngx_http_upstream_srv_conf_t> {
    // SAFETY: per the contract; the upstream main conf and its array live
    // as long as the cycle.
    unsafe {
        let Some(umcf) = upstream_main_conf(cycle) else {
            return Vec::new();
        };
        let list = core::slice::from_raw_parts(
            umcf.upstreams.elts as *const *mut ngx_http_upstream_srv_conf_t,
            umcf.upstreams.nelts,
        );
        list.iter()
            .copied()
            .filter(|&u| !(*u).srv_conf.is_null() && (*u).flags & NGX_HTTP_UPSTREAM_CREATE as usize != 0)
            .collect()
    }
}

/// # Safety
/// `cycle` must be a configured cycle.
unsafe fn upstream_main_conf(cycle: *const ngx::ffi::ngx_cycle_t) -> Option<&'static ngx_http_upstream_main_conf_t> {
    use ngx::http::{HttpModuleMainConf, NgxHttpUpstreamModule};
    // SAFETY: per the contract; a cycle without an http block has no
    // http conf_ctx, which main_conf reports as None.
    unsafe {
        if (*cycle).conf_ctx.is_null() {
            return None;
        }
        #[allow(clippy::disallowed_methods)] // the contract's cycle: see clippy.toml
        NgxHttpUpstreamModule::main_conf(&*cycle)
    }
}

/// The running cycle's http block configuration context (null without
/// one), as a `ngx_conf_t`'s `ctx` in that block.
///
/// # Safety
/// Called in a process of a configured cycle.
pub unsafe fn http_conf_ctx() -> *mut core::ffi::c_void {
    // SAFETY: per the contract; `conf_ctx` has a slot per core module.
    unsafe {
        let cycle = ngx::ffi::ngx_cycle;
        if (*cycle).conf_ctx.is_null() {
            return core::ptr::null_mut();
        }
        let index = (*core::ptr::addr_of!(ngx::ffi::ngx_http_module)).index;
        (*(*cycle).conf_ctx.add(index)).cast()
    }
}

/// A string nginx made (a directive's value its slot setter stored, a C
/// caller's argument): `ngx_str_t` itself, whose bytes are trusted, but
/// which safe code can neither make (its field is private) nor copy.
#[repr(transparent)]
pub struct NgxText(ngx_str_t);

impl NgxText {
    pub const EMPTY: NgxText = NgxText(ngx_str_t::empty());

    /// Its text (invalid UTF-8 replaced).
    pub fn to_string_lossy(&self) -> String {
        str_lossy(&self.0)
    }
}

/// A memory buffer nginx (or an nginx module) made: `ngx_buf_t` itself,
/// which safe code can neither make nor copy.
#[repr(transparent)]
pub struct NgxBuf(ngx::ffi::ngx_buf_t);

impl NgxBuf {
    /// Its bytes (`pos..last`).
    pub fn bytes(&self) -> &[u8] {
        buf_bytes(&self.0)
    }
}

/// The bytes of a memory buffer (`pos..last`). Like `ngx_str_t::as_bytes`,
/// it trusts a buffer nginx (or an nginx module) made.
pub(in crate::nginx) fn buf_bytes(b: &ngx::ffi::ngx_buf_t) -> &[u8] {
    if b.pos.is_null() || b.last < b.pos {
        return &[];
    }
    // SAFETY: a memory buffer's pos..last are its readable bytes.
    unsafe { core::slice::from_raw_parts(b.pos, b.last.offset_from(b.pos) as usize) }
}

/// Whether nginx's string `s` is `text` (see [`str_lossy`]).
pub(in crate::nginx) fn str_eq(s: &ngx_str_t, text: &str) -> bool {
    #[allow(clippy::disallowed_methods)] // a string nginx made: see str_lossy
    let bytes = s.as_bytes();
    s.len == text.len() && !s.data.is_null() && bytes == text.as_bytes()
}

/// An nginx string as text (invalid UTF-8 replaced). Like `ngx_str_t::as_bytes`,
/// which it uses, it trusts a string nginx made: `data` valid for `len`
/// bytes. Only `nginx/` has the references to nginx's strings it needs;
/// others get an [`NgxText`].
pub(in crate::nginx) fn str_lossy(s: &ngx_str_t) -> String {
    if s.data.is_null() || s.len == 0 {
        return String::new();
    }
    #[allow(clippy::disallowed_methods)] // a string nginx made: see above
    let bytes = s.as_bytes();
    String::from_utf8_lossy(bytes).into_owned()
}

/// An `upstream {}` block of a configuration, for as long as `'c` says
/// that configuration lives: a lent [`crate::nginx::module_hooks::Cycle`]'s
/// blocks are its, the running cycle's are lent to a closure
/// ([`Upstream::with_running`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Upstream<'c> {
    uscf: *mut ngx_http_upstream_srv_conf_t,
    _cycle: PhantomData<&'c ngx::ffi::ngx_cycle_t>,
}

/// The running cycle's `upstream {}` blocks, lent for the call of
/// [`Upstream::with_running`]'s closure: its handles cannot be kept past
/// it (a worker destroys its cycle's pool before `exit()` runs the
/// thread-locals' destructors; the one process of `master_process off`
/// frees old cycles).
pub struct Running<'r> {
    upstreams: Vec<Upstream<'r>>,
}

impl<'r> Running<'r> {
    /// The blocks, in their order.
    pub fn upstreams(&self) -> &[Upstream<'r>] {
        &self.upstreams
    }
}

impl Upstream<'_> {
    /// Runs `f` with the running cycle's `upstream {}` blocks: in a
    /// process that serves requests, on nginx's thread; none anywhere else
    /// (the master, whose running cycle a reload frees; another thread).
    pub fn with_running<R>(f: impl for<'r> FnOnce(&Running<'r>) -> R) -> R {
        let upstreams = if in_running_process() {
            // SAFETY: where requests are served, ngx_cycle is the running,
            // fully configured cycle, read on nginx's thread; it outlives
            // the call.
            unsafe { Upstream::all_of(ngx::ffi::ngx_cycle) }
        } else {
            Vec::new()
        };
        f(&Running { upstreams })
    }
}

/// The addresses a configuration's `server` line resolved to (none for a
/// `server NAME resolve` whose name nginx resolves at run time).
fn addresses_of(server: &ngx::ffi::ngx_http_upstream_server_t) -> &[ngx::ffi::ngx_addr_t] {
    if server.addrs.is_null() {
        return &[];
    }
    // SAFETY: a server's addresses are the configuration's, naddrs of them,
    // which live as long as the server line.
    unsafe { core::slice::from_raw_parts(server.addrs, server.naddrs) }
}

impl<'c> Upstream<'c> {
    /// The `upstream {}` blocks of `cycle`, in their order.
    ///
    /// # Safety
    /// `cycle` is a configured cycle (as for [`configured_upstreams`]) that
    /// outlives `'c`.
    pub(in crate::nginx) unsafe fn all_of(cycle: *const ngx::ffi::ngx_cycle_t) -> Vec<Upstream<'c>> {
        // SAFETY: per the contract.
        let blocks = unsafe { configured_upstreams(cycle) };
        blocks.into_iter().map(|uscf| Upstream { uscf, _cycle: PhantomData }).collect()
    }

    /// # Safety
    /// `uscf` is an upstream block of a live configuration, which outlives
    /// `'c`.
    pub unsafe fn from_raw(uscf: *mut ngx_http_upstream_srv_conf_t) -> Upstream<'c> {
        Upstream { uscf, _cycle: PhantomData }
    }

    pub fn raw(self) -> *mut ngx_http_upstream_srv_conf_t {
        self.uscf
    }

    /// nginx's structure of the block: for `nginx/`, which copies nothing
    /// out of it that outlives `'c` (its strings and pointers are the
    /// configuration's memory).
    pub(in crate::nginx) fn conf(self) -> &'c ngx_http_upstream_srv_conf_t {
        // SAFETY: handles are made only for upstream blocks of a
        // configuration that outlives 'c (running, Cycle::upstreams,
        // from_raw's contract).
        unsafe { &*self.uscf }
    }

    /// This module's configuration of the block.
    ///
    /// # Safety
    /// No other reference to it is used while this one is, and none
    /// outlives `'c`.
    pub unsafe fn module_srv_conf(
        self,
    ) -> Option<&'c mut <crate::Module as ngx::http::HttpModuleServerConf>::ServerConf> {
        #[allow(clippy::disallowed_methods)] // this unsafe fn's contract: see clippy.toml
        <crate::Module as ngx::http::HttpModuleServerConf>::server_conf_mut(self.conf())
    }

    /// Its balancer's peer data (`peer.data`: after init_module, the peer
    /// list of nginx's balancers, in the zone for a zone upstream).
    pub fn peer_data(self) -> *mut core::ffi::c_void {
        self.conf().peer.data
    }

    /// Whether its name is `name`, byte for byte.
    pub fn name_is(self, name: &str) -> bool {
        str_eq(&self.conf().host, name)
    }

    /// The length of its name, in bytes.
    pub fn name_len(self) -> usize {
        self.conf().host.len
    }

    /// Its zone (`zone NAME SIZE;`), if it has one: for `nginx/` (see
    /// [`Upstream::conf`]).
    pub(in crate::nginx) fn zone(self) -> Option<&'c ngx::ffi::ngx_shm_zone_t> {
        // SAFETY: a block's zone lives as long as its configuration.
        unsafe { self.conf().shm_zone.as_ref() }
    }

    /// Whether it has a zone (`zone NAME SIZE;`).
    pub fn has_zone(self) -> bool {
        self.zone().is_some()
    }

    /// Its zone's size in bytes (0 without one).
    pub fn zone_size(self) -> usize {
        self.zone().map_or(0, |z| z.shm.size)
    }

    /// Whether its zone is named `name`, byte for byte.
    pub fn zone_is(self, name: &str) -> bool {
        self.zone().is_some_and(|z| str_eq(&z.shm.name, name))
    }

    /// Whether `at` lies inside its zone's memory.
    pub fn zone_holds(self, at: *const core::ffi::c_void) -> bool {
        self.zone().is_some_and(|z| {
            let (start, at) = (z.shm.addr as usize, at as usize);
            at >= start && at < start.saturating_add(z.shm.size)
        })
    }

    /// Whether its balancer made a peer list (`peer.data`): after init_module.
    pub fn has_peer_data(self) -> bool {
        !self.conf().peer.data.is_null()
    }

    /// Its balancer's `peer.init`.
    pub fn peer_init(self) -> ngx::ffi::ngx_http_upstream_init_peer_pt {
        self.conf().peer.init
    }

    /// Replaces its balancer's `peer.init` (workers inherit it).
    ///
    /// # Safety
    /// In init_module, an upstream of the new cycle (no request has started
    /// on it), and no reference of [`Upstream::conf`] to it is in use.
    pub unsafe fn set_peer_init(self, init: ngx::ffi::ngx_http_upstream_init_peer_pt) {
        // SAFETY: per the contract; a plain write of a function pointer.
        unsafe { (*self.uscf).peer.init = init };
    }

    /// Its `server` lines as configured.
    fn configured_servers(self) -> &'c [ngx::ffi::ngx_http_upstream_server_t] {
        let servers = self.conf().servers;
        if servers.is_null() {
            return &[];
        }
        // SAFETY: the configuration's array of ngx_http_upstream_server_t,
        // nelts of them, which lives as long as the configuration ('c).
        unsafe { core::slice::from_raw_parts((*servers).elts.cast(), (*servers).nelts) }
    }

    /// The addresses of its `server` lines as configured (`127.0.0.1:8080`,
    /// `unix:/path`), every address each name resolved to.
    pub fn server_addresses(self) -> Vec<String> {
        self.configured_servers().iter().flat_map(addresses_of).map(|a| str_lossy(&a.name)).collect()
    }

    /// Whether one of its primary `server` lines is `server NAME resolve`
    /// (nginx 1.27.3 and later): nginx's resolver makes those peers, which
    /// no state file holds.
    pub fn resolves_primary(self) -> bool {
        self.configured_servers().iter().any(|s| s.backup() == 0 && crate::nginx::version::server_resolves(s))
    }

    /// Whether one of its `server` lines, primary or backup, is `server
    /// NAME resolve` (nginx 1.27.3 and later).
    pub fn resolves_any(self) -> bool {
        self.configured_servers().iter().any(crate::nginx::version::server_resolves)
    }

    /// Whether one of its `server` lines says `backup`: nginx accepts one
    /// written before a balancer directive that does not allow backups
    /// (`hash`, `ip_hash`, `random`), and keeps it as a backup peer.
    pub fn configures_backup(self) -> bool {
        self.configured_servers().iter().any(|s| s.backup() != 0)
    }

    /// Whether backup servers may be in its lists (a state file's, an
    /// API's) with `balancer`: where the balancer has backups, and where
    /// the configuration wrote one before a balancer line that has none.
    pub fn takes_backups(self, balancer: &Balancer) -> bool {
        balancer.allows_backup() || self.configures_backup()
    }

    pub fn name(self) -> String {
        str_lossy(&self.conf().host)
    }

    /// Its zone's name, if it has one.
    pub fn zone_name(self) -> Option<String> {
        self.zone().map(|z| str_lossy(&z.shm.name))
    }

    /// Its `server` lines as peers, one per address, primaries then backups
    /// (as nginx's round-robin list orders them), without live figures: for
    /// an upstream whose balancer is another module's, which may keep a
    /// struct of its own in `peer.data` (upstream fair does).
    pub fn configured_server_peers(self) -> Vec<dynamic_upstream_core::PeerView> {
        let mut peers = Vec::new();
        for backup in [false, true] {
            for server in self.configured_servers().iter().filter(|s| (s.backup() != 0) == backup) {
                peers.extend(addresses_of(server).iter().map(|addr| dynamic_upstream_core::PeerView {
                    server: str_lossy(&server.name),
                    name: str_lossy(&addr.name),
                    weight: server.weight as i64,
                    max_fails: server.max_fails as u64,
                    fail_timeout: server.fail_timeout,
                    max_conns: server.max_conns as u64,
                    backup,
                    resolved_from: None,
                    down: server.down != 0,
                    conns: 0,
                    fails: 0,
                    current_weight: 0,
                    effective_weight: server.weight as i64,
                    accessed: 0,
                    checked: 0,
                    stats: Default::default(),
                    health: None,
                }));
            }
        }
        peers
    }

    /// Its peers as configured, with their live figures.
    ///
    /// # Safety
    /// Its `peer.data` is a peer list: nginx's own balancers keep the
    /// round-robin peers there (another module's may not, a dyups front's
    /// does not).
    pub unsafe fn configured_peers(self) -> Vec<dynamic_upstream_core::PeerView> {
        // SAFETY: per the contract; configured upstreams' peer lists live
        // as long as the cycle.
        unsafe {
            let list = (*self.uscf).peer.data.cast::<ngx::ffi::ngx_http_upstream_rr_peers_t>();
            if list.is_null() {
                Vec::new()
            } else {
                crate::nginx::peer_list::list_peers(list)
            }
        }
    }
}

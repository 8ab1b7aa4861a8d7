//! nginx's table of upstreams (`upstream {}` blocks), and nginx's strings and
//! buffers as bytes.

use ngx::ffi::{ngx_http_upstream_main_conf_t, ngx_http_upstream_srv_conf_t, ngx_str_t, NGX_HTTP_UPSTREAM_CREATE};

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

/// The bytes of a memory buffer (`pos..last`). Like `ngx_str_t::as_bytes`,
/// it trusts a buffer nginx (or an nginx module) made.
pub fn buf_bytes(b: &ngx::ffi::ngx_buf_t) -> &[u8] {
    if b.pos.is_null() || b.last < b.pos {
        return &[];
    }
    // SAFETY: a memory buffer's pos..last are its readable bytes.
    unsafe { core::slice::from_raw_parts(b.pos, b.last.offset_from(b.pos) as usize) }
}

pub fn str_eq(s: &ngx_str_t, text: &str) -> bool {
    s.len == text.len() && !s.data.is_null() && s.as_bytes() == text.as_bytes()
}

/// An nginx string as text (invalid UTF-8 replaced). Like `ngx_str_t::as_bytes`,
/// which it uses, it trusts a string nginx made: `data` valid for `len` bytes.
pub fn str_lossy(s: &ngx_str_t) -> String {
    if s.data.is_null() || s.len == 0 {
        return String::new();
    }
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

/// An `upstream {}` block of a configuration (the running one, or the new
/// one in init_module): handles are made only from a configured cycle's
/// table, and used while that configuration lives.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Upstream(*mut ngx_http_upstream_srv_conf_t);

impl Upstream {
    /// The `upstream {}` blocks of the running cycle, in their order. Call
    /// it in a process that serves requests (a worker, or the single
    /// process of `master_process off`).
    pub fn running() -> Vec<Upstream> {
        // SAFETY: where requests are served, ngx_cycle is the running,
        // fully configured cycle.
        unsafe { configured_upstreams(ngx::ffi::ngx_cycle) }.into_iter().map(Upstream).collect()
    }

    /// The `upstream {}` blocks of `cycle`, a configured cycle nginx handed
    /// over (the new one in init_module, a worker's, or the one being
    /// configured once its http block is read), in their order.
    pub fn of_cycle(cycle: &ngx::ffi::ngx_cycle_t) -> Vec<Upstream> {
        // SAFETY: such a cycle is configured; its upstreams live as long.
        unsafe { configured_upstreams(cycle) }.into_iter().map(Upstream).collect()
    }

    /// # Safety
    /// `uscf` is an upstream block of a live configuration, which outlives
    /// the handle's use.
    pub unsafe fn from_raw(uscf: *mut ngx_http_upstream_srv_conf_t) -> Upstream {
        Upstream(uscf)
    }

    pub fn raw(self) -> *mut ngx_http_upstream_srv_conf_t {
        self.0
    }

    /// nginx's structure of the block.
    pub fn conf(self) -> &'static ngx_http_upstream_srv_conf_t {
        // SAFETY: handles are made only for upstream blocks of a live
        // configuration (of_cycle, running, from_raw's contract).
        unsafe { &*self.0 }
    }

    /// The length of its name, in bytes.
    pub fn name_len(self) -> usize {
        self.conf().host.len
    }

    /// Its zone (`zone NAME SIZE;`), if it has one.
    pub fn zone(self) -> Option<&'static ngx::ffi::ngx_shm_zone_t> {
        // SAFETY: a block's zone lives as long as its configuration.
        unsafe { self.conf().shm_zone.as_ref() }
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
        unsafe { (*self.0).peer.init = init };
    }

    /// The addresses of its `server` lines as configured (`127.0.0.1:8080`,
    /// `unix:/path`), every address each name resolved to.
    pub fn server_addresses(self) -> Vec<String> {
        let servers = self.conf().servers;
        if servers.is_null() {
            return Vec::new();
        }
        // SAFETY: the servers array and each server's addresses are the
        // configuration's: ngx_http_upstream_server_t elements, naddrs each.
        unsafe {
            let servers = core::slice::from_raw_parts(
                (*servers).elts.cast::<ngx::ffi::ngx_http_upstream_server_t>(),
                (*servers).nelts,
            );
            servers
                .iter()
                .filter(|s| !s.addrs.is_null())
                .flat_map(|s| core::slice::from_raw_parts(s.addrs, s.naddrs))
                .map(|a| str_lossy(&a.name))
                .collect()
        }
    }

    pub fn name(self) -> String {
        str_lossy(&self.conf().host)
    }

    /// Its zone's name, if it has one.
    pub fn zone_name(self) -> Option<String> {
        self.zone().map(|z| str_lossy(&z.shm.name))
    }

    /// Its peers as configured.
    ///
    /// # Safety
    /// Its `peer.data` is a peer list (every built-in balancer keeps the
    /// round-robin peers there; a dyups front's is not).
    pub unsafe fn configured_peers(self) -> Vec<dynamic_upstream_core::PeerView> {
        // SAFETY: per the contract; configured upstreams' peer lists live
        // as long as the cycle.
        unsafe {
            let list = (*self.0).peer.data.cast::<ngx::ffi::ngx_http_upstream_rr_peers_t>();
            if list.is_null() {
                Vec::new()
            } else {
                crate::nginx::peer_list::list_peers(list)
            }
        }
    }
}

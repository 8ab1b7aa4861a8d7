//! nginx's table of upstreams (`upstream {}` blocks) and its strings.

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

pub fn str_eq(s: &ngx_str_t, text: &str) -> bool {
    // SAFETY: nginx strings of the configuration are valid for s.len bytes.
    s.len == text.len() && !s.data.is_null() && unsafe { core::slice::from_raw_parts(s.data, s.len) } == text.as_bytes()
}

/// # Safety
/// `s` must be a valid nginx string.
pub unsafe fn str_lossy(s: &ngx_str_t) -> String {
    if s.data.is_null() || s.len == 0 {
        return String::new();
    }
    // SAFETY: per the contract.
    String::from_utf8_lossy(unsafe { core::slice::from_raw_parts(s.data, s.len) }).into_owned()
}

/// An `upstream {}` block of the running configuration.
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

    pub fn raw(self) -> *mut ngx_http_upstream_srv_conf_t {
        self.0
    }

    pub fn name(self) -> String {
        // SAFETY: an upstream of the running cycle, which outlives its use.
        unsafe { str_lossy(&(*self.0).host) }
    }

    /// Its zone's name, if it has one.
    pub fn zone_name(self) -> Option<String> {
        // SAFETY: as above.
        unsafe { (*self.0).shm_zone.as_ref().map(|z| str_lossy(&z.shm.name)) }
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

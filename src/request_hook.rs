//! The `peer.init` hook installed on every zone upstream.
//!
//! It wraps whatever `peer.init` the balancer (and `keepalive`) installed
//! and does two things for each request that uses the upstream:
//!
//! 1. registers the request with the zone's grace-period counter
//!    ([`crate::reclaim`]) before the balancer first reads the peer list,
//!    and unregisters it when the request's pool is destroyed;
//! 2. enlarges the request's `tried` bitmap. nginx sizes it from the peer
//!    count at request start (one machine word up to 64 peers) and indexes
//!    it by list position; a peer added past that while the request is in
//!    flight would make the balancer read and write past the bitmap. The
//!    hook gives every request a bitmap for the most peers a list of the
//!    zone can hold (`ZoneUpstream::max_peers_per_list`), which the API
//!    never exceeds.
//!
//! All built-in balancers keep `ngx_http_upstream_rr_peer_data_t` first in
//! their per-request data, and `keepalive` keeps the balancer's data as its
//! third word after a pointer to the request's upstream; both layouts are
//! recognised by content (the data points at this upstream's peer list).
//! If neither matches (a third-party wrapper), the zone is flagged and the
//! API refuses to grow its lists beyond 64 peers.

use core::ffi::c_void;
use core::mem::size_of;
use core::sync::atomic::Ordering::SeqCst;

use ngx::ffi::{
    ngx_http_request_t, ngx_http_upstream_rr_peer_data_t, ngx_http_upstream_rr_peers_t, ngx_http_upstream_srv_conf_t,
    ngx_int_t, ngx_pcalloc, ngx_pool_cleanup_add, NGX_ERROR, NGX_OK,
};

use crate::balancer::srv_conf;
use crate::reclaim::{Ticket, ZoneState};

const BITS_PER_WORD: usize = usize::BITS as usize;

/// What the pool cleanup needs to unregister the request.
#[repr(C)]
struct Registration {
    state: *mut ZoneState,
    ticket: Ticket,
}

/// Installed as `uscf->peer.init` of zone upstreams at start.
pub unsafe extern "C" fn init_zone_peer(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    crate::entry::request_guard(|| {
        // SAFETY: nginx calls peer.init with the live request and upstream;
        // this hook is only installed where init_cycle recorded the
        // original init and zone state in the upstream's srv conf.
        unsafe {
            let Some(srv) = srv_conf(us) else {
                return NGX_ERROR as ngx_int_t;
            };
            let Some(original_init) = srv.original_init else {
                return NGX_ERROR as ngx_int_t;
            };
            if !srv.state.is_null() && !register_request(r, srv.state) {
                return NGX_ERROR as ngx_int_t;
            }
            let rc = original_init(r, us);
            if rc != NGX_OK as ngx_int_t || srv.state.is_null() {
                return rc;
            }
            enlarge_tried_bitmap(r, us, srv.max_peers_per_list, &*srv.state)
        }
    })
}

/// # Safety
/// `r` is the live request; `state` the zone's shared state.
unsafe fn register_request(r: *mut ngx_http_request_t, state: *mut ZoneState) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let cleanup = ngx_pool_cleanup_add((*r).pool, size_of::<Registration>());
        if cleanup.is_null() {
            return false;
        }
        let ticket = (*state).enter();
        (*cleanup).data.cast::<Registration>().write(Registration { state, ticket });
        (*cleanup).handler = Some(unregister_request);
        true
    }
}

unsafe extern "C" fn unregister_request(data: *mut c_void) {
    // SAFETY: data is the Registration written in register_request; the
    // zone outlives every request of the cycle that uses it.
    unsafe {
        let registration = &*data.cast::<Registration>();
        (*registration.state).leave(registration.ticket);
    }
}

/// # Safety
/// Called right after the balancer's peer.init succeeded for `r`.
unsafe fn enlarge_tried_bitmap(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
    max_peers: usize,
    state: &ZoneState,
) -> ngx_int_t {
    let words = max_peers.div_ceil(BITS_PER_WORD);
    if words <= 1 {
        return NGX_OK as ngx_int_t;
    }
    // SAFETY: per the contract; r->upstream exists while peer.init runs.
    unsafe {
        let primary = (*us).peer.data.cast::<ngx_http_upstream_rr_peers_t>();
        let upstream = (*r).upstream;
        let Some(rrp) = find_rr_data((*upstream).peer.data, upstream.cast(), primary) else {
            state.unknown_request_data.store(true, SeqCst);
            return NGX_OK as ngx_int_t;
        };
        let tried = ngx_pcalloc((*r).pool, words * size_of::<usize>()).cast::<usize>();
        if tried.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        // The old bitmap is all zero at this point (fresh request).
        (*rrp).tried = tried;
    }
    NGX_OK as ngx_int_t
}

/// Locates the round-robin data of a request (see the module comment).
///
/// # Safety
/// `data` is the request's `u->peer.data` set by a successful peer.init.
unsafe fn find_rr_data(
    data: *mut c_void,
    upstream: *mut c_void,
    primary: *mut ngx_http_upstream_rr_peers_t,
) -> Option<*mut ngx_http_upstream_rr_peer_data_t> {
    // SAFETY: per the contract: every layout recognised here is at least
    // three words long, and peer.init just initialised it.
    unsafe {
        let is_rr = |p: *mut c_void| {
            let rrp = p.cast::<ngx_http_upstream_rr_peer_data_t>();
            !p.is_null() && (*rrp).peers == primary && (*rrp).current.is_null()
        };
        if is_rr(data) {
            return Some(data.cast());
        }
        // keepalive: { conf, upstream, data, ... }
        let words = data.cast::<*mut c_void>();
        if !data.is_null() && *words.add(1) == upstream && is_rr(*words.add(2)) {
            return Some((*words.add(2)).cast());
        }
        None
    }
}

//! The `peer.init` hook installed on every zone upstream where [`needed`]
//! (before nginx 1.27.3, or to count the attempts for the statistics).
//!
//! It wraps whatever `peer.init` the balancer (and `keepalive`) installed
//! and does two things for each request that uses the upstream:
//!
//! 1. wraps the request's `peer.free`, which then first moves the peer's
//!    name that `u->peer.name` and `u->state->peer` point to into the
//!    request's pool: once `free` has run the request no longer holds the
//!    peer, and a removed peer may be freed ([`crate::zone::reclaim`]), but the
//!    error log and `$upstream_addr` still show that name;
//! 2. enlarges the request's `tried` bitmap. nginx sizes it from the peer
//!    count at request start (one machine word up to 64 peers) and indexes
//!    it by list position; a peer added past that while the request is in
//!    flight would make the balancer read and write past the bitmap. The
//!    hook gives every request a bitmap for the most peers a list of the
//!    zone can hold (`ZoneUpstream::max_peers_per_list`), which the API
//!    never exceeds; [`crate::zone::tried_bitmap`] makes it cheap whatever
//!    the zone's size.
//!
//! All built-in balancers keep `ngx_http_upstream_rr_peer_data_t` first in
//! their per-request data, and `keepalive` keeps the balancer's data as its
//! third word after a pointer to the request's upstream; both layouts are
//! recognised by content (the data points at this upstream's peer list).
//! If neither matches (a third-party wrapper), the zone is flagged and the
//! API refuses to grow its lists beyond 64 peers. The hook is not installed
//! on balancers the module does not know (whose peers it never adds or
//! removes): their request data may be shorter than what is read here.

#![allow(clippy::disallowed_types)] // nginx's request data, for the request hook (see clippy.toml)

use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use core::ptr;
use core::sync::atomic::Ordering::SeqCst;

use ngx::ffi::{
    ngx_event_free_peer_pt, ngx_http_request_t, ngx_http_upstream_rr_peer_data_t, ngx_http_upstream_rr_peers_t,
    ngx_http_upstream_srv_conf_t, ngx_http_upstream_t, ngx_int_t, ngx_palloc, ngx_peer_connection_t, ngx_str_t,
    ngx_uint_t, NGX_ERROR, NGX_LOG_ERR, NGX_OK,
};

use crate::nginx::balancers::KnownBalancers;
use crate::nginx::entry::request_guard;
use crate::nginx::module_hooks::InitModule;
use crate::nginx::peer_lock::ZoneLists;
use crate::nginx::upstreams::Upstream;
use crate::nginx::version::{NGINX_FREES_REMOVED_PEERS, TABLES_FOLLOW_CHANGES};
use crate::zone::peers::max_peers_for_zone;
use crate::zone::reclaim::ZoneState;
use crate::zone::tried_bitmap::free_spares_with_pool;
use crate::zone::tried_bitmap::zeroed_bitmap;
use crate::zone::upstream::{srv_conf_mut, Hook, SrvConf};

const BITS_PER_WORD: usize = usize::BITS as usize;

/// Whether zone upstreams' requests go through [`init_zone_peer`], and what
/// for: the one place that decides it (anything else a request must do for
/// the module, in `peer.init` or `peer.free`, adds its reason here), with
/// `counting` telling whether the upstream's attempts are counted
/// (statistics on, nginx's own balancer). The health checks need nothing
/// per request. From nginx 1.27.3 on, the guard has no job left: nginx
/// copies the peer's name into the request itself
/// (`NGX_HTTP_UPSTREAM_MODIFY`, set by every `upstream {}` block and
/// balancer) and frees removed peers only once no request holds them
/// (`refs`), and a request whose list changed since its `peer.init` gets
/// no further peer from it (every change of the set moves
/// `*peers->config`), so it never indexes a longer list with its bitmap.
/// Requests then cost nothing over stock nginx unless they are counted.
/// Nor does the guard have a job where the module never adds or removes
/// peers (`set_changes` false: a balancer it does not know, or one whose
/// table nginx computes once): there it would only read the request data
/// of a balancer whose layout, and size, the module cannot know.
pub fn needed(counting: bool, set_changes: bool) -> Option<Hook> {
    let guard = !NGINX_FREES_REMOVED_PEERS && set_changes;
    let free: ngx_event_free_peer_pt = match (guard, counting) {
        (true, true) => Some(free_counted_zone_peer),
        (true, false) => Some(free_zone_peer),
        (false, true) => Some(free_counted_peer),
        (false, false) => return None,
    };
    Some(Hook { guard, free })
}

/// Installed as `uscf->peer.init` of zone upstreams at start.
pub unsafe extern "C" fn init_zone_peer(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
) -> ngx_int_t {
    request_guard(|| {
        // SAFETY: nginx calls peer.init with the live request and upstream;
        // this hook is only installed where init_cycle recorded the
        // original init and zone state in the upstream's srv conf.
        unsafe {
            let Some(srv) = srv_conf_mut(Upstream::from_raw(us)) else {
                return NGX_ERROR as ngx_int_t;
            };
            let Some(original_init) = srv.original_init else {
                return NGX_ERROR as ngx_int_t;
            };
            let rc = original_init(r, us);
            if rc != NGX_OK as ngx_int_t || srv.state.is_null() {
                return rc;
            }
            let Some(hook) = srv.hook else {
                return rc;
            };
            if !wrap_free(r, srv, hook.free) {
                return NGX_ERROR as ngx_int_t;
            }
            if !hook.guard {
                return rc;
            }
            enlarge_tried_bitmap(r, us, srv, &*srv.state)
        }
    })
}

/// Makes the request's `peer.free` `hook` (see [`needed`]). A balancer (with
/// `keepalive` or not) installs the same `free` for every request of an
/// upstream: the first one is recorded, and a request with another one
/// fails rather than run with a name that a reaped peer would take along.
///
/// # Safety
/// `r` is the live request, right after the balancer's peer.init.
unsafe fn wrap_free(r: *mut ngx_http_request_t, srv: &mut SrvConf, hook: ngx_event_free_peer_pt) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let u = (*r).upstream;
        let free = (*u).peer.free;
        if free.is_none() {
            // Nobody ever frees the peer: its `conns` keeps it allocated.
            return true;
        }
        if srv.original_free.is_none() {
            srv.original_free = free;
        } else if srv.original_free.map(|f| f as usize) != free.map(|f| f as usize) {
            ngx::ngx_log_error!(
                NGX_LOG_ERR,
                (*(*r).connection).log,
                "dynamic upstream: the balancer of this upstream changed its peer.free between requests; \
                 the request cannot use it safely"
            );
            return false;
        }
        (*u).peer.free = hook;
        true
    }
}

/// [`free_zone_peer`] after counting the attempt.
unsafe extern "C" fn free_counted_zone_peer(pc: *mut ngx_peer_connection_t, data: *mut c_void, state: ngx_uint_t) {
    // No panic can happen here: atomics, raw pointer work and FFI calls.
    // SAFETY: as for free_zone_peer; counting reads the peer the request
    // still holds, before the balancer's free releases it.
    unsafe {
        crate::nginx::peer_stats::count(pc, data, state);
        free_zone_peer(pc, data, state);
    }
}

/// The balancer's `free` after counting the attempt (no name copy: nginx
/// makes its own, see [`needed`]).
unsafe extern "C" fn free_counted_peer(pc: *mut ngx_peer_connection_t, data: *mut c_void, state: ngx_uint_t) {
    // No panic can happen here: atomics, raw pointer work and FFI calls.
    // SAFETY: as for free_zone_peer.
    unsafe {
        crate::nginx::peer_stats::count(pc, data, state);
        original_free(pc, data, state);
    }
}

/// The request's `peer.free` (see [`wrap_free`]): detaches the peer's name,
/// then runs the balancer's `free`.
unsafe extern "C" fn free_zone_peer(pc: *mut ngx_peer_connection_t, data: *mut c_void, state: ngx_uint_t) {
    // No panic can happen here: raw pointer work and FFI calls only.
    // SAFETY: as for original_free; the peer is still counted in its
    // `conns`, so its name is still allocated.
    unsafe {
        detach_name(upstream_of(pc));
        original_free(pc, data, state);
    }
}

/// The request's upstream, whose `peer` is `pc`.
///
/// # Safety
/// `pc` is `&u->peer` of a live request.
unsafe fn upstream_of(pc: *mut ngx_peer_connection_t) -> *mut ngx_http_upstream_t {
    // SAFETY: per the contract.
    unsafe { pc.byte_sub(offset_of!(ngx_http_upstream_t, peer)).cast() }
}

/// Runs the balancer's `free` that [`wrap_free`] recorded.
///
/// # Safety
/// nginx calls peer.free with `&u->peer` of a live request whose peer.init
/// was init_zone_peer, so `u->upstream` has our srv conf with the recorded
/// free.
unsafe fn original_free(pc: *mut ngx_peer_connection_t, data: *mut c_void, state: ngx_uint_t) {
    // SAFETY: per the contract.
    unsafe {
        if let Some(free) =
            srv_conf_mut(Upstream::from_raw((*upstream_of(pc)).upstream)).and_then(|srv| srv.original_free)
        {
            free(pc, data, state);
        }
    }
}

/// Points `u->peer.name` and the current `u->state->peer` at a copy of the
/// name in the request's pool (none if the pool has no room: nginx shows
/// `-` then, and the log line no `upstream:`).
///
/// # Safety
/// `u` is a live request's upstream; its peer is still allocated.
unsafe fn detach_name(u: *mut ngx_http_upstream_t) {
    // SAFETY: per the contract; `u->writer.pool` is the request's pool
    // (ngx_http_upstream_init_request).
    unsafe {
        let name = (*u).peer.name;
        if name.is_null() {
            return;
        }
        let copy = ngx_palloc((*u).writer.pool, size_of::<ngx_str_t>() + (*name).len).cast::<ngx_str_t>();
        if !copy.is_null() {
            let data = copy.add(1).cast::<u8>();
            ptr::copy_nonoverlapping((*name).data, data, (*name).len);
            copy.write(ngx_str_t { len: (*name).len, data });
        }
        let state = (*u).state;
        if !state.is_null() && (*state).peer == name {
            (*state).peer = copy;
        }
        (*u).peer.name = copy;
    }
}

/// # Safety
/// Called right after the balancer's peer.init succeeded for `r`; `srv` is
/// the upstream's configuration (which lives as long as the cycle) and
/// `state` its zone state.
unsafe fn enlarge_tried_bitmap(
    r: *mut ngx_http_request_t,
    us: *mut ngx_http_upstream_srv_conf_t,
    srv: *mut SrvConf,
    state: &ZoneState,
) -> ngx_int_t {
    // SAFETY: per the contract; r->upstream exists while peer.init runs.
    unsafe {
        let words = (*srv).max_peers_per_list.div_ceil(BITS_PER_WORD);
        if words <= 1 {
            return NGX_OK as ngx_int_t;
        }
        let primary = (*us).peer.data.cast::<ngx_http_upstream_rr_peers_t>();
        let upstream = (*r).upstream;
        let Some(rrp) = find_rr_data((*upstream).peer.data, upstream.cast(), primary) else {
            state.unknown_request_data.store(true, SeqCst);
            return NGX_OK as ngx_int_t;
        };
        let tried = zeroed_bitmap(r, words, ptr::addr_of_mut!((*srv).spare_bitmaps), state.lengths());
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

/// init_module: what the module learns about each upstream of the new
/// cycle (its balancer, its bookkeeping in its zone, the size of the
/// requests' bitmaps) and, where [`needed`] says so, its `peer.init`
/// wrapped. Workers inherit all of it.
pub fn prepare_upstreams(init: &InitModule, balancers: &KnownBalancers, stats: bool) {
    for upstream in init.cycle().upstreams() {
        prepare_upstream(init, upstream, balancers, stats);
    }
}

fn prepare_upstream(init: &InitModule, upstream: Upstream, balancers: &KnownBalancers, stats: bool) {
    // SAFETY: an upstream of init_module's new cycle, whose configuration
    // nothing else reaches during the call.
    let Some(srv) = (unsafe { srv_conf_mut(upstream) }) else { return };
    srv.balancer = balancers.classify(upstream);
    if !upstream.has_zone() || !upstream.has_peer_data() {
        return;
    }
    // SAFETY: in init_module the zone is initialised, and the zone module
    // pointed `peer.data` at the primary list it copied into it; both live
    // as long as the new cycle, whose processes alone use its upstreams.
    srv.state = ZoneState::create(unsafe { ZoneLists::new(upstream.peer_data().cast()) });
    if srv.state.is_null() {
        init.log(
            NGX_LOG_ERR,
            &format!(
                "dynamic upstream: zone \"{}\" ({} KiB) has no room for the module's \
                 bookkeeping after upstream \"{}\"'s servers: the upstream cannot be changed, its \
                 dynamic_state_file is not restored and its health checks are off; give the zone more room",
                upstream.zone_name().unwrap_or_default(),
                upstream.zone_size() / 1024,
                upstream.name()
            ),
        );
        return;
    }
    srv.max_peers_per_list = max_peers_for_zone(upstream.zone_size());
    // Statistics read the balancer's request data: nginx's own balancers only.
    let known = srv.balancer.is_nginx_own();
    srv.hook = needed(stats && known, srv.balancer.follows_set_changes(TABLES_FOLLOW_CHANGES));
    if srv.hook.is_some() {
        srv.original_init = upstream.peer_init();
        // SAFETY: in init_module, an upstream of the new cycle: no request
        // has started on it.
        unsafe { upstream.set_peer_init(Some(init_zone_peer)) };
        // SAFETY: init_module's cycle is the one whose configuration holds
        // the spares.
        unsafe { free_spares_with_pool(init.cycle().pool(), &mut srv.spare_bitmaps) };
    }
}

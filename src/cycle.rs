//! Start-up work for each configuration cycle.
//!
//! * `preconfiguration`: register the Lua packages (see [`crate::api::lua`]).
//! * `postconfiguration` (while the configuration is read): learn the
//!   balancers' init functions (see [`crate::nginx::balancers`]).
//! * `init_module` (in the master, after the shared zones exist and before
//!   the workers fork): for every zone upstream, classify its balancer,
//!   allocate the module's bookkeeping in its zone and wrap its `peer.init`
//!   with [`crate::zone::request_hook`] where that is needed. Workers
//!   inherit all of it.
//! * `init_process` (in each worker): start the dyups sync timer.

use ngx::ffi::{
    ngx_conf_t, ngx_cycle_t, ngx_int_t, ngx_slab_pool_t, NGX_ERROR, NGX_LOG_EMERG, NGX_LOG_ERR, NGX_LOG_WARN, NGX_OK,
};

use ngx::ffi::{ngx_array_push, ngx_http_handler_pt, ngx_http_phases_NGX_HTTP_POST_READ_PHASE};
use ngx::http::{HttpModuleMainConf, NgxHttpCoreModule};

use crate::dyups::registry::Dyups;
use crate::dyups::worker::{release_all, start_timer, sync_on_request};
use crate::health::prober;
use crate::nginx::balancers::KnownBalancers;
use crate::nginx::entry::request_guard;
use crate::nginx::peer_stats::{now_ms, set_counting};
use crate::nginx::process::mark_started;
use crate::nginx::upstreams::{configured_upstreams, str_lossy};
use crate::ops::state_files;
use crate::zone::peers::max_peers_for_zone;
use crate::zone::reclaim::ZoneState;
use crate::zone::request_hook::{self, init_zone_peer};
use crate::zone::tried_bitmap::free_spares_with_cycle;
use crate::zone::upstream::{srv_conf, ZoneUpstream};
use crate::Module;
use dynamic_upstream_core::Balancer;

/// preconfiguration: register the Lua packages before any Lua code can run
/// (the Lua module may run `init_by_lua` in its own postconfiguration,
/// which comes before ours).
pub unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    request_guard(|| {
        // SAFETY: nginx calls preconfiguration with the http block's live
        // configuration context; every module's main conf exists by now.
        match unsafe { crate::api::lua::register_packages(cf) } {
            Ok(()) => NGX_OK as ngx_int_t,
            Err(()) => NGX_ERROR as ngx_int_t,
        }
    })
}

pub unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    request_guard(|| {
        // SAFETY: nginx calls postconfiguration with the live conf context.
        unsafe {
            let Some(main) = Module::main_conf_mut(&*cf) else {
                return NGX_ERROR as ngx_int_t;
            };
            main.balancers = KnownBalancers::probe(cf);
            if let Err(text) = state_files::validate((*cf).cycle, main) {
                ngx::ngx_log_error!(NGX_LOG_EMERG, (*cf).log, "{}", text);
                return NGX_ERROR as ngx_int_t;
            }
            // Every request first checks whether the dyups registry moved.
            let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(&*cf) else {
                return NGX_ERROR as ngx_int_t;
            };
            let handlers = &mut cmcf.phases[ngx_http_phases_NGX_HTTP_POST_READ_PHASE as usize].handlers;
            let slot = ngx_array_push(handlers).cast::<ngx_http_handler_pt>();
            if slot.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            *slot = Some(sync_on_request);
            match crate::config::finish_checks(cf, main) {
                Ok(()) => NGX_OK as ngx_int_t,
                Err(()) => NGX_ERROR as ngx_int_t,
            }
        }
    })
}

pub unsafe extern "C" fn init_module(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    request_guard(|| {
        // SAFETY: nginx calls init_module in the master with the new cycle
        // (ngx_cycle is still the old one), after its zones are initialised;
        // nothing can fail the cycle after init_module.
        unsafe {
            let main = Module::main_conf(&*cycle);
            // Only now, when this cycle can no longer fail, does its zone
            // (none without an http block) become the running one.
            let zone = main.map_or(core::ptr::null_mut(), |m| m.zone);
            Dyups::begin_cycle(zone);
            if main.is_none() {
                prober::set_zone(cycle, core::ptr::null_mut());
            }
            crate::api::c_api::set_enabled(!zone.is_null());
            let Some(main) = main else {
                return NGX_OK as ngx_int_t; // no http block
            };
            for uscf in configured_upstreams(cycle) {
                let Some(srv) = srv_conf(uscf) else { continue };
                srv.balancer = main.balancers.classify(uscf);
                let zone = (*uscf).shm_zone;
                if zone.is_null() || (*uscf).peer.data.is_null() {
                    continue;
                }
                srv.state = ZoneState::create((*zone).shm.addr.cast::<ngx_slab_pool_t>());
                if srv.state.is_null() {
                    ngx::ngx_log_error!(
                        NGX_LOG_WARN,
                        (*cycle).log,
                        "dynamic upstream: zone \"{}\" has no room for bookkeeping; upstream \"{}\" cannot be changed",
                        str_lossy(&(*zone).shm.name),
                        str_lossy(&(*uscf).host)
                    );
                    continue;
                }
                srv.max_peers_per_list = max_peers_for_zone((*zone).shm.size);
                // Statistics read the balancer's request data: nginx's own
                // balancers only.
                srv.hook = request_hook::needed(main.stats && !matches!(srv.balancer, Balancer::Other { .. }));
                if srv.hook.is_some() {
                    srv.original_init = (*uscf).peer.init;
                    (*uscf).peer.init = Some(init_zone_peer);
                    free_spares_with_cycle(cycle, &mut srv.spare_bitmaps);
                }
            }
            // Restored run-time upstreams and zone peers get their health
            // records there.
            let not_carried = prober::set_zone(cycle, main.check_zone);
            state_files::load_at_start(cycle, main);
            if let Err(text) = prober::begin_cycle(cycle, not_carried) {
                ngx::ngx_log_error!(NGX_LOG_ERR, (*cycle).log, "{}", text);
            }
            start_plus_api(cycle, main.stats);
            NGX_OK as ngx_int_t
        }
    })
}

/// After the state files were restored: the instance's figures for the
/// NGINX Plus API's `/nginx`, whether this cycle counts statistics, and
/// every zone upstream's server IDs (the configuration's order, or the
/// state file's) and first revision (the load time in microseconds, so
/// that revisions never repeat across reloads).
///
/// # Safety
/// In the master's init_module, with the new cycle.
unsafe fn start_plus_api(cycle: *mut ngx_cycle_t, counting: bool) {
    let now_ms = now_ms();
    crate::ops::plus::start_cycle(now_ms);
    set_counting(counting);
    // SAFETY: per the contract; the upstreams of the new cycle, whose lists
    // no worker can reach yet.
    unsafe {
        for uscf in configured_upstreams(cycle) {
            if srv_conf(uscf).is_some_and(|srv| !srv.state.is_null()) {
                if let Ok(zone) = ZoneUpstream::of(uscf, &str_lossy(&(*uscf).host), |_, _| None) {
                    zone.start_ids(now_ms * 1000);
                }
            }
        }
    }
}

/// init_process: every worker keeps its dyups view fresh on a timer too.
pub unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    mark_started();
    request_guard(|| {
        // SAFETY: nginx calls init_process in the new worker with its cycle.
        if let Some(main) = unsafe { Module::main_conf(&*cycle) } {
            start_timer(main.read_msg_timeout);
            // SAFETY: as above.
            unsafe { prober::start(cycle) };
        }
        NGX_OK as ngx_int_t
    })
}

/// exit_process: free this worker's dyups versions.
pub unsafe extern "C" fn exit_process(_cycle: *mut ngx_cycle_t) {
    let _ = request_guard(|| {
        release_all();
        prober::release_all();
        NGX_OK as ngx_int_t
    });
}

/// exit_master: release what the master's statics hold.
pub unsafe extern "C" fn exit_master(_cycle: *mut ngx_cycle_t) {
    let _ = request_guard(|| {
        state_files::forget();
        NGX_OK as ngx_int_t
    });
}

//! Start-up work for each configuration cycle.
//!
//! * `preconfiguration`: register the Lua packages (see [`crate::api::lua`]).
//! * `postconfiguration` (while the configuration is read): learn the
//!   balancers' init functions (see [`crate::nginx::balancers`]).
//! * `init_module` (in the master, after the shared zones exist and before
//!   the workers fork): for every zone upstream, classify its balancer,
//!   allocate the module's bookkeeping in its zone and wrap its `peer.init`
//!   with [`crate::zone::upstream::request_hook`] where that is needed. Workers
//!   inherit all of it.
//! * `init_process` (in each worker): start the dyups sync timer and the
//!   health checks' prober.
//!
//! nginx calls them through [`crate::nginx::module_hooks`], which hands
//! over its structures as references.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use ngx::ffi::{NGX_LOG_EMERG, NGX_LOG_ERR, NGX_LOG_WARN};

use crate::dyups::registry::{Dyups, InitPatience};
use crate::dyups::worker::{release_all, start_timer, SyncOnRequest};
use crate::health::prober;
use crate::nginx::module_hooks::{CycleHooks, InitModule, InitProcess, Postconfiguration};
use crate::nginx::peer_stats::{now_ms, set_counting};
use crate::nginx::process::{ignore_file_size_signal, mark_started};
use crate::ops::state_files;
use crate::zone::upstream::request_hook::prepare_upstreams;
use crate::zone::upstream::{has_bookkeeping, ZoneUpstream};

/// The module's cycle hooks.
pub struct Hooks;

impl CycleHooks for Hooks {
    type LuaPackages = crate::api::lua::Packages;

    fn postconfiguration(post: &mut Postconfiguration) -> Result<(), ()> {
        let balancers = post.probe_balancers();
        let valid = post.with_main_conf(|cycle, main| {
            main.balancers = balancers;
            state_files::validate(cycle, main)
        });
        valid.ok_or(())?.map_err(|text| post.log(NGX_LOG_EMERG, &text))?;
        crate::config::warn_zone_name_clashes(post);
        // Every request first checks whether the dyups registry moved.
        post.add_post_read_handler::<SyncOnRequest>()?;
        crate::config::finish_checks(post)
    }

    fn init_module(init: &InitModule) {
        // Only now, when this cycle can no longer fail, does its zone (none
        // without an http block) become the running one.
        Dyups::begin_cycle(init);
        // One wait for a registry lock a stuck process holds, not one per step.
        let mut patience = InitPatience::default();
        let Some(main) = init.main_conf() else {
            prober::set_zone(init, &mut patience);
            crate::api::c_api::set_enabled(false);
            return; // no http block
        };
        crate::api::c_api::set_enabled(!main.dyups_zone().is_null());
        // Before the state files are restored, whose servers get IDs only
        // where statistics are counted.
        set_counting(main.stats);
        prepare_upstreams(init, &main.balancers, main.stats);
        // Restored run-time upstreams and zone peers get their health
        // records there.
        let not_carried = prober::set_zone(init, &mut patience);
        // The cycle's load time, before the dyups_upstream_conf a new
        // registry loads: its versions follow it.
        let registry_version = Dyups::of_new_cycle(init).map_or(0, |dyups| dyups.version_now());
        crate::ops::cycles::start_cycle(now_ms(), registry_version);
        state_files::load_at_start(init, main);
        for warning in crate::ops::dyups::unknown_key_variables(init, &mut patience) {
            init.log(NGX_LOG_WARN, &warning);
        }
        if let Err(text) = prober::begin_cycle(init, not_carried, &mut patience) {
            init.log(NGX_LOG_ERR, &text);
        }
        start_plus_api(init, main.stats, &mut patience);
    }

    /// Every worker keeps its dyups view fresh on a timer too, and probes
    /// the checked peers.
    fn init_process(process: &InitProcess) {
        mark_started();
        ignore_file_size_signal();
        state_files::write_dyups_if_behind();
        if let Some(main) = process.main_conf() {
            start_timer(main.read_msg_timeout);
            prober::start(process.cycle());
        }
    }

    /// Frees this worker's dyups versions and its probes.
    fn exit_process() {
        release_all();
        prober::release_all();
    }

    /// Releases what the master's statics hold.
    fn exit_master() {
        state_files::forget();
    }
}

/// After the state files were restored (and [`crate::ops::cycles::start_cycle`]):
/// every zone upstream's server IDs (the configuration's order, or the
/// state file's) and first revision (past the load time in microseconds and
/// every revision given before, so that revisions never repeat across
/// reloads). In init_module, with the new cycle, whose lists no worker can
/// reach yet.
fn start_plus_api(init: &InitModule, counting: bool, patience: &mut InitPatience) {
    let first_revision = crate::ops::cycles::revisions_start_us();
    for upstream in init.cycle().upstreams() {
        if has_bookkeeping(upstream) {
            if let Ok(zone) = ZoneUpstream::of_new_cycle(init, upstream, |_, _| None) {
                zone.start_ids(first_revision);
            }
        }
    }
    // A registry a reload kept may have been built while no statistics
    // were counted.
    let Some(dyups) = counting.then(|| Dyups::of_new_cycle(init)).flatten() else { return };
    let skipped = dyups.while_write_locked(patience, |held| held.map(|held| held.ensure_ids()).unwrap_or_default());
    if !skipped.is_empty() {
        init.log(
            NGX_LOG_WARN,
            &format!(
                "dynamic upstream: the servers of {} have no ID until their next change: their peer lists stayed \
                 locked for 100 ms (a process killed holding a lock?)",
                skipped.join(", ")
            ),
        );
    }
}

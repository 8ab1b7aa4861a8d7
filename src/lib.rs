//! nginx module that changes upstreams at run time.
//!
//! This crate is the glue between nginx and the nginx-free logic in the
//! `dynamic-upstream-core` crate (which forbids `unsafe`). Its files are
//! layers that only import downward (`docs/architecture.md`, checked by
//! `scripts/check-layers.sh`): `nginx/` wraps nginx's structures and calls,
//! `zone/` edits zone upstreams, `dyups/` keeps the run-time upstreams,
//! `ops/` holds the operations every front end shares, `api/` the front
//! ends; this file, `config.rs` and `cycle.rs` tie them to nginx.
//!
//! `unsafe` (each block with its `// SAFETY:` comment, which clippy
//! enforces) is in these files only:
//!
//! * `nginx/`: the wrappers, every file but `entry.rs` and `mod.rs`:
//!   requests and the content handlers nginx calls (`http_io.rs`), the
//!   cycle hooks and directive handlers nginx calls (`module_hooks.rs`),
//!   logs, locks, slab peer lists, the per-peer records, socket addresses,
//!   the upstream table and nginx's strings, the balancers' directives
//!   and the requests' `tried` bitmaps (with the pool cleanups that give
//!   them back), variables, the module's shared zones, process globals,
//!   timers and
//!   probe connections on the event loop (`timer.rs`,
//!   `probe_connection.rs`), `flock`, the Lua C API and the `ndu_*`
//!   functions LuaJIT calls with raw pointers and lengths (`lua_c.rs`), what
//!   differs between nginx versions;
//! * `zone/`: `upstream.rs` (a zone upstream's lists and srv conf),
//!   `peers.rs` (its edits call the list changes that are `unsafe`:
//!   nginx's balancers rely on invariants only its checks keep),
//!   `upstream/request_hook.rs` (the
//!   `peer.init`/`peer.free` wrappers nginx calls, installed in
//!   init_module), `health.rs` (the health records in shared memory, and
//!   the checked upstreams' lists their health goes to);
//! * `dyups/`: `registry.rs` (the registry's structs in shared memory),
//!   `grace.rs` (its grace period's per-process slots), `worker.rs` (each
//!   worker's scratch upstreams, nginx's upstream table, the `peer.init`
//!   and timer nginx calls);
//! * this file: the module object, its directive table (offsets nginx
//!   writes at) and which structure each configuration level is.
//!
//! The compiler holds the others to it: `config.rs`, `cycle.rs`, `ops/`,
//! `health/`, `zone/ids.rs`, `zone/reclaim.rs` and `zone/tried_bitmap.rs`
//! (which reach the peers' records and the removed peers through
//! `nginx/`'s handles of locked lists, the bitmaps through
//! `nginx/balancers.rs`), `nginx/holder.rs`, `dyups/registry_lock.rs`, `dyups/test_stall.rs` and every file of `api/` but `c_api.rs` (whose
//! `#[no_mangle]` the lint counts; it takes nginx's structures as
//! references and has no `unsafe` block) start with `#![forbid(unsafe_code)]`.
//! A reference to an nginx structure is trusted to be one nginx made, as
//! the `ngx` crate trusts it (`ngx_str_t::as_bytes`); safe files get none
//! of nginx's cycle or configuration structures, whose copies would
//! outlive a reload: the hooks lend a `Cycle<'c>`, and `Upstream<'c>`
//! handles cannot outlive it. What only one phase of nginx's life may do
//! takes that phase's token (`nginx::module_hooks::{Postconfiguration,
//! InitModule}`). The `ngx` crate's `main_conf`/`server_conf`/
//! `location_conf` and their `_mut` twins are safe but hand out a
//! `&'static` (`mut`) to any module's configuration (nginx's own too):
//! `clippy.toml` disallows them, and each call (in `nginx/` and in the
//! files that hold `unsafe`) is allowed where it is made, with its reason.
//! `scripts/check-misuse.sh` checks `misuse.rs`'s safe edits are refused.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod api;
mod config;
mod cycle;
mod dyups;
mod health;
// Empty but under scripts/check-misuse.sh.
mod misuse;
mod nginx;
mod ops;
mod zone;

use core::mem::offset_of;

use ngx::ffi::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_set_msec_slot, ngx_conf_set_str_slot, ngx_http_module_t,
    ngx_module_t, NGX_CONF_ANY, NGX_CONF_FLAG, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_HTTP_LOC_CONF,
    NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_MODULE, NGX_HTTP_SRV_CONF,
    NGX_HTTP_SRV_CONF_OFFSET, NGX_HTTP_UPS_CONF,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf};
use ngx::ngx_string;

use cycle::Hooks;
use nginx::module_hooks::ConfContext;
use nginx::module_hooks::{self, command, slot, ConfLevel};

pub use nginx::conf::{LocConf, MainConf};
pub use zone::upstream::SrvConf;

/// The module type that ties the configuration structs to the module object.
pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx only mutates the module object (ctx_index, index)
        // while it reads the configuration, in one thread; handing out a
        // shared reference to it is what every ngx-rust module does.
        unsafe { &*core::ptr::addr_of!(ngx_http_dynamic_upstream_module) }
    }
}

/// The http module's init_main_conf.
unsafe extern "C" fn init_main_conf(
    cf: *mut ngx::ffi::ngx_conf_t,
    conf: *mut core::ffi::c_void,
) -> *mut core::ffi::c_char {
    // SAFETY: nginx passes its live conf context and the MainConf
    // create_main_conf made, which nothing else reaches meanwhile.
    let (mut context, conf) = unsafe { (ConfContext::from_raw(cf), &mut *conf.cast::<MainConf>()) };
    nginx::entry::conf_guard(|| config::init_main_conf(&mut context, conf))
}

// Which structure each of the module's configuration levels is: the ones
// its create_*_conf make (the `ngx` crate's HttpModule, above), and the
// directive table's `conf` offsets (ConfLevel).
// SAFETY: create_main_conf (nginx::module_hooks's) makes a MainConf.
unsafe impl HttpModuleMainConf for Module {
    type MainConf = MainConf;
}
// SAFETY: create_srv_conf (zone::upstream's) makes a SrvConf (in every server and upstream block).
unsafe impl HttpModuleServerConf for Module {
    type ServerConf = SrvConf;
}
// SAFETY: create_loc_conf (nginx::module_hooks's) makes a LocConf.
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = LocConf;
}
// SAFETY: as for HttpModuleMainConf.
unsafe impl ConfLevel for MainConf {
    const OFFSET: usize = NGX_HTTP_MAIN_CONF_OFFSET;
}
// SAFETY: as for HttpModuleServerConf.
unsafe impl ConfLevel for SrvConf {
    const OFFSET: usize = NGX_HTTP_SRV_CONF_OFFSET;
}
// SAFETY: as for HttpModuleLocationConf.
unsafe impl ConfLevel for LocConf {
    const OFFSET: usize = NGX_HTTP_LOC_CONF_OFFSET;
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(module_hooks::preconfiguration::<Hooks>),
    postconfiguration: Some(module_hooks::postconfiguration::<Hooks>),
    create_main_conf: Some(module_hooks::create_main_conf),
    init_main_conf: Some(init_main_conf),
    create_srv_conf: Some(zone::upstream::create_srv_conf),
    merge_srv_conf: None,
    create_loc_conf: Some(module_hooks::create_loc_conf),
    merge_loc_conf: Some(module_hooks::merge_loc_conf),
};

/// The module object nginx loads; its name is the one `load_module` reports.
#[used]
#[allow(non_upper_case_globals)]
#[cfg_attr(not(feature = "export-modules"), no_mangle)]
pub static mut ngx_http_dynamic_upstream_module: ngx_module_t = ngx_module_t {
    ctx: core::ptr::addr_of!(MODULE_CTX) as _,
    // SAFETY: only the address of the command table is taken here; nginx
    // reads it while parsing the configuration.
    commands: unsafe { core::ptr::addr_of_mut!(COMMANDS[0]) },
    type_: NGX_HTTP_MODULE as _,
    init_module: Some(module_hooks::init_module::<Hooks>),
    init_process: Some(module_hooks::init_process::<Hooks>),
    exit_process: Some(module_hooks::exit_process::<Hooks>),
    exit_master: Some(module_hooks::exit_master::<Hooks>),
    ..ngx_module_t::default()
};

#[cfg(feature = "export-modules")]
ngx::ngx_modules!(ngx_http_dynamic_upstream_module);

/// The directive table nginx reads (terminated by an empty entry).
// SAFETY (every entry): http contexts only; each `slot` field has the type
// its setter stores (flag: ngx_flag_t, msec: ngx_msec_t, str: ngx_str_t),
// and the field of each `command` whose handler calls `set_size` is a
// usize (`shm_zone_size`, `check_shm_size`); the others' handlers set no
// field through nginx.
#[allow(clippy::undocumented_unsafe_blocks)]
static mut COMMANDS: [ngx_command_t; 18] = [
    unsafe {
        command::<config::SetPlusApi>(
            ngx_string!("dynamic_upstream_api"),
            NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
            0,
        )
    },
    unsafe {
        command::<config::SetMetrics>(ngx_string!("dynamic_upstream_metrics"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, 0)
    },
    unsafe {
        command::<config::SetCheckStatus>(
            ngx_string!("check_status"),
            NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
            0,
        )
    },
    unsafe {
        command::<config::SetDynamicUpstream>(ngx_string!("dynamic_upstream"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, 0)
    },
    unsafe {
        command::<config::SetDyupsInterface>(ngx_string!("dyups_interface"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, 0)
    },
    unsafe {
        slot::<LocConf>(
            ngx_string!("dynamic_upstream_read_only"),
            NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
            ngx_conf_set_flag_slot,
            offset_of!(LocConf, dynamic_read_only),
        )
    },
    unsafe {
        slot::<LocConf>(
            ngx_string!("dyups_read_only"),
            NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
            ngx_conf_set_flag_slot,
            offset_of!(LocConf, dyups_read_only),
        )
    },
    unsafe {
        command::<config::SetShmZoneSize>(
            ngx_string!("dyups_shm_zone_size"),
            NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
            offset_of!(MainConf, shm_zone_size),
        )
    },
    unsafe {
        slot::<MainConf>(
            ngx_string!("dyups_read_msg_timeout"),
            NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
            ngx_conf_set_msec_slot,
            offset_of!(MainConf, read_msg_timeout),
        )
    },
    unsafe {
        slot::<MainConf>(
            ngx_string!("dyups_trylock"),
            NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG,
            ngx_conf_set_flag_slot,
            offset_of!(MainConf, trylock),
        )
    },
    unsafe {
        slot::<MainConf>(
            ngx_string!("dyups_upstream_conf"),
            NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
            ngx_conf_set_str_slot,
            MainConf::UPSTREAM_CONF_OFFSET,
        )
    },
    unsafe {
        slot::<SrvConf>(
            ngx_string!("dynamic_state_file"),
            NGX_HTTP_UPS_CONF | NGX_CONF_TAKE1,
            ngx_conf_set_str_slot,
            SrvConf::STATE_FILE_OFFSET,
        )
    },
    unsafe { command::<config::SetCheck>(ngx_string!("check"), NGX_HTTP_UPS_CONF | NGX_CONF_ANY, 0) },
    unsafe { command::<config::SetCheck>(ngx_string!("check_http_send"), NGX_HTTP_UPS_CONF | NGX_CONF_ANY, 0) },
    unsafe { command::<config::SetCheck>(ngx_string!("check_http_expect_alive"), NGX_HTTP_UPS_CONF | NGX_CONF_ANY, 0) },
    unsafe {
        command::<config::SetCheck>(ngx_string!("check_keepalive_requests"), NGX_HTTP_UPS_CONF | NGX_CONF_ANY, 0)
    },
    unsafe {
        command::<config::SetCheckShmSize>(
            ngx_string!("check_shm_size"),
            NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
            offset_of!(MainConf, check_shm_size),
        )
    },
    ngx_command_t::empty(),
];

//! nginx module that changes upstreams at run time.
//!
//! This crate is only the glue between nginx and the nginx-free logic in the
//! `dynamic-upstream-core` crate: it declares the module and its directives
//! and owns every `unsafe` line, kept in a few small files with safe APIs.

mod balancer;
mod c_api;
mod change_log;
mod config;
mod cycle;
mod dynamic_api;
mod dyups_api;
mod dyups_registry;
mod dyups_worker;
mod entry;
mod handlers;
mod http_io;
mod lua;
mod lua_api;
mod peer_lock;
mod persist;
mod reclaim;
mod request_hook;
mod sockaddr;
mod state_files;
mod variables;
mod zone_peers;

use ngx::ffi::{ngx_http_module_t, ngx_module_t, NGX_HTTP_MODULE};
use ngx::http::HttpModule;

pub use config::{LocConf, MainConf, SrvConf};

/// The module type that ties the configuration structs to the module object.
pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx only mutates the module object (ctx_index, index)
        // while it reads the configuration, in one thread; handing out a
        // shared reference to it is what every ngx-rust module does.
        unsafe { &*core::ptr::addr_of!(ngx_http_dynamic_upstream_module) }
    }

    unsafe extern "C" fn init_main_conf(
        cf: *mut ngx::ffi::ngx_conf_t,
        conf: *mut core::ffi::c_void,
    ) -> *mut core::ffi::c_char {
        // SAFETY: nginx passes its conf context and this module's MainConf.
        entry::conf_guard(|| unsafe { config::init_main_conf(cf, conf) })
    }
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(cycle::preconfiguration),
    postconfiguration: Some(cycle::postconfiguration),
    create_main_conf: Some(Module::create_main_conf),
    init_main_conf: Some(Module::init_main_conf),
    create_srv_conf: Some(Module::create_srv_conf),
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(Module::merge_loc_conf),
};

/// The module object nginx loads; its name is the one `load_module` reports.
#[used]
#[allow(non_upper_case_globals)]
#[cfg_attr(not(feature = "export-modules"), no_mangle)]
pub static mut ngx_http_dynamic_upstream_module: ngx_module_t = ngx_module_t {
    ctx: core::ptr::addr_of!(MODULE_CTX) as _,
    // SAFETY: only the address of the command table is taken here; nginx
    // reads it while parsing the configuration.
    commands: unsafe { core::ptr::addr_of_mut!(config::COMMANDS[0]) },
    type_: NGX_HTTP_MODULE as _,
    init_module: Some(cycle::init_module),
    init_process: Some(cycle::init_process),
    exit_process: Some(cycle::exit_process),
    exit_master: Some(cycle::exit_master),
    ..ngx_module_t::default()
};

#[cfg(feature = "export-modules")]
ngx::ngx_modules!(ngx_http_dynamic_upstream_module);

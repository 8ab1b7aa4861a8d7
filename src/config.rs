//! Configuration: the module's directives and where their values live.
//!
//! Values are stored through nginx's own slot setters (`ngx_conf_set_*_slot`)
//! into `#[repr(C)]` fields of nginx's types, so nginx does the parsing,
//! range checks, duplicate detection and error messages exactly as it does
//! for its own directives.

use core::ffi::{c_char, c_void};
use core::mem::offset_of;
use core::ptr;

use dynamic_upstream_core::health::status_page::StatusFormat;
use dynamic_upstream_core::Address;
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_set_msec_slot, ngx_conf_set_size_slot, ngx_conf_set_str_slot,
    ngx_conf_t, ngx_http_upstream_server_t, ngx_http_upstream_srv_conf_t, ngx_str_t, ngx_uint_t, NGX_CONF_ANY,
    NGX_CONF_FLAG, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF,
    NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_SRV_CONF, NGX_HTTP_SRV_CONF_OFFSET, NGX_HTTP_UPS_CONF, NGX_LOG_EMERG,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};
use ngx::ngx_string;

use crate::api::handlers;
use crate::nginx::conf::{
    LocConf, MainConf, DEFAULT_READ_MSG_TIMEOUT_MS, DEFAULT_SHM_ZONE_SIZE, MIN_SHM_ZONE_SIZE, UNSET_FLAG, UNSET_MSEC,
    UNSET_SIZE,
};
use crate::nginx::entry::conf_guard;
use crate::nginx::upstreams::{configured_upstreams, str_lossy};
use crate::zone::health;
use crate::zone::upstream::{srv_conf, SrvConf};
use crate::Module;

/// Fills in the defaults of directives the configuration did not set.
///
/// # Safety
/// Called by nginx with its `ngx_conf_t` and the conf this module created.
pub unsafe fn init_main_conf(cf: *mut ngx_conf_t, conf: *mut c_void) -> *mut c_char {
    // SAFETY: nginx passes the MainConf that create_main_conf allocated.
    let conf = unsafe { &mut *conf.cast::<MainConf>() };
    if conf.shm_zone_size == UNSET_SIZE {
        conf.shm_zone_size = DEFAULT_SHM_ZONE_SIZE;
    }
    if conf.read_msg_timeout == UNSET_MSEC {
        conf.read_msg_timeout = DEFAULT_READ_MSG_TIMEOUT_MS;
    }
    if conf.trylock == UNSET_FLAG {
        conf.trylock = 0;
    }
    // SAFETY: cf is the live configuration context of the http block.
    match unsafe { crate::dyups::registry::declare_zone(cf, conf.shm_zone_size) } {
        Ok(zone) => {
            conf.zone = zone;
            NGX_CONF_OK
        }
        Err(()) => NGX_CONF_ERROR,
    }
}

/// `dyups_shm_zone_size SIZE;`: nginx's size parser, and a minimum.
extern "C" fn set_shm_zone_size(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    conf_guard(|| {
        // SAFETY: nginx calls directive handlers with its live ngx_conf_t,
        // the command and this module's MainConf, as the slot setter needs.
        unsafe {
            let rv = ngx_conf_set_size_slot(cf, cmd, conf);
            let size = (*conf.cast::<MainConf>()).shm_zone_size;
            if rv.is_null() && size < MIN_SHM_ZONE_SIZE {
                ngx::ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "\"dyups_shm_zone_size\" must be at least {}k, not {} bytes",
                    MIN_SHM_ZONE_SIZE / 1024,
                    size
                );
                return NGX_CONF_ERROR;
            }
            rv
        }
    })
}

/// `check_shm_size SIZE;`: nginx's size parser, and a minimum.
extern "C" fn set_check_shm_size(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    conf_guard(|| {
        // SAFETY: nginx calls directive handlers with its live ngx_conf_t,
        // the command and this module's MainConf, as the slot setter needs.
        unsafe {
            let rv = ngx_conf_set_size_slot(cf, cmd, conf);
            let size = (*conf.cast::<MainConf>()).check_shm_size;
            if rv.is_null() && size < health::MIN_SHM_SIZE {
                ngx::ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "\"check_shm_size\" must be at least {}k, not {} bytes",
                    health::MIN_SHM_SIZE / 1024,
                    size
                );
                return NGX_CONF_ERROR;
            }
            rv
        }
    })
}

/// `check`, `check_http_send`, `check_http_expect_alive`,
/// `check_keepalive_requests` in an `upstream {}` block: collected for
/// the upstream, each validated as it is read ([`finish_checks`] makes
/// the upstream's checks).
extern "C" fn set_check(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    conf_guard(|| {
        // SAFETY: nginx calls directive handlers with its live ngx_conf_t,
        // whose args are the directive's words, and the upstream's SrvConf.
        unsafe {
            let srv = &mut *conf.cast::<SrvConf>();
            let args = &*(*cf).args;
            let words: Vec<String> = core::slice::from_raw_parts(args.elts.cast::<ngx_str_t>(), args.nelts)
                .iter()
                .map(|w| String::from_utf8_lossy(w.as_bytes()).into_owned())
                .collect();
            match srv.checks.apply(&words[0], &words[1..]) {
                Ok(()) => NGX_CONF_OK,
                Err(e) => {
                    ngx::ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", e.text);
                    NGX_CONF_ERROR
                }
            }
        }
    })
}

/// postconfiguration: makes every upstream's checks; a checked upstream
/// needs a `zone` (its peers' health is shared by the workers there) and
/// a name that fits the health zone's records. Declares the health zone
/// if an upstream has checks, or run-time upstreams may have them (a
/// `dyups_interface` location, or `check_shm_size` given for Lua and the
/// C API).
///
/// # Safety
/// `cf` is the live configuration context of the http block.
pub unsafe fn finish_checks(cf: *mut ngx_conf_t, main: &mut MainConf) -> Result<(), ()> {
    let mut any = false;
    // SAFETY: per the contract; the upstreams' srv confs are this cycle's.
    unsafe {
        for uscf in configured_upstreams((*cf).cycle) {
            let Some(srv) = srv_conf(uscf) else { continue };
            let name = str_lossy(&(*uscf).host);
            let failed = |text: &str| {
                ngx::ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{} in upstream \"{}\"", text, name);
            };
            srv.check = core::mem::take(&mut srv.checks).finish().map_err(|e| failed(&e.text))?;
            if srv.check.is_none() {
                continue;
            }
            if (*uscf).shm_zone.is_null() {
                failed("\"check\" needs a \"zone\": the workers share the peers' health there");
                return Err(());
            }
            if (*uscf).host.len > health::UPSTREAM_NAME_MAX {
                failed(&format!("\"check\" needs an upstream name of at most {} bytes", health::UPSTREAM_NAME_MAX));
                return Err(());
            }
            // The probes connect to the address a peer's name reads back
            // as: a name that does not (a relative unix path, say) could
            // never be checked, and would stay default_down.
            if let Some(e) = unprobed_server(uscf) {
                failed(&format!("\"check\" cannot probe this server: {e}"));
                return Err(());
            }
            any = true;
        }
        if any || main.dyups_interface || main.check_shm_size != UNSET_SIZE {
            if main.check_shm_size == UNSET_SIZE {
                main.check_shm_size = health::DEFAULT_SHM_SIZE;
            }
            main.check_zone = health::declare_zone(cf, main.check_shm_size);
            if main.check_zone.is_null() {
                return Err(());
            }
        }
    }
    Ok(())
}

/// Why the checks could not probe a server of `uscf`, if one is such.
///
/// # Safety
/// `uscf` is an upstream block of the cycle being configured.
unsafe fn unprobed_server(uscf: *mut ngx_http_upstream_srv_conf_t) -> Option<String> {
    // SAFETY: per the contract; the servers array and its addresses are
    // the configuration's.
    unsafe {
        let servers = (*uscf).servers;
        if servers.is_null() {
            return None;
        }
        let servers =
            core::slice::from_raw_parts((*servers).elts.cast::<ngx_http_upstream_server_t>(), (*servers).nelts);
        servers
            .iter()
            .filter(|s| !s.addrs.is_null())
            .flat_map(|s| core::slice::from_raw_parts(s.addrs, s.naddrs))
            .find_map(|a| Address::parse(&str_lossy(&a.name)).err())
            .map(|e| e.text)
    }
}

/// `dynamic_upstream;` makes the location serve the query-string API.
extern "C" fn set_dynamic_upstream(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, _conf: *mut c_void) -> *mut c_char {
    set_location_handler(cf, handlers::dynamic_upstream_handler)
}

/// `dyups_interface;` makes the location serve the REST API.
extern "C" fn set_dyups_interface(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, _conf: *mut c_void) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with a valid ngx_conf_t of the
    // http block, whose main confs exist.
    if let Some(main) = unsafe { Module::main_conf_mut(&*cf) } {
        main.dyups_interface = true;
    }
    set_location_handler(cf, handlers::dyups_interface_handler)
}

/// `dynamic_upstream_api [write=on|off];` makes the location serve the
/// NGINX Plus API (read-only unless `write=on`).
extern "C" fn set_plus_api(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    conf_guard(|| {
        // SAFETY: nginx calls directive handlers with its live ngx_conf_t
        // (arguments in cf->args) and this module's LocConf.
        unsafe {
            let args = (*(*cf).args).as_slice::<ngx_str_t>();
            let write = match args.get(1).map(|a| a.as_bytes()) {
                None | Some(b"write=off") => 0,
                Some(b"write=on") => 1,
                Some(other) => {
                    ngx::ngx_conf_log_error!(
                        NGX_LOG_EMERG,
                        cf,
                        "invalid parameter \"{}\" in \"dynamic_upstream_api\": write=on or write=off",
                        String::from_utf8_lossy(other)
                    );
                    return NGX_CONF_ERROR;
                }
            };
            (*conf.cast::<LocConf>()).plus_write = write;
        }
        set_stats_handler(cf, handlers::plus_api_handler)
    })
}

/// `dynamic_upstream_metrics;` makes the location serve the Prometheus page.
extern "C" fn set_metrics(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, _conf: *mut c_void) -> *mut c_char {
    conf_guard(|| set_stats_handler(cf, handlers::metrics_handler))
}

/// `check_status [html|csv|json];` makes the location serve the health
/// checks' status page (HTML unless given).
extern "C" fn set_check_status(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    conf_guard(|| {
        // SAFETY: nginx calls directive handlers with its live ngx_conf_t
        // (arguments in cf->args) and this module's LocConf.
        unsafe {
            let args = (*(*cf).args).as_slice::<ngx_str_t>();
            let format = match args.get(1) {
                None => StatusFormat::Html,
                Some(a) => match StatusFormat::parse(&String::from_utf8_lossy(a.as_bytes())) {
                    Some(format) => format,
                    None => {
                        ngx::ngx_conf_log_error!(
                            NGX_LOG_EMERG,
                            cf,
                            "invalid parameter \"{}\" in \"check_status\": html, csv or json",
                            String::from_utf8_lossy(a.as_bytes())
                        );
                        return NGX_CONF_ERROR;
                    }
                },
            };
            (*conf.cast::<LocConf>()).check_status = format;
        }
        set_location_handler(cf, handlers::check_status_handler)
    })
}

/// Installs `handler`, whose answers show per-peer statistics: requests
/// count them from now on.
fn set_stats_handler(cf: *mut ngx_conf_t, handler: handlers::ContentHandler) -> *mut c_char {
    // SAFETY: a directive of an http location: the http main conf exists.
    match unsafe { <crate::Module as ngx::http::HttpModuleMainConf>::main_conf_mut(&*cf) } {
        Some(main) => main.stats = true,
        None => return NGX_CONF_ERROR,
    }
    set_location_handler(cf, handler)
}

/// Installs `handler` as the content handler of the location being parsed.
fn set_location_handler(cf: *mut ngx_conf_t, handler: handlers::ContentHandler) -> *mut c_char {
    conf_guard(|| {
        // SAFETY: nginx calls directive handlers with a valid ngx_conf_t
        // whose ctx is the http location being parsed (the directives are
        // NGX_HTTP_LOC_CONF only).
        match unsafe { NgxHttpCoreModule::location_conf_mut(&*cf) } {
            Some(clcf) => {
                clcf.handler = Some(handler);
                NGX_CONF_OK
            }
            None => NGX_CONF_ERROR,
        }
    })
}

const fn directive(
    name: ngx_str_t,
    type_: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char,
    conf: usize,
    offset: usize,
) -> ngx_command_t {
    ngx_command_t { name, type_: type_ as ngx_uint_t, set: Some(set), conf, offset, post: ptr::null_mut() }
}

/// The directive table nginx reads (terminated by an empty entry).
pub static mut COMMANDS: [ngx_command_t; 18] = [
    directive(
        ngx_string!("dynamic_upstream_api"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
        set_plus_api,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    directive(
        ngx_string!("dynamic_upstream_metrics"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        set_metrics,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    directive(
        ngx_string!("check_status"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
        set_check_status,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    directive(
        ngx_string!("dynamic_upstream"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        set_dynamic_upstream,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    directive(
        ngx_string!("dyups_interface"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        set_dyups_interface,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    directive(
        ngx_string!("dynamic_upstream_read_only"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, dynamic_read_only),
    ),
    directive(
        ngx_string!("dyups_read_only"),
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, dyups_read_only),
    ),
    directive(
        ngx_string!("dyups_shm_zone_size"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        set_shm_zone_size,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offset_of!(MainConf, shm_zone_size),
    ),
    directive(
        ngx_string!("dyups_read_msg_timeout"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offset_of!(MainConf, read_msg_timeout),
    ),
    directive(
        ngx_string!("dyups_trylock"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offset_of!(MainConf, trylock),
    ),
    directive(
        ngx_string!("dyups_upstream_conf"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_str_slot,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offset_of!(MainConf, upstream_conf),
    ),
    directive(
        ngx_string!("dynamic_state_file"),
        NGX_HTTP_UPS_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_str_slot,
        NGX_HTTP_SRV_CONF_OFFSET,
        offset_of!(SrvConf, state_file),
    ),
    directive(ngx_string!("check"), NGX_HTTP_UPS_CONF | NGX_CONF_ANY, set_check, NGX_HTTP_SRV_CONF_OFFSET, 0),
    directive(ngx_string!("check_http_send"), NGX_HTTP_UPS_CONF | NGX_CONF_ANY, set_check, NGX_HTTP_SRV_CONF_OFFSET, 0),
    directive(
        ngx_string!("check_http_expect_alive"),
        NGX_HTTP_UPS_CONF | NGX_CONF_ANY,
        set_check,
        NGX_HTTP_SRV_CONF_OFFSET,
        0,
    ),
    directive(
        ngx_string!("check_keepalive_requests"),
        NGX_HTTP_UPS_CONF | NGX_CONF_ANY,
        set_check,
        NGX_HTTP_SRV_CONF_OFFSET,
        0,
    ),
    directive(
        ngx_string!("check_shm_size"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        set_check_shm_size,
        NGX_HTTP_MAIN_CONF_OFFSET,
        offset_of!(MainConf, check_shm_size),
    ),
    ngx_command_t::empty(),
];

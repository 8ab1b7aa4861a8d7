//! Configuration: what the module's directives do (their table, with the
//! offsets nginx writes at, is the module object's: `lib.rs`).
//!
//! Values are stored through nginx's own slot setters (`ngx_conf_set_*_slot`)
//! into `#[repr(C)]` fields of nginx's types, so nginx does the parsing,
//! range checks, duplicate detection and error messages exactly as it does
//! for its own directives.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use core::ffi::c_char;
use std::collections::HashSet;

use dynamic_upstream_core::health::status_page::StatusFormat;
use dynamic_upstream_core::Address;
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};

use crate::api::handlers;
use crate::nginx::conf::{
    LocConf, MainConf, DEFAULT_READ_MSG_TIMEOUT_MS, DEFAULT_SHM_ZONE_SIZE, MIN_SHM_ZONE_SIZE, UNSET_FLAG, UNSET_MSEC,
    UNSET_SIZE,
};
use crate::nginx::http_io::RequestHandler;
use crate::nginx::module_hooks::ConfContext;
use crate::nginx::module_hooks::{Directive, DirectiveCall, DirectiveError, DirectiveError::Logged, Postconfiguration};
use crate::zone::health;
use crate::zone::upstream::{finish_checks as finish_upstream_checks, SrvConf};

/// Fills in the defaults of directives the configuration did not set.
pub fn init_main_conf(context: &mut ConfContext<'_>, conf: &mut MainConf) -> *mut c_char {
    if conf.shm_zone_size == UNSET_SIZE {
        conf.shm_zone_size = DEFAULT_SHM_ZONE_SIZE;
    }
    if conf.read_msg_timeout == UNSET_MSEC {
        conf.read_msg_timeout = DEFAULT_READ_MSG_TIMEOUT_MS;
    }
    if conf.trylock == UNSET_FLAG {
        conf.trylock = 0;
    }
    if crate::dyups::registry::declare_zone(context, conf) {
        NGX_CONF_OK
    } else {
        NGX_CONF_ERROR
    }
}

/// nginx's size parser for a directive, then a minimum (`what` of
/// `MainConf`).
fn set_size_at_least(
    call: &mut DirectiveCall<'_, MainConf>,
    name: &str,
    min: usize,
    what: fn(&MainConf) -> usize,
) -> Result<(), DirectiveError> {
    call.set_size()?;
    let size = what(call.conf());
    if size < min {
        call.emerg(&format!("\"{name}\" must be at least {}k, not {size} bytes", min / 1024));
        return Err(Logged);
    }
    Ok(())
}

/// `dyups_shm_zone_size SIZE;`: nginx's size parser, and a minimum.
pub struct SetShmZoneSize;
impl Directive for SetShmZoneSize {
    type Conf = MainConf;
    fn set(call: &mut DirectiveCall<'_, MainConf>) -> Result<(), DirectiveError> {
        set_size_at_least(call, "dyups_shm_zone_size", MIN_SHM_ZONE_SIZE, |c| c.shm_zone_size)
    }
}

/// `check_shm_size SIZE;`: nginx's size parser, and a minimum.
pub struct SetCheckShmSize;
impl Directive for SetCheckShmSize {
    type Conf = MainConf;
    fn set(call: &mut DirectiveCall<'_, MainConf>) -> Result<(), DirectiveError> {
        set_size_at_least(call, "check_shm_size", health::MIN_SHM_SIZE, |c| c.check_shm_size)
    }
}

/// `check`, `check_http_send`, `check_http_expect_alive`,
/// `check_keepalive_requests` in an `upstream {}` block: collected for
/// the upstream, each validated as it is read ([`finish_checks`] makes
/// the upstream's checks).
pub struct SetCheck;
impl Directive for SetCheck {
    type Conf = SrvConf;
    fn set(call: &mut DirectiveCall<'_, SrvConf>) -> Result<(), DirectiveError> {
        let words = call.words();
        let (name, args) = words.split_first().ok_or(Logged)?;
        call.conf().checks.apply(name, args).map_err(|e| {
            call.emerg(&e.text);
            Logged
        })
    }
}

/// The query API finds an upstream by its zone's name first (as
/// ngx_dynamic_upstream does), so a zone named as another upstream hides
/// that upstream from `upstream=NAME`: said with `[warn]` while the
/// configuration is read.
pub fn warn_zone_name_clashes(post: &Postconfiguration) {
    let upstreams = post.cycle().upstreams();
    let names: HashSet<String> = upstreams.iter().map(|u| u.name()).collect();
    for upstream in &upstreams {
        let Some(zone) = upstream.zone_name() else { continue };
        if upstream.name_is(&zone) {
            continue;
        }
        if let Some(other) = names.get(&zone) {
            post.log(
                ngx::ffi::NGX_LOG_WARN,
                &format!(
                    "zone \"{zone}\" of upstream \"{}\" has the name of upstream \"{}\": the query API's \
                     upstream={zone} reaches upstream \"{}\", which finds zones first (give the zone another name)",
                    upstream.name(),
                    other,
                    upstream.name()
                ),
            );
        }
    }
}

/// postconfiguration: makes every upstream's checks; a checked upstream
/// needs a `zone` (its peers' health is shared by the workers there) and
/// a name that fits the health zone's records. Declares the health zone
/// if an upstream has checks, or run-time upstreams may have them (a
/// `dyups_interface` location, or `check_shm_size` given for Lua and the
/// C API).
pub fn finish_checks(post: &mut Postconfiguration) -> Result<(), ()> {
    let mut any = false;
    let mut peers = 0;
    for upstream in post.cycle().upstreams() {
        let name = upstream.name();
        let mut failed = |text: &str| post.context().emerg(&format!("{text} in upstream \"{name}\""));
        if !finish_upstream_checks(upstream).map_err(|e| failed(&e))? {
            continue;
        }
        if !upstream.has_zone() {
            failed("\"check\" needs a \"zone\": the workers share the peers' health there");
            return Err(());
        }
        if upstream.name_len() > health::UPSTREAM_NAME_MAX {
            failed(&format!("\"check\" needs an upstream name of at most {} bytes", health::UPSTREAM_NAME_MAX));
            return Err(());
        }
        // Peers nginx's resolver adds and removes at run time get no health
        // record: probing only the others would pass their failures on.
        if upstream.resolves_any() {
            failed(
                "\"check\" does not probe servers with \"resolve\" (nginx adds and removes their peers at run time)",
            );
            return Err(());
        }
        // The probes connect to the address a peer's name reads back as: a
        // name that does not (a relative unix path, say) could never be
        // checked, and would stay default_down.
        let addresses = upstream.server_addresses();
        if let Some(e) = addresses.iter().find_map(|a| Address::parse(a).err()) {
            failed(&format!("\"check\" cannot probe this server: {}", e.text));
            return Err(());
        }
        // A server given twice has one record.
        peers += addresses.iter().collect::<std::collections::HashSet<_>>().len();
        any = true;
    }
    health::expect_configured_peers(peers);
    let main = post.main_conf().ok_or(())?;
    if !(any || main.dyups_interface || main.check_shm_size != UNSET_SIZE) {
        return Ok(());
    }
    if main.check_shm_size == UNSET_SIZE {
        main.check_shm_size = health::DEFAULT_SHM_SIZE;
    }
    let size = main.check_shm_size;
    let declared = post.with_context_and_main_conf(|context, main| health::declare_zone(context, main, size));
    declared.filter(|&d| d).map(drop).ok_or(())
}

/// `dynamic_upstream;` makes the location serve the query-string API.
pub struct SetDynamicUpstream;
impl Directive for SetDynamicUpstream {
    type Conf = LocConf;
    fn set(call: &mut DirectiveCall<'_, LocConf>) -> Result<(), DirectiveError> {
        call.set_location_handler::<handlers::QueryApi>()
    }
}

/// `dyups_interface;` makes the location serve the REST API.
pub struct SetDyupsInterface;
impl Directive for SetDyupsInterface {
    type Conf = LocConf;
    fn set(call: &mut DirectiveCall<'_, LocConf>) -> Result<(), DirectiveError> {
        if let Some(main) = call.main_conf() {
            main.dyups_interface = true;
        }
        call.set_location_handler::<handlers::RestApi>()
    }
}

/// `dynamic_upstream_api [write=on|off];` makes the location serve the
/// NGINX Plus API (read-only unless `write=on`).
pub struct SetPlusApi;
impl Directive for SetPlusApi {
    type Conf = LocConf;
    fn set(call: &mut DirectiveCall<'_, LocConf>) -> Result<(), DirectiveError> {
        let write = match call.words().get(1).map(String::as_str) {
            None | Some("write=off") => 0,
            Some("write=on") => 1,
            Some(other) => {
                call.emerg(&format!(
                    "invalid parameter \"{other}\" in \"dynamic_upstream_api\": write=on or write=off"
                ));
                return Err(Logged);
            }
        };
        call.conf().plus_write = write;
        set_stats_handler::<handlers::PlusApi>(call)
    }
}

/// `dynamic_upstream_metrics;` makes the location serve the Prometheus page.
pub struct SetMetrics;
impl Directive for SetMetrics {
    type Conf = LocConf;
    fn set(call: &mut DirectiveCall<'_, LocConf>) -> Result<(), DirectiveError> {
        set_stats_handler::<handlers::MetricsPage>(call)
    }
}

/// `check_status [html|csv|json];` makes the location serve the health
/// checks' status page (HTML unless given).
pub struct SetCheckStatus;
impl Directive for SetCheckStatus {
    type Conf = LocConf;
    fn set(call: &mut DirectiveCall<'_, LocConf>) -> Result<(), DirectiveError> {
        let format = match call.words().get(1) {
            None => StatusFormat::Html,
            Some(word) => StatusFormat::parse(word).ok_or_else(|| {
                call.emerg(&format!("invalid parameter \"{word}\" in \"check_status\": html, csv or json"));
                Logged
            })?,
        };
        call.conf().check_status = format;
        call.set_location_handler::<handlers::CheckStatusPage>()
    }
}

/// Installs `handler`, whose answers show per-peer statistics: requests
/// count them from now on.
fn set_stats_handler<H: RequestHandler>(call: &mut DirectiveCall<'_, LocConf>) -> Result<(), DirectiveError> {
    call.main_conf().ok_or(Logged)?.stats = true;
    call.set_location_handler::<H>()
}

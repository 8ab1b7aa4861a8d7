//! The module's http-level and location-level settings, which the
//! directives (`crate::config`) fill in, and where a request finds them.
//! (The upstream-level ones are [`crate::zone::upstream::SrvConf`].)

use core::marker::PhantomData;
use core::ptr;

use dynamic_upstream_core::health::status_page::StatusFormat;
use ngx::ffi::{ngx_flag_t, ngx_http_handler_pt, ngx_msec_t, ngx_shm_zone_t};
use ngx::http::{Merge, MergeConfigError};

use crate::nginx::balancers::KnownBalancers;
use crate::nginx::upstreams::NgxText;

/// nginx's "unset" markers (`NGX_CONF_UNSET*` are C macros, not in the bindings).
pub const UNSET_FLAG: ngx_flag_t = -1;
pub const UNSET_SIZE: usize = usize::MAX;
pub const UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;

/// Defaults of the http-level directives.
pub const DEFAULT_SHM_ZONE_SIZE: usize = 2 * 1024 * 1024;
/// The smallest `dyups_shm_zone_size`: the registry's root takes about
/// 12 KiB, and smaller zones crashed the master at start.
pub const MIN_SHM_ZONE_SIZE: usize = 64 * 1024;
pub const DEFAULT_READ_MSG_TIMEOUT_MS: ngx_msec_t = 1000;

/// `http {}` level settings: for the run-time (dyups) upstreams, and the
/// health checks' zone.
#[repr(C)]
pub struct MainConf {
    /// `dyups_shm_zone_size`: size of the module's own shared zone.
    pub shm_zone_size: usize,
    /// `dyups_read_msg_timeout`: how often idle workers look for changes.
    pub read_msg_timeout: ngx_msec_t,
    /// `dyups_trylock`: answer 409 instead of waiting for the lock.
    pub trylock: ngx_flag_t,
    /// `dyups_upstream_conf`: file of `upstream {}` blocks kept in sync
    /// (nginx's slot setter writes it: [`MainConf::UPSTREAM_CONF_OFFSET`]).
    upstream_conf: NgxText,
    /// The balancers' `init_upstream` functions, learnt at configuration.
    pub balancers: KnownBalancers,
    /// The module's zone in this cycle (see [`crate::dyups::registry::declare_zone`]).
    zone: *mut ngx_shm_zone_t,
    /// `check_shm_size`: size of the health checks' zone.
    pub check_shm_size: usize,
    /// The health checks' zone in this cycle (null without `check`, a
    /// `dyups_interface` location or `check_shm_size`).
    check_zone: *mut ngx_shm_zone_t,
    /// A location has `dynamic_upstream_api` or `dynamic_upstream_metrics`:
    /// requests count per-peer statistics ([`crate::nginx::peer_stats`]).
    pub stats: bool,
    /// A `dyups_interface` location exists: its bodies may carry checks.
    pub dyups_interface: bool,
}

/// A zone [`crate::nginx::shm_zone::declare`] added to the cycle being
/// configured, for the callback that declared it, as a `K` zone (only
/// `declare`, an unsafe fn whose caller vouches for the kind, makes one):
/// what the module's configuration keeps of it is that cycle's zone of
/// that kind, not another's.
pub struct DeclaredZone<'a, K> {
    zone: *mut ngx_shm_zone_t,
    _context: PhantomData<(&'a mut ngx::ffi::ngx_conf_t, K)>,
}

/// The kind of the dyups registry's zone.
pub struct RegistryZone;

/// The kind of the health checks' zone.
pub struct HealthZoneKind;

impl<K> DeclaredZone<'_, K> {
    /// For `shm_zone::declare` only (which vouches for the kind): like a
    /// private function of the wrapper layer, it trusts its caller there.
    pub(in crate::nginx) fn new(zone: *mut ngx_shm_zone_t) -> Self {
        DeclaredZone { zone, _context: PhantomData }
    }

    pub(in crate::nginx) fn raw(&self) -> *mut ngx_shm_zone_t {
        self.zone
    }
}

/// Its fields that point into nginx's memory are written only by nginx
/// and `nginx/` (safe code could keep a copy of a string past the cycle, or
/// point a zone anywhere), read through these.
impl MainConf {
    /// Where nginx's `ngx_conf_set_str_slot` writes `dyups_upstream_conf`.
    pub const UPSTREAM_CONF_OFFSET: usize = core::mem::offset_of!(MainConf, upstream_conf);

    /// `dyups_upstream_conf` as configured (empty if not set).
    pub fn dyups_file(&self) -> String {
        self.upstream_conf.to_string_lossy()
    }

    /// The module's zone of this configuration (null before init_main_conf).
    pub fn dyups_zone(&self) -> *mut ngx_shm_zone_t {
        self.zone
    }

    pub fn set_dyups_zone(&mut self, zone: DeclaredZone<'_, RegistryZone>) {
        self.zone = zone.raw();
    }

    /// The health checks' zone of this configuration (null if none).
    pub fn check_zone(&self) -> *mut ngx_shm_zone_t {
        self.check_zone
    }

    pub fn set_check_zone(&mut self, zone: DeclaredZone<'_, HealthZoneKind>) {
        self.check_zone = zone.raw();
    }
}

impl MainConf {
    /// Not `Default`: a `MainConf` made outside nginx's create_main_conf
    /// could be swapped (`mem::swap`, `mem::replace`) into another cycle's
    /// configuration, or a cycle's taken out of it (`mem::take`) and kept
    /// past it, with its zone pointers and strings.
    pub(in crate::nginx) fn unset() -> Self {
        Self {
            shm_zone_size: UNSET_SIZE,
            read_msg_timeout: UNSET_MSEC,
            trylock: UNSET_FLAG,
            upstream_conf: NgxText::EMPTY,
            balancers: KnownBalancers::default(),
            zone: ptr::null_mut(),
            check_shm_size: UNSET_SIZE,
            check_zone: ptr::null_mut(),
            stats: false,
            dyups_interface: false,
        }
    }
}

/// Per-location settings; the API handlers are installed directly on the
/// location by their directives.
#[repr(C)]
pub struct LocConf {
    /// `dynamic_upstream_read_only`: the query-string API only lists.
    pub dynamic_read_only: ngx_flag_t,
    /// `dyups_read_only`: the REST API only answers GETs.
    pub dyups_read_only: ngx_flag_t,
    /// `dynamic_upstream_api write=on`: the NGINX Plus API may change upstreams.
    pub plus_write: ngx_flag_t,
    /// `check_status FORMAT`: the status page's format without `?format=`.
    pub check_status: StatusFormat,
    /// The content handler one of the module's directives installed on
    /// this location, for the `limit_except` block inside it
    /// ([`LocConf::inherit_location`]).
    pub(in crate::nginx) content_handler: ngx_http_handler_pt,
}

impl Default for LocConf {
    fn default() -> Self {
        Self {
            dynamic_read_only: UNSET_FLAG,
            dyups_read_only: UNSET_FLAG,
            plus_write: 0,
            check_status: StatusFormat::Html,
            content_handler: None,
        }
    }
}

impl Merge for LocConf {
    fn merge(&mut self, prev: &Self) -> Result<(), MergeConfigError> {
        for (value, parent) in
            [(&mut self.dynamic_read_only, prev.dynamic_read_only), (&mut self.dyups_read_only, prev.dyups_read_only)]
        {
            if *value == UNSET_FLAG {
                *value = if parent == UNSET_FLAG { 0 } else { parent };
            }
        }
        Ok(())
    }
}

impl LocConf {
    /// For the location nginx makes of a `limit_except` or `if` block
    /// inside `location` (a "noname" one, which no directive of this
    /// module can appear in): the requests nginx serves with it get the
    /// location's settings (`write=on`, the status page's format, what
    /// answers them), not the defaults. Nested `location` blocks inherit
    /// none of them, as nginx's content handlers are not inherited.
    pub(in crate::nginx) fn inherit_location(&mut self, location: &Self) {
        self.plus_write = location.plus_write;
        self.check_status = location.check_status;
        self.content_handler = location.content_handler;
    }
}

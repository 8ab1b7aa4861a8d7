//! Everything that differs between the nginx versions the module is built
//! for, in one place: nothing else in the module names a version.
//!
//! `build.rs` sets the cfg `nginx1_27_3` when the nginx tree it builds
//! against is 1.27.3 or later ("re-resolvable servers"). From that version
//! on, in a zone upstream:
//!
//! * every balancer counts the requests that picked a peer in `peer->refs`,
//!   and a removed peer with `refs` is only marked `zombie`: nginx frees it
//!   when its last request lets go (`ngx_http_upstream_rr_peer_unref`);
//! * the lists share a generation word (`*peers->config`); a request whose
//!   list changed since its `peer.init` gets no further peer from it
//!   (`NGX_BUSY`), and `hash ... consistent` and `random` rebuild their
//!   tables in each worker when it moved;
//! * `server NAME resolve` makes peers whose `host` points at their
//!   template's: nginx's resolver adds and removes them;
//! * upstreams with `NGX_HTTP_UPSTREAM_MODIFY` (every `upstream {}` block and
//!   built-in balancer) get the chosen peer's name copied into the request.
//!
//! Before 1.27.3 (1.22, 1.26) none of this exists: the module keeps removed
//! peers until their `conns` drops ([`crate::zone::reclaim`]), wraps the
//! request ([`crate::zone::upstream::request_hook`]), and refuses set changes for the
//! balancers whose tables are fixed at start.

pub use imp::*;

#[cfg(nginx1_27_3)]
mod imp {
    use core::ffi::c_void;

    use ngx::ffi::{
        ngx_http_complex_value_t, ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_slab_pool_t,
        ngx_uint_t, NGX_HTTP_UPSTREAM_MODIFY,
    };

    use crate::nginx::version::free_peer_now;

    /// nginx frees removed peers itself once no request holds them.
    pub const NGINX_FREES_REMOVED_PEERS: bool = true;

    /// Round robin's `free` resets `fails` of the only server of a list
    /// after every attempt (1.28.3 does; 1.26.3 does not).
    pub const SINGLE_FREE_RESETS_FAILS: bool = true;

    /// `hash ... consistent` and `random` follow changes of the set of
    /// peers and of their weights.
    pub const TABLES_FOLLOW_CHANGES: bool = true;

    /// The flag that makes nginx copy the chosen peer's name into the
    /// request.
    pub const UPSTREAM_MODIFY: ngx_uint_t = NGX_HTTP_UPSTREAM_MODIFY as ngx_uint_t;

    /// The generation word a dyups registry list keeps next to itself.
    pub type ConfigWord = ngx_uint_t;

    /// `registry::ZONE_LAYOUT` with this nginx's peer structs.
    pub const DYUPS_ZONE_LAYOUT: u64 = 0x9580_a460_e276_f8d7;

    /// Tells nginx that the set of peers or their weights changed (not for
    /// down/up and the other parameters: a request whose list moved gets no
    /// further peer from it).
    ///
    /// # Safety
    /// The caller holds the write lock of `list` (a zone list) or `list` is
    /// unreached (a registry list being built).
    pub unsafe fn bump_config(list: *mut ngx_http_upstream_rr_peers_t) {
        // SAFETY: per the contract; the word is nginx's (zone lists) or the
        // registry list's, changed under the list's write lock.
        unsafe {
            let config = (*list).config;
            if !config.is_null() {
                *config = (*config).wrapping_add(1);
            }
        }
    }

    /// Points `list` (and its backup list) at the generation word `word`.
    ///
    /// # Safety
    /// `list` is a complete list no request can reach yet; `word` lives as
    /// long as it.
    pub unsafe fn set_config_word(list: *mut ngx_http_upstream_rr_peers_t, word: *mut ConfigWord) {
        // SAFETY: per the contract.
        unsafe {
            (*list).config = word;
            if !(*list).next.is_null() {
                (*(*list).next).config = word;
            }
        }
    }

    /// A backup list the module creates shares the primary's word.
    ///
    /// # Safety
    /// `list` is fresh zeroed memory; `primary` is write-locked or unreached.
    pub unsafe fn share_config(list: *mut ngx_http_upstream_rr_peers_t, primary: *mut ngx_http_upstream_rr_peers_t) {
        // SAFETY: per the contract.
        unsafe { (*list).config = (*primary).config };
    }

    /// The name a peer was resolved from (`server NAME resolve`), if it was.
    ///
    /// # Safety
    /// `peer` is a live peer of a list whose lock the caller holds.
    pub unsafe fn resolved_from<'a>(peer: *const ngx_http_upstream_rr_peer_t) -> Option<&'a [u8]> {
        // SAFETY: per the contract; a resolved peer's host is its
        // template's, which lives as long as the zone.
        unsafe {
            let host = (*peer).host;
            if host.is_null() {
                return None;
            }
            let name = &(*host).name;
            Some(if name.len == 0 { &[] } else { core::slice::from_raw_parts(name.data, name.len) })
        }
    }

    /// Whether a configuration's `server` line is `server NAME resolve`
    /// (nginx keeps its name in `host` for the resolver).
    pub fn server_resolves(server: &ngx::ffi::ngx_http_upstream_server_t) -> bool {
        server.host.len != 0
    }

    /// `ngx_http_upstream_rr_peer_free_locked` (a static inline that bindgen
    /// does not see): a peer some request holds (`refs`) becomes a zombie,
    /// freed by nginx when the last one lets go; any other is freed now.
    /// Returns whether it was freed.
    ///
    /// # Safety
    /// The caller holds the slab mutex of `pool` and the write locks of the
    /// peer's list; `peer` is unlinked.
    pub unsafe fn peer_free_locked(pool: *mut ngx_slab_pool_t, peer: *mut ngx_http_upstream_rr_peer_t) -> bool {
        // SAFETY: per the contract. Every `refs` change happens under the
        // list's write lock, or under its read lock and the peer's lock:
        // our write lock excludes both.
        unsafe {
            if (*peer).refs != 0 {
                (*peer).set_zombie(1);
                return false;
            }
            free_peer_now(pool, peer);
        }
        true
    }

    /// `ngx_http_upstream_random_srv_conf_t` (declared only in its .c).
    #[repr(C)]
    struct RandomSrvConf {
        two: ngx_uint_t,
        config: ngx_uint_t,
        ranges: *mut c_void,
    }

    /// `ngx_http_upstream_hash_srv_conf_t` (declared only in its .c).
    #[repr(C)]
    struct HashSrvConf {
        key: ngx_http_complex_value_t,
        config: ngx_uint_t,
        points: *mut c_void,
    }

    /// Frees the tables `random` (`ranges`) and `hash ... consistent`
    /// (`points`) built in this worker (`ngx_alloc`) for an upstream whose
    /// srv confs are `random` and `hash` (either may be null).
    ///
    /// # Safety
    /// The confs are those balancers' srv confs of an upstream no request
    /// uses any more.
    pub unsafe fn free_worker_tables(random: *mut c_void, hash: *mut c_void) {
        // SAFETY: per the contract.
        unsafe {
            if let Some(conf) = random.cast::<RandomSrvConf>().as_mut() {
                libc::free(conf.ranges);
                conf.ranges = core::ptr::null_mut();
            }
            if let Some(conf) = hash.cast::<HashSrvConf>().as_mut() {
                libc::free(conf.points);
                conf.points = core::ptr::null_mut();
            }
        }
    }
}

#[cfg(not(nginx1_27_3))]
mod imp {
    use core::ffi::c_void;

    use ngx::ffi::{ngx_http_upstream_rr_peer_t, ngx_http_upstream_rr_peers_t, ngx_slab_pool_t, ngx_uint_t};

    use crate::nginx::version::free_peer_now;

    /// nginx frees no removed peer: the module does
    /// ([`crate::zone::reclaim`]).
    pub const NGINX_FREES_REMOVED_PEERS: bool = false;

    /// Round robin's `free` returns before it counts or resets anything
    /// for the only server of a list.
    pub const SINGLE_FREE_RESETS_FAILS: bool = false;

    /// `hash ... consistent` and `random` compute their tables once.
    pub const TABLES_FOLLOW_CHANGES: bool = false;

    /// No such flag.
    pub const UPSTREAM_MODIFY: ngx_uint_t = 0;

    /// No generation word.
    pub type ConfigWord = ();

    /// `registry::ZONE_LAYOUT` with this nginx's peer structs.
    pub const DYUPS_ZONE_LAYOUT: u64 = 0xe548_db2d_af14_bfb7;

    /// No generation word.
    ///
    /// # Safety
    /// None needed; kept for the callers' uniformity.
    pub unsafe fn bump_config(_list: *mut ngx_http_upstream_rr_peers_t) {}

    /// No generation word.
    ///
    /// # Safety
    /// None needed.
    pub unsafe fn set_config_word(_list: *mut ngx_http_upstream_rr_peers_t, _word: *mut ConfigWord) {}

    /// No generation word.
    ///
    /// # Safety
    /// None needed.
    pub unsafe fn share_config(_list: *mut ngx_http_upstream_rr_peers_t, _primary: *mut ngx_http_upstream_rr_peers_t) {}

    /// No peer is resolved at run time.
    ///
    /// # Safety
    /// None needed.
    pub unsafe fn resolved_from<'a>(_peer: *const ngx_http_upstream_rr_peer_t) -> Option<&'a [u8]> {
        None
    }

    /// No `server ... resolve` before 1.27.3.
    pub fn server_resolves(_server: &ngx::ffi::ngx_http_upstream_server_t) -> bool {
        false
    }

    /// Frees the peer now (nginx has no reference count).
    ///
    /// # Safety
    /// The caller holds the slab mutex of `pool`; no request can reach
    /// `peer` any more.
    pub unsafe fn peer_free_locked(pool: *mut ngx_slab_pool_t, peer: *mut ngx_http_upstream_rr_peer_t) -> bool {
        // SAFETY: per the contract.
        unsafe { free_peer_now(pool, peer) };
        true
    }

    /// `ngx_http_upstream_random_srv_conf_t` (declared only in its .c).
    #[repr(C)]
    struct RandomSrvConf {
        two: ngx_uint_t,
        ranges: *mut c_void,
    }

    /// Frees the table `random` built in this worker (`ngx_alloc`) for an
    /// upstream whose `random` srv conf is `random` (may be null);
    /// `hash ... consistent` built its points in the configuration's pool.
    ///
    /// # Safety
    /// The conf is `random`'s srv conf of an upstream no request uses any
    /// more.
    pub unsafe fn free_worker_tables(random: *mut c_void, _hash: *mut c_void) {
        // SAFETY: per the contract.
        unsafe {
            if let Some(conf) = random.cast::<RandomSrvConf>().as_mut() {
                libc::free(conf.ranges);
                conf.ranges = core::ptr::null_mut();
            }
        }
    }
}

/// Frees a peer's blocks: what the zone module and
/// [`crate::nginx::peer_list::alloc_peer`] allocate, plus the TLS session
/// nginx may have cached in it (`ngx_http_upstream_rr_peer_free_locked`'s
/// list; a resolved peer's `host` is its template's). For a peer no
/// request can hold (never published, or of a dyups list no request holds
/// any more: the module never makes those zombies), whatever nginx's
/// version; [`peer_free_locked`] for a zone peer just unlinked.
///
/// # Safety
/// The caller holds the slab mutex; no request can reach `peer` any more.
pub unsafe fn free_peer_now(pool: *mut ngx::ffi::ngx_slab_pool_t, peer: *mut ngx::ffi::ngx_http_upstream_rr_peer_t) {
    // SAFETY: per the contract.
    unsafe {
        let p = &mut *peer;
        for block in [p.ssl_session, p.server.data.cast(), p.name.data.cast(), p.sockaddr.cast()] {
            if !block.is_null() {
                ngx::ffi::ngx_slab_free_locked(pool, block);
            }
        }
        ngx::ffi::ngx_slab_free_locked(pool, peer.cast());
    }
}

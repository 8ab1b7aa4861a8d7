//! Safe edits that an adversarial review crashed nginx with (or could
//! have), each compiled only under `--cfg ndu_misuse="NAME"` by
//! `scripts/check-misuse.sh`, which checks each is refused as its
//! `// expect:` line says: by rustc with that error code, by clippy with
//! that lint, or (`runtime`) compiled but made harmless by a check at run
//! time. They are the `compile_fail` tests of a crate whose doc tests
//! cannot run (a cdylib's tests cannot link without nginx). Never part of
//! a build.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

/// A cycle kept past its callback (in a thread-local), to be read after a
/// reload freed it: `Cycle` borrows the callback's lifetime.
// expect: E0521
#[cfg(ndu_misuse = "cycle_kept")]
pub fn cycle_kept(init: &crate::nginx::module_hooks::InitModule) {
    thread_local! {
        static KEPT: core::cell::Cell<Option<crate::nginx::module_hooks::Cycle<'static>>> = const { core::cell::Cell::new(None) };
    }
    KEPT.with(|kept| kept.set(Some(init.cycle())));
}

/// nginx's cycle structure copied out of a lent cycle (`ngx_cycle_t` is
/// `Copy`; a copy kept past a reload points into freed memory: the review
/// reproduced it with `Upstream::of_cycle(&copy)`).
// expect: E0616
#[cfg(ndu_misuse = "cycle_copied")]
pub fn cycle_copied(init: &crate::nginx::module_hooks::InitModule) -> ngx::ffi::ngx_cycle_t {
    *init.cycle().raw
}

/// The new cycle's upstream blocks kept in a static past init_module.
// expect: E0521
#[cfg(ndu_misuse = "upstreams_kept")]
pub fn upstreams_kept(init: &crate::nginx::module_hooks::InitModule) {
    thread_local! {
        static BLOCKS: core::cell::RefCell<Vec<crate::nginx::upstreams::Upstream<'static>>> = const { core::cell::RefCell::new(Vec::new()) };
    }
    BLOCKS.with(|blocks| blocks.borrow_mut().extend(init.cycle().upstreams()));
}

/// nginx's structure of an upstream block copied out (its name and zone
/// are the configuration's memory, freed by a reload).
// expect: E0624
#[cfg(ndu_misuse = "upstream_conf_copied")]
pub fn upstream_conf_copied(upstream: crate::nginx::upstreams::Upstream<'_>) -> ngx::ffi::ngx_str_t {
    upstream.conf().host
}

/// The module's zone pointed anywhere: the registry's code trusts it.
// expect: E0616
#[cfg(ndu_misuse = "main_zone_forged")]
pub fn main_zone_forged(main: &mut crate::nginx::conf::MainConf) {
    main.zone = core::ptr::dangling_mut();
}

/// The `dyups_upstream_conf` string copied out of the configuration.
// expect: E0616
#[cfg(ndu_misuse = "main_string_copied")]
pub fn main_string_copied(main: &crate::nginx::conf::MainConf) -> ngx::ffi::ngx_str_t {
    main.upstream_conf
}

/// ngx's accessor of a module's http-level configuration: a `&'static`
/// from a reference to a request, which a reload frees.
// expect: clippy::disallowed_methods
#[cfg(ndu_misuse = "main_conf_static")]
pub fn main_conf_static(r: &ngx::ffi::ngx_http_request_t) -> Option<&'static crate::nginx::conf::MainConf> {
    <crate::Module as ngx::http::HttpModuleMainConf>::main_conf(r)
}

/// ngx's mutable accessor: nginx's own core configuration rewritten (the
/// zone review's SIGSEGV on the first request).
// expect: clippy::disallowed_methods
#[cfg(ndu_misuse = "core_conf_mut")]
pub fn core_conf_mut(r: &ngx::ffi::ngx_http_request_t) {
    if let Some(cmcf) = <ngx::http::NgxHttpCoreModule as ngx::http::HttpModuleMainConf>::main_conf_mut(r) {
        cmcf.phase_engine.handlers = core::ptr::null_mut();
    }
}

/// The running cycle's upstreams and the shared zones read from another
/// thread (racing a reload's switch in the master, or a worker's loop):
/// compiles, and finds nothing (`on_nginx_thread`).
// expect: runtime
#[cfg(ndu_misuse = "off_thread")]
pub fn off_thread() {
    std::thread::spawn(|| {
        let upstreams = crate::nginx::upstreams::Upstream::with_running(|running| running.upstreams().len());
        let zones =
            crate::dyups::registry::Dyups::get().is_some() || crate::zone::health::HealthZone::running().is_some();
        (upstreams, zones)
    });
}

/// A directive's handler (which gets the block's `&mut SrvConf`) pointing
/// the zone's bookkeeping anywhere: the request hook trusts it.
// expect: E0616
#[cfg(ndu_misuse = "srv_state_forged")]
pub fn srv_state_forged(srv: &mut crate::SrvConf) {
    srv.state = core::ptr::dangling_mut();
}

/// A directive's handler resizing the requests' `tried` bitmaps (nginx's
/// balancer then writes past them).
// expect: E0616
#[cfg(ndu_misuse = "srv_bitmap_size")]
pub fn srv_bitmap_size(srv: &mut crate::SrvConf) {
    srv.max_peers_per_list = usize::MAX;
}

/// A hand-made nginx string read (or written) through nginx-sys's safe
/// accessors: any address.
// expect: clippy::disallowed_methods
#[cfg(ndu_misuse = "ngx_str_forged")]
pub fn ngx_str_forged() -> u8 {
    let mut forged = ngx::ffi::ngx_str_t { len: 1 << 20, data: core::ptr::dangling_mut() };
    forged.as_bytes_mut().fill(0xbe);
    forged.as_bytes()[0]
}

/// A hand-made nginx string passed where the module trusts one nginx made.
// expect: E0603
#[cfg(ndu_misuse = "ngx_text_forged")]
pub fn ngx_text_forged() -> String {
    crate::nginx::upstreams::NgxText(ngx::ffi::ngx_str_t { len: 1 << 20, data: core::ptr::dangling_mut() })
        .to_string_lossy()
}

/// A peer handed to Lua with a name longer than its array (Lua reads
/// `name_len` bytes: the review's segfault inside LuaJIT).
// expect: E0616
#[cfg(ndu_misuse = "lua_peer_name_len")]
pub fn lua_peer_name_len(peer: &mut crate::nginx::lua_c::LuaPeer) {
    peer.name_len = 1 << 30;
}

/// ngx's buffer made from any pointer, then written through.
// expect: clippy::disallowed_methods
#[cfg(ndu_misuse = "buffer_forged")]
pub fn buffer_forged() {
    use ngx::core::Buffer;
    let mut buf = ngx::core::TemporaryBuffer::from_ngx_buf(core::ptr::dangling_mut());
    buf.set_last_buf(true);
}

/// A shared reference to the module's configuration beside the `&mut`
/// postconfiguration lends (the review's aliasing: UB).
// expect: E0624
#[cfg(ndu_misuse = "main_conf_aliased")]
pub fn main_conf_aliased(post: &mut crate::nginx::module_hooks::Postconfiguration<'_>) -> Option<bool> {
    post.with_main_conf(|cycle, main| {
        let shared = cycle.main_conf()?;
        main.stats = !shared.stats;
        Some(shared.stats)
    })?
}

/// The new cycle's registry kept past init_module (in the master, a
/// reload that resizes the zone unmaps it: the review's segfault).
// expect: E0521
#[cfg(ndu_misuse = "dyups_kept")]
pub fn dyups_kept(init: &crate::nginx::module_hooks::InitModule) {
    thread_local! {
        static KEPT: core::cell::RefCell<Option<crate::dyups::registry::Dyups<'static>>> = const { core::cell::RefCell::new(None) };
    }
    KEPT.with(|kept| *kept.borrow_mut() = crate::dyups::registry::Dyups::of_new_cycle(init));
}

/// A zone upstream of the new cycle kept past init_module.
// expect: E0521
#[cfg(ndu_misuse = "zone_upstream_kept")]
pub fn zone_upstream_kept(init: &crate::nginx::module_hooks::InitModule) {
    thread_local! {
        static KEPT: core::cell::RefCell<Vec<crate::zone::upstream::ZoneUpstream<'static>>> = const { core::cell::RefCell::new(Vec::new()) };
    }
    for upstream in init.cycle().upstreams() {
        if let Ok(zone) = crate::zone::upstream::ZoneUpstream::of_running(upstream, |_, _| None) {
            KEPT.with(|kept| kept.borrow_mut().push(zone));
        }
    }
}

/// A hand-made nginx string read through nginx-sys's other safe readers
/// (`strip_prefix`, `Display`, `==`, `AsRef`: review 7's `nginx -t`
/// segfault): the type is refused where it is named (a `use`, a type, a
/// signature) outside the files that hold `unsafe`. (A struct literal
/// written out in full escapes the lint: nginx-sys's own hole.)
// expect: clippy::disallowed_types
#[cfg(ndu_misuse = "ngx_str_strip")]
pub fn ngx_str_strip() -> bool {
    let forged: ngx::ffi::ngx_str_t = ngx::ffi::ngx_str_t { len: 1 << 20, data: 0x1000 as *mut u8 };
    format!("{forged}").is_empty()
}

/// The module's configuration taken out of its cycle (`mem::take`) to be
/// swapped into the next one (review 7: the master read a freed zone).
// expect: E0277
#[cfg(ndu_misuse = "main_conf_taken")]
pub fn main_conf_taken(post: &mut crate::nginx::module_hooks::Postconfiguration<'_>) -> Option<crate::MainConf> {
    post.main_conf().map(core::mem::take)
}

/// An upstream block's configuration taken out by a directive's handler,
/// its state file's string with it.
// expect: E0277
#[cfg(ndu_misuse = "srv_conf_taken")]
pub fn srv_conf_taken(srv: &mut crate::SrvConf) -> crate::SrvConf {
    core::mem::take(srv)
}

/// The health zone kept as the registry's (review 7: the master read the
/// health table as the registry).
// expect: E0133
#[cfg(ndu_misuse = "zone_kind_mixed")]
pub fn zone_kind_mixed(context: &mut crate::nginx::module_hooks::ConfContext<'_>, main: &mut crate::MainConf) {
    if let Some(zone) = crate::nginx::shm_zone::declare(context, "any", 1 << 20, None) {
        main.set_dyups_zone(zone);
    }
}

/// A content handler (which expects its location's configuration) added
/// to every request's POST_READ phase.
// expect: E0200
#[cfg(ndu_misuse = "post_read_any")]
pub fn post_read_any(post: &mut crate::nginx::module_hooks::Postconfiguration<'_>) -> Result<(), ()> {
    struct Any;
    impl crate::nginx::module_hooks::PostReadHandler for Any {
        const HANDLER: unsafe extern "C" fn(*mut ngx::ffi::ngx_http_request_t) -> ngx::ffi::ngx_int_t =
            crate::dyups::worker::SyncOnRequest::HANDLER;
    }
    post.add_post_read_handler::<Any>()
}

/// The running cycle's blocks kept in a thread-local whose destructor
/// reads them (review 7: a worker destroys its cycle's pool before
/// `exit()` runs the destructors: valgrind's invalid read).
// expect: E0521
#[cfg(ndu_misuse = "running_kept")]
pub fn running_kept() {
    thread_local! {
        static KEPT: core::cell::RefCell<Vec<crate::nginx::upstreams::Upstream<'static>>> = const { core::cell::RefCell::new(Vec::new()) };
    }
    crate::nginx::upstreams::Upstream::with_running(|running| {
        KEPT.with(|kept| kept.borrow_mut().extend(running.upstreams().iter().copied()));
    });
}

/// A safe file allowing itself what clippy.toml disallows (review 8: a
/// file of `ops/`, whose forbid is its mod.rs's, allowed `from_ngx_buf`):
/// clippy refuses the `allow` against the forbid (E0453).
// expect: clippy::disallowed_methods
#[cfg(ndu_misuse = "allow_in_safe_file")]
#[allow(clippy::disallowed_methods)]
pub fn allow_in_safe_file() {
    use ngx::core::Buffer;
    let mut buf = ngx::core::TemporaryBuffer::from_ngx_buf(core::ptr::dangling_mut());
    buf.set_last_buf(true);
}

/// Another function of nginx's handler type installed as a location's
/// content handler (review 8: `ngx_http_file_cache_open`, SIGSEGV on the
/// first request).
// expect: E0061
#[cfg(ndu_misuse = "location_handler_any")]
pub fn location_handler_any(call: &mut crate::nginx::module_hooks::DirectiveCall<'_, crate::LocConf>) {
    let _ = call.set_location_handler(ngx::ffi::ngx_http_file_cache_open);
}

/// The master's health zone kept in a thread-local across reloads that
/// resize it (review 8: a master segfault after `check_shm_size` went
/// 1m, 2m, 3m): the running zone is none in the master, and none in any
/// process while init_module runs (review 10: under `master_process off`
/// the serving process runs a reload's init_module, and the same keep
/// crashed it at the second resize).
// expect: runtime
#[cfg(ndu_misuse = "health_kept_in_master")]
pub fn health_kept_in_master(init: &crate::nginx::module_hooks::InitModule) {
    use crate::zone::health::HealthZone;
    thread_local! {
        static KEPT: core::cell::Cell<Option<HealthZone<'static>>> = const { core::cell::Cell::new(None) };
    }
    let kept = KEPT.with(|kept| kept.replace(HealthZone::running()));
    if let Some(zone) = kept {
        init.log(ngx::ffi::NGX_LOG_NOTICE, &format!("{} slots", zone.len()));
    }
}

/// The new cycle's health zone kept past init_module (the same crash, by
/// the zone init_module lends).
// expect: E0521
#[cfg(ndu_misuse = "health_of_new_cycle_kept")]
pub fn health_of_new_cycle_kept(init: &crate::nginx::module_hooks::InitModule) {
    use crate::zone::health::HealthZone;
    thread_local! {
        static KEPT: core::cell::Cell<Option<HealthZone<'static>>> = const { core::cell::Cell::new(None) };
    }
    KEPT.with(|kept| kept.set(HealthZone::of_new_cycle(init)));
}

/// A slot of the new cycle's health zone kept past init_module (review 8:
/// `slot()` answered a `&'static Slot`).
// expect: E0521
#[cfg(ndu_misuse = "health_slot_kept")]
pub fn health_slot_kept(init: &crate::nginx::module_hooks::InitModule) {
    use crate::zone::health::{HealthZone, Slot};
    thread_local! {
        static KEPT: core::cell::Cell<Option<&'static Slot>> = const { core::cell::Cell::new(None) };
    }
    if let Some(zone) = HealthZone::of_new_cycle(init) {
        let slot = zone.slot(0);
        KEPT.with(|kept| kept.set(Some(slot)));
    }
}

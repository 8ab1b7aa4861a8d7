//! The Lua C API, the Lua module's preload registration, and the C
//! functions the Lua packages call through LuaJIT's FFI.
//!
//! At configuration time [`register_packages`] looks up the Lua module's
//! `ngx_http_lua_add_package_preload` with `dlsym` (nginx opens modules with
//! global symbol visibility; looking it up, rather than linking to it, keeps
//! this module loadable without Lua) and registers a loader per
//! [`LuaPackage`]. A loader compiles and runs the package's embedded Lua
//! source with `luaL_loadbuffer` and `lua_call`, looked up the same way.
//!
//! The packages' Lua code calls the `ndu_*` functions below (declared again
//! in its `ffi.cdef`). They turn the pointers and lengths Lua passes into
//! slices and output buffers, and hand them to the [`LuaCalls`] the
//! packages were registered with, which does the work in safe Rust.

use core::ffi::{c_char, c_int, c_void, CStr};
use core::marker::PhantomData;
use std::sync::OnceLock;

use ngx::ffi::{ngx_conf_t, ngx_cycle_t, ngx_http_request_t, ngx_int_t, ngx_module_t, NGX_OK};

use crate::nginx::entry::request_guard;
use crate::nginx::log::Log;

/// An opaque `lua_State`.
#[repr(C)]
struct LuaState {
    _private: [u8; 0],
}

type LuaCFunction = unsafe extern "C-unwind" fn(*mut LuaState) -> c_int;
type AddPreload = unsafe extern "C" fn(*mut ngx_conf_t, *const c_char, LuaCFunction) -> ngx_int_t;
type LoadBuffer = unsafe extern "C-unwind" fn(*mut LuaState, *const c_char, usize, *const c_char) -> c_int;
type Call = unsafe extern "C-unwind" fn(*mut LuaState, c_int, c_int);

/// A package `require` loads by compiling and running embedded Lua source.
pub trait LuaPackage {
    /// The name `require` knows it by (`ngx.dynamic`).
    const NAME: &'static CStr;
    /// The Lua source; its result is the package (what `require` returns).
    const SOURCE: &'static str;
    /// The chunk name Lua's messages show (`=ngx.dynamic`).
    const CHUNK_NAME: &'static CStr;
}

/// The packages a configuration registers, one
/// [`Preload::register`] each.
pub trait LuaPackages {
    /// What the packages' `ndu_*` calls do.
    const CALLS: &'static dyn LuaCalls;
    /// Registers the packages; the first error ends the registration.
    fn register(preload: &Preload<'_>) -> Result<(), ()>;
}

/// The Lua module's preload registration for the http block being
/// configured; lent by [`register_packages`] for its call only.
pub struct Preload<'a> {
    cf: *mut ngx_conf_t,
    add: AddPreload,
    _conf: PhantomData<&'a mut ngx_conf_t>,
}

impl Preload<'_> {
    /// Registers `P`'s loader: `require(P::NAME)` runs `P::SOURCE`.
    pub fn register<P: LuaPackage>(&self) -> Result<(), ()> {
        // SAFETY: self.cf is the http block's live configuration context in
        // preconfiguration and self.add the Lua module of that cycle's
        // ngx_http_lua_add_package_preload (see register_packages); it
        // keeps the name's pointer, which is static.
        let rc = unsafe { (self.add)(self.cf, P::NAME.as_ptr(), loader::<P>) };
        if rc == NGX_OK as ngx_int_t {
            Ok(())
        } else {
            Err(())
        }
    }
}

/// Registers the packages of `P` if the Lua module is part of the cycle
/// being configured (nothing to do otherwise).
///
/// # Safety
/// `cf` must be the http block's live configuration context, in
/// preconfiguration (every module's main conf exists).
pub unsafe fn register_packages<P: LuaPackages>(cf: *mut ngx_conf_t) -> Result<(), ()> {
    // The same static object in every configuration: set once.
    let _ = CALLS.set(P::CALLS);
    // SAFETY: per the contract, cf and its cycle, whose modules are loaded,
    // are live.
    if !unsafe { lua_in_cycle((*cf).cycle) } {
        return Ok(()); // no Lua module: nothing to register
    }
    let Some(add) = symbol(c"ngx_http_lua_add_package_preload") else {
        return Ok(());
    };
    // SAFETY: the symbol, found in the cycle's Lua module, has the declared
    // C signature.
    let add = unsafe { core::mem::transmute::<*mut c_void, AddPreload>(add) };
    P::register(&Preload { cf, add, _conf: PhantomData })
}

/// Whether the Lua module that dlsym finds is one of `cycle`'s modules.
/// During a reload the old cycle's modules stay loaded until the new cycle
/// is running: a configuration that no longer loads Lua would otherwise
/// have the old Lua module register into a cycle it has no configuration
/// in (which crashed the master).
///
/// # Safety
/// `cycle` is the cycle being configured, its modules loaded.
unsafe fn lua_in_cycle(cycle: *mut ngx_cycle_t) -> bool {
    // SAFETY: per the contract, `modules` holds `modules_n` module pointers.
    unsafe {
        let Some(lua) = symbol(c"ngx_http_lua_module") else { return false };
        let modules = core::slice::from_raw_parts((*cycle).modules, (*cycle).modules_n);
        if modules.iter().any(|&m| m.cast::<c_void>() == lua) {
            return true;
        }
        let named_lua =
            |m: &*mut ngx_module_t| !(**m).name.is_null() && CStr::from_ptr((**m).name) == c"ngx_http_lua_module";
        if modules.iter().any(named_lua) {
            // A Lua module from another file than the running one's (which
            // dlsym finds first until the old cycle is gone).
            ngx::ngx_log_error!(
                ngx::ffi::NGX_LOG_WARN,
                (*cycle).log,
                "dynamic upstream: this configuration loads the Lua module from another file than the running \
                 one; require \"ngx.dynamic\" and \"ngx.dyups\" fail until nginx is restarted"
            );
        }
        false
    }
}

/// The address of the loaded symbol `name`, if any.
fn symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT only reads the loaded objects' symbol
    // tables; name is NUL-terminated.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// The `lua_CFunction` `require` calls to load `P`.
///
/// # Safety
/// For Lua only: `l` is the Lua state `require` passes to a loader.
unsafe extern "C-unwind" fn loader<P: LuaPackage>(l: *mut LuaState) -> c_int {
    // SAFETY: called by Lua's `require` with its state.
    unsafe { run_source(l, P::SOURCE, P::CHUNK_NAME) }
}

/// Compiles and runs `source`, leaving its result (the package table) on
/// the stack. A Lua error raised by either step propagates to `require` as
/// usual: the C-unwind ABI lets it unwind through this frame and the
/// loader's, which hold no value with a destructor.
///
/// # Safety
/// `l` is the Lua state `require` passed to the loader.
unsafe fn run_source(l: *mut LuaState, source: &str, chunk_name: &CStr) -> c_int {
    let (Some(load), Some(call)) = (symbol(c"luaL_loadbuffer"), symbol(c"lua_call")) else {
        return 0;
    };
    // SAFETY: per the contract; the Lua C API is present whenever a loader
    // runs (the Lua module registered it), and its functions have the
    // declared C signatures.
    unsafe {
        let load: LoadBuffer = core::mem::transmute::<*mut c_void, LoadBuffer>(load);
        let call: Call = core::mem::transmute::<*mut c_void, Call>(call);
        if load(l, source.as_ptr().cast(), source.len(), chunk_name.as_ptr()) != 0 {
            return 1; // the error message is on the stack: require returns it
        }
        call(l, 0, 1);
        1
    }
}

/// What the Lua packages' C functions do. Each gets Lua's arguments as
/// Rust values and returns 0 on success or the HTTP status the HTTP API
/// would answer, with the reason (or message) written to `err`.
pub trait LuaCalls: Sync {
    /// `ndu_list_zones`: the zone names, `\n`-separated.
    fn list_zones(&self, zones: &mut TextOut<'_>, err: &mut TextOut<'_>) -> c_int;
    /// `ndu_describe_zone`: the peers of zone upstream `zone`.
    fn describe_zone(&self, zone: &[u8], peers: &mut PeersOut<'_>, err: &mut TextOut<'_>) -> c_int;
    /// `ndu_change_peer`: adds, changes or removes a server, for the Lua
    /// code that logs to `log`.
    fn change_peer(&self, log: Log, change: &PeerChange<'_>, err: &mut TextOut<'_>) -> c_int;
    /// `ndu_dyups_update`: a run-time upstream's new servers (`body`).
    fn dyups_update(&self, log: Log, name: &[u8], body: &[u8], msg: &mut TextOut<'_>) -> c_int;
    /// `ndu_dyups_delete`.
    fn dyups_delete(&self, log: Log, name: &[u8], msg: &mut TextOut<'_>) -> c_int;
}

/// The calls of the registered packages (see [`register_packages`]).
static CALLS: OnceLock<&'static dyn LuaCalls> = OnceLock::new();

/// Runs `call` with the registered calls, inside the panic barrier (a
/// panic must not unwind into LuaJIT: it answers 500). Before any package
/// was registered (only Lua code that declares the functions itself could
/// call them then) answers 500 with a reason in `err`.
fn with_calls(err: &mut TextOut<'_>, call: impl FnOnce(&dyn LuaCalls, &mut TextOut<'_>) -> c_int) -> c_int {
    let Some(calls) = CALLS.get() else {
        err.set("ngx.dynamic and ngx.dyups are not registered in this process");
        return 500;
    };
    let mut status = 500;
    let guarded = request_guard(|| {
        status = call(*calls, err);
        0
    });
    if guarded != 0 {
        err.set("internal error");
        return 500;
    }
    status
}

/// A peer as `ndu_describe_zone` hands it to Lua: `ndu_peer_t` in
/// `src/api/lua/dynamic.lua`, which checks its declaration against
/// [`ndu_peer_layout`] when it is loaded. Every field is a number or bytes
/// (any bit pattern is one), so Lua's zeroed array is a valid `[LuaPeer]`.
/// Lua reads `name_len` bytes of `name` (and `last_error_len` of
/// `last_error`): those are private, set only by [`LuaPeer::set_name`] and
/// [`LuaPeer::set_last_error`], which keep them within the arrays.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LuaPeer {
    name: [u8; 128],
    name_len: usize,
    pub weight: i64,
    pub max_fails: i64,
    pub fail_timeout: i64,
    pub max_conns: i64,
    pub conns: i64,
    pub fails: i64,
    pub current_weight: i64,
    pub effective_weight: i64,
    pub accessed: i64,
    pub checked: i64,
    /// The checks' counts, last check and error (when `health` is not 0).
    pub rises: i64,
    pub falls: i64,
    pub last_check: i64,
    last_error: [u8; 64],
    last_error_len: usize,
    pub backup: i32,
    pub down: i32,
    /// 0: its upstream has no checks; 1: unchecked; 2: up; 3: down.
    pub health: i32,
}

impl Default for LuaPeer {
    fn default() -> Self {
        LuaPeer {
            name: [0; 128],
            name_len: 0,
            weight: 0,
            max_fails: 0,
            fail_timeout: 0,
            max_conns: 0,
            conns: 0,
            fails: 0,
            current_weight: 0,
            effective_weight: 0,
            accessed: 0,
            checked: 0,
            rises: 0,
            falls: 0,
            last_check: 0,
            last_error: [0; 64],
            last_error_len: 0,
            backup: 0,
            down: 0,
            health: 0,
        }
    }
}

impl LuaPeer {
    /// Its name, cut to the array's 128 bytes.
    pub fn set_name(&mut self, name: &str) {
        self.name_len = copy_cut(&mut self.name, name.as_bytes());
    }

    /// The last check's error, cut to the array's 64 bytes.
    pub fn set_last_error(&mut self, error: &str) {
        self.last_error_len = copy_cut(&mut self.last_error, error.as_bytes());
    }
}

/// Copies as much of `from` as fits into `to`; how much it copied.
fn copy_cut(to: &mut [u8], from: &[u8]) -> usize {
    let n = from.len().min(to.len());
    to[..n].copy_from_slice(&from[..n]);
    n
}

/// `ndu_change_peer`'s arguments: what to do (`op`) with `server` of zone
/// upstream `zone`; numbers negative when not given.
pub struct PeerChange<'a> {
    pub op: c_int,
    pub zone: &'a [u8],
    pub server: &'a [u8],
    pub weight: f64,
    pub max_fails: f64,
    pub fail_timeout: f64,
    pub max_conns: f64,
    pub down: c_int,
    pub backup: c_int,
}

/// A text buffer the Lua caller owns and its length slot; absent when Lua
/// passed a null pointer.
pub struct TextOut<'a>(Option<(&'a mut [u8], &'a mut usize)>);

impl TextOut<'_> {
    /// Writes as much of `text` as fits; the length slot gets what was
    /// written.
    pub fn set(&mut self, text: &str) {
        if let Some((buf, len)) = &mut self.0 {
            let n = text.len().min(buf.len());
            buf[..n].copy_from_slice(&text.as_bytes()[..n]);
            **len = n;
        }
    }

    /// Writes `text` only if it fits whole; the length slot gets its full
    /// length either way (the caller tries again with more room).
    pub fn set_whole(&mut self, text: &str) {
        if let Some((buf, len)) = &mut self.0 {
            if let Some(room) = buf.get_mut(..text.len()) {
                room.copy_from_slice(text.as_bytes());
            }
            **len = text.len();
        }
    }
}

/// The Lua caller's array of peers and its count slot.
pub struct PeersOut<'a>(Option<(&'a mut [LuaPeer], &'a mut usize)>);

impl PeersOut<'_> {
    /// Writes as many of `peers` as fit; the count slot gets how many
    /// there are (the caller tries again with more room).
    pub fn set(&mut self, peers: impl ExactSizeIterator<Item = LuaPeer>) {
        if let Some((room, count)) = &mut self.0 {
            **count = peers.len();
            for (slot, peer) in room.iter_mut().zip(peers) {
                *slot = peer;
            }
        }
    }
}

/// `cap` elements at `data` with slot `len`, or nothing if either pointer
/// is null.
///
/// # Safety
/// Unless null, `data` is valid for reads and writes of `cap` initialised
/// `T` and `len` of one `usize`, for `'a`, and nothing else uses them then.
unsafe fn out_of<'a, T>(data: *mut T, cap: usize, len: *mut usize) -> Option<(&'a mut [T], &'a mut usize)> {
    if data.is_null() || len.is_null() {
        return None;
    }
    // SAFETY: per the contract.
    unsafe { Some((core::slice::from_raw_parts_mut(data, cap), &mut *len)) }
}

/// The `len` bytes at `data` (nothing if null or 0).
///
/// # Safety
/// Unless null, `data` is valid for reads of `len` bytes for `'a`.
unsafe fn bytes<'a>(data: *const u8, len: usize) -> &'a [u8] {
    if data.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: per the contract.
    unsafe { core::slice::from_raw_parts(data, len) }
}

/// The log of request `r` (or timer's fake request) the calling Lua code
/// runs for, the cycle's if `r` is null: where its own `ngx.log` lines go.
///
/// # Safety
/// `r` is null or a live request.
unsafe fn request_log(r: *mut ngx_http_request_t) -> Log {
    // SAFETY: per the contract, r and its connection live during the call;
    // a connection's log lives as long as the cycle's files.
    unsafe {
        let log = r.as_ref().and_then(|r| r.connection.as_ref()).map_or(core::ptr::null_mut(), |c| c.log);
        Log::from_raw(log)
    }
}

/// The size and alignment of [`LuaPeer`], then the offsets of its fields
/// in declaration order, written to `out` (room for `cap`); returns how
/// many numbers the layout has.
///
/// # Safety
/// For Lua: `out` is null or `cap` initialised numbers (`ffi.new` zeroes).
#[no_mangle]
pub unsafe extern "C" fn ndu_peer_layout(out: *mut usize, cap: usize) -> usize {
    let layout = layout!(LuaPeer; name, name_len, weight, max_fails, fail_timeout, max_conns, conns, fails,
        current_weight, effective_weight, accessed, checked, rises, falls, last_check, last_error, last_error_len,
        backup, down, health);
    if !out.is_null() {
        // SAFETY: per the contract.
        let out = unsafe { core::slice::from_raw_parts_mut(out, cap) };
        for (slot, value) in out.iter_mut().zip(layout) {
            *slot = value;
        }
    }
    layout.len()
}

/// # Safety
/// For Lua: each buffer is null or has room for its capacity, each
/// length slot null or one `usize`.
#[no_mangle]
pub unsafe extern "C" fn ndu_list_zones(
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    err: *mut u8,
    err_cap: usize,
    err_len: *mut usize,
) -> c_int {
    // SAFETY: per the contract.
    let (mut zones, mut err) = unsafe { (TextOut(out_of(buf, cap, len)), TextOut(out_of(err, err_cap, err_len))) };
    with_calls(&mut err, |c, err| c.list_zones(&mut zones, err))
}

/// # Safety
/// For Lua: `zone` has `zone_len` bytes; `peers` is null or an array of
/// `cap` peers; each other buffer null or with room for its capacity, each
/// length slot null or one `usize`.
#[no_mangle]
pub unsafe extern "C" fn ndu_describe_zone(
    zone: *const u8,
    zone_len: usize,
    peers: *mut LuaPeer,
    cap: usize,
    count: *mut usize,
    err: *mut u8,
    err_cap: usize,
    err_len: *mut usize,
) -> c_int {
    // SAFETY: per the contract; LuaPeer has no invalid bit pattern.
    let (zone, mut peers, mut err) =
        unsafe { (bytes(zone, zone_len), PeersOut(out_of(peers, cap, count)), TextOut(out_of(err, err_cap, err_len))) };
    with_calls(&mut err, |c, err| c.describe_zone(zone, &mut peers, err))
}

/// Adds (`op` 0), changes (1) or removes (2) a server of a zone upstream.
///
/// # Safety
/// For Lua: `r` is null or the live request the calling Lua code runs for
/// (`resty.core.base.get_request()`); `zone` and `server` have their
/// lengths' bytes; `err` null or with room for `err_cap` bytes, `err_len`
/// null or one `usize`.
#[no_mangle]
pub unsafe extern "C" fn ndu_change_peer(
    r: *mut ngx_http_request_t,
    op: c_int,
    zone: *const u8,
    zone_len: usize,
    server: *const u8,
    server_len: usize,
    weight: f64,
    max_fails: f64,
    fail_timeout: f64,
    max_conns: f64,
    down: c_int,
    backup: c_int,
    err: *mut u8,
    err_cap: usize,
    err_len: *mut usize,
) -> c_int {
    // SAFETY: per the contract.
    let (log, zone, server, mut err) = unsafe {
        (request_log(r), bytes(zone, zone_len), bytes(server, server_len), TextOut(out_of(err, err_cap, err_len)))
    };
    let change = PeerChange { op, zone, server, weight, max_fails, fail_timeout, max_conns, down, backup };
    with_calls(&mut err, |c, err| c.change_peer(log, &change, err))
}

/// # Safety
/// As [`ndu_change_peer`]'s, for `name`, `body` and `msg`.
#[no_mangle]
pub unsafe extern "C" fn ndu_dyups_update(
    r: *mut ngx_http_request_t,
    name: *const u8,
    name_len: usize,
    body: *const u8,
    body_len: usize,
    msg: *mut u8,
    msg_cap: usize,
    msg_len: *mut usize,
) -> c_int {
    // SAFETY: per the contract.
    let (log, name, body, mut msg) = unsafe {
        (request_log(r), bytes(name, name_len), bytes(body, body_len), TextOut(out_of(msg, msg_cap, msg_len)))
    };
    with_calls(&mut msg, |c, msg| c.dyups_update(log, name, body, msg))
}

/// # Safety
/// As [`ndu_change_peer`]'s, for `name` and `msg`.
#[no_mangle]
pub unsafe extern "C" fn ndu_dyups_delete(
    r: *mut ngx_http_request_t,
    name: *const u8,
    name_len: usize,
    msg: *mut u8,
    msg_cap: usize,
    msg_len: *mut usize,
) -> c_int {
    // SAFETY: per the contract.
    let (log, name, mut msg) =
        unsafe { (request_log(r), bytes(name, name_len), TextOut(out_of(msg, msg_cap, msg_len))) };
    with_calls(&mut msg, |c, msg| c.dyups_delete(log, name, msg))
}

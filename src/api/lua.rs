//! `require "ngx.dynamic"` and `require "ngx.dyups"` for Debian's (or
//! OpenResty's) Lua module, when it is loaded before this one.
//!
//! At configuration time the module looks up the Lua module's
//! `ngx_http_lua_add_package_preload` with `dlsym` (nginx opens modules with
//! global symbol visibility; looking it up, rather than linking to it, keeps
//! this module loadable without Lua) and registers a loader per package.
//! A loader compiles and runs an embedded Lua wrapper (`src/api/lua/*.lua`)
//! that calls this module's `ndu_*` functions ([`crate::api::lua_ffi`]) through
//! LuaJIT's FFI. No `lua_package_path` is needed.

use core::ffi::{c_char, c_int, c_void, CStr};

use ngx::ffi::{ngx_conf_t, ngx_cycle_t, ngx_int_t, NGX_OK};

/// An opaque `lua_State`.
#[repr(C)]
pub struct LuaState {
    _private: [u8; 0],
}

type LuaCFunction = unsafe extern "C-unwind" fn(*mut LuaState) -> c_int;
type AddPreload = unsafe extern "C" fn(*mut ngx_conf_t, *const c_char, LuaCFunction) -> ngx_int_t;
type LoadBuffer = unsafe extern "C-unwind" fn(*mut LuaState, *const c_char, usize, *const c_char) -> c_int;
type Call = unsafe extern "C-unwind" fn(*mut LuaState, c_int, c_int);

const DYNAMIC_SOURCE: &str = include_str!("lua/dynamic.lua");
const DYUPS_SOURCE: &str = include_str!("lua/dyups.lua");

/// Registers the packages if the Lua module is part of the cycle being
/// configured (preconfiguration).
///
pub fn register_packages(cf: &mut ngx_conf_t) -> Result<(), ()> {
    let cf: *mut ngx_conf_t = cf;
    // SAFETY: dlsym with RTLD_DEFAULT only reads the loaded objects' symbol
    // tables; the symbol, when present, has the declared C signature.
    unsafe {
        if !lua_in_cycle((*cf).cycle) {
            return Ok(()); // no Lua module: nothing to register
        }
        let Some(add) = symbol(c"ngx_http_lua_add_package_preload") else {
            return Ok(());
        };
        let add: AddPreload = core::mem::transmute::<*mut c_void, AddPreload>(add);
        for (package, loader) in
            [(c"ngx.dynamic", load_dynamic as LuaCFunction), (c"ngx.dyups", load_dyups as LuaCFunction)]
        {
            if add(cf, package.as_ptr(), loader) != NGX_OK as ngx_int_t {
                return Err(());
            }
        }
    }
    Ok(())
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
        let named_lua = |m: &*mut ngx::ffi::ngx_module_t| {
            !(**m).name.is_null() && CStr::from_ptr((**m).name) == c"ngx_http_lua_module"
        };
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

unsafe fn symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: see register_packages.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

unsafe extern "C-unwind" fn load_dynamic(l: *mut LuaState) -> c_int {
    // SAFETY: called by Lua's `require` with its state.
    unsafe { run_source(l, DYNAMIC_SOURCE, c"=ngx.dynamic") }
}

unsafe extern "C-unwind" fn load_dyups(l: *mut LuaState) -> c_int {
    // SAFETY: called by Lua's `require` with its state.
    unsafe { run_source(l, DYUPS_SOURCE, c"=ngx.dyups") }
}

/// Compiles and runs `source`, leaving its result (the package table) on
/// the stack. A Lua error raised by either step propagates to `require` as
/// usual: the C-unwind ABI lets it unwind through this frame, which holds
/// no value with a destructor.
///
/// # Safety
/// `l` is the Lua state `require` passed to the loader.
unsafe fn run_source(l: *mut LuaState, source: &str, chunk_name: &CStr) -> c_int {
    // SAFETY: per the contract; the Lua C API is present whenever a loader
    // runs (the Lua module registered it).
    unsafe {
        let (Some(load), Some(call)) = (symbol(c"luaL_loadbuffer"), symbol(c"lua_call")) else {
            return 0;
        };
        let load: LoadBuffer = core::mem::transmute::<*mut c_void, LoadBuffer>(load);
        let call: Call = core::mem::transmute::<*mut c_void, Call>(call);
        if load(l, source.as_ptr().cast(), source.len(), chunk_name.as_ptr()) != 0 {
            return 1; // the error message is on the stack: require returns it
        }
        call(l, 0, 1);
        1
    }
}

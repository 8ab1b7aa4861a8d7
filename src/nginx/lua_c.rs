//! The Lua C API and the Lua module's preload registration, found at run
//! time.
//!
//! At configuration time [`register_packages`] looks up the Lua module's
//! `ngx_http_lua_add_package_preload` with `dlsym` (nginx opens modules with
//! global symbol visibility; looking it up, rather than linking to it, keeps
//! this module loadable without Lua) and registers a loader per
//! [`LuaPackage`]. A loader compiles and runs the package's embedded Lua
//! source with `luaL_loadbuffer` and `lua_call`, looked up the same way.

use core::ffi::{c_char, c_int, c_void, CStr};
use core::marker::PhantomData;

use ngx::ffi::{ngx_conf_t, ngx_cycle_t, ngx_int_t, ngx_module_t, NGX_OK};

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

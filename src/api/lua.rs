//! `require "ngx.dynamic"` and `require "ngx.dyups"` for Debian's (or
//! OpenResty's) Lua module, when it is loaded before this one.
//!
//! At configuration time the module registers a loader per package with
//! the Lua module ([`crate::nginx::lua_c`], which finds the Lua module and
//! the Lua C API at run time). A loader compiles and runs an embedded Lua
//! wrapper (`src/api/lua/*.lua`) that calls this module's `ndu_*` functions
//! (in [`crate::nginx::lua_c`], doing [`crate::api::lua_ffi`]'s calls)
//! through LuaJIT's FFI. No `lua_package_path` is
//! needed.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use core::ffi::CStr;

use crate::nginx::lua_c::{LuaCalls, LuaPackage, LuaPackages, Preload};

/// `require "ngx.dynamic"`: the query-string API's operations.
struct Dynamic;

impl LuaPackage for Dynamic {
    const NAME: &'static CStr = c"ngx.dynamic";
    const SOURCE: &'static str = include_str!("lua/dynamic.lua");
    const CHUNK_NAME: &'static CStr = c"=ngx.dynamic";
}

/// `require "ngx.dyups"`: the run-time upstreams' operations.
struct Dyups;

impl LuaPackage for Dyups {
    const NAME: &'static CStr = c"ngx.dyups";
    const SOURCE: &'static str = include_str!("lua/dyups.lua");
    const CHUNK_NAME: &'static CStr = c"=ngx.dyups";
}

/// Both packages, `ngx.dynamic` first, which the module's
/// preconfiguration registers ([`crate::nginx::lua_c::register_packages`]).
pub struct Packages;

impl LuaPackages for Packages {
    const CALLS: &'static dyn LuaCalls = &crate::api::lua_ffi::Calls;

    fn register(preload: &Preload<'_>) -> Result<(), ()> {
        preload.register::<Dynamic>()?;
        preload.register::<Dyups>()
    }
}

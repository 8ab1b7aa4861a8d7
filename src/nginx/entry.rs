//! Panic barrier for every `extern "C"` function nginx calls.
//!
//! A Rust panic must never unwind into nginx (since Rust 1.81 it would abort
//! the worker, and a worker that dies holding a spin lock in shared memory
//! hangs the others). Each entry point runs its body through one of these
//! functions, which turns a panic into an ordinary nginx error code. The
//! few that do not (pool cleanups, the no-peer balancer callbacks, the
//! zone init, the Lua loaders) only do raw pointer work, atomics and FFI
//! calls, none of which can panic.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ngx::ffi::{ngx_int_t, NGX_HTTP_INTERNAL_SERVER_ERROR};

/// Runs a request handler body; a panic becomes `500 Internal Server Error`.
pub fn request_guard(body: impl FnOnce() -> ngx_int_t) -> ngx_int_t {
    // AssertUnwindSafe: on a panic nothing the closure touched is used again
    // except by nginx's own error path, which only reads the request.
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        log_panic(&panic);
        NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
    })
}

/// Runs a configuration-time body; a panic fails the configuration.
pub fn conf_guard(body: impl FnOnce() -> *mut core::ffi::c_char) -> *mut core::ffi::c_char {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        log_panic(&panic);
        ngx::core::NGX_CONF_ERROR
    })
}

fn log_panic(panic: &Box<dyn std::any::Any + Send>) {
    let what = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic");
    // Bounded: a panic message is short, and we are not holding any lock here.
    let what: String = what.chars().take(200).collect();
    crate::nginx::log::log(ngx::ffi::NGX_LOG_ERR, &format!("dynamic upstream module: internal error: {what}"));
}

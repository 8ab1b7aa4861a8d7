//! The dyups C API for other nginx modules, as Tengine's dyups exports it:
//!
//! ```c
//! extern ngx_flag_t ngx_http_dyups_api_enable;
//! ngx_int_t ngx_dyups_update_upstream(ngx_str_t *name, ngx_buf_t *buf, ngx_str_t *rv);
//! ngx_int_t ngx_dyups_delete_upstream(ngx_str_t *name, ngx_str_t *rv);
//! ```
//!
//! Both return an HTTP status (200 on success) and set `rv` to the same
//! message the REST API would answer (`success`, `add server failed: ...`).
//! `rv` points into a per-worker buffer that stays valid until the next
//! call: copy it if you keep it. Call them from a worker, after the
//! configuration is read (`ngx_http_dyups_api_enable` is then 1).

use dynamic_upstream_core::ApiError;
use ngx::ffi::{ngx_buf_t, ngx_flag_t, ngx_int_t, ngx_str_t};

use crate::nginx::entry::request_guard;
use crate::nginx::process::in_running_process;
use crate::nginx::upstreams::str_lossy;
use crate::ops::change_log::Requester;
use crate::ops::dyups::{delete_upstream, update_upstream};

/// 1 while the running configuration has an http block (and so the dyups
/// zone); set in init_module, when a cycle can no longer fail.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_dyups_api_enable: ngx_flag_t = 0;

/// Longest message handed back through `rv`.
const RV_CAPACITY: usize = 1024;

thread_local! {
    static RV: core::cell::RefCell<[u8; RV_CAPACITY]> = const { core::cell::RefCell::new([0; RV_CAPACITY]) };
}

pub fn set_enabled(enabled: bool) {
    // SAFETY: set in init_module, in the master's only thread, before the
    // workers fork.
    unsafe { ngx_http_dyups_api_enable = ngx_flag_t::from(enabled) };
}

#[no_mangle]
pub unsafe extern "C" fn ngx_dyups_update_upstream(
    name: *mut ngx_str_t,
    buf: *mut ngx_buf_t,
    rv: *mut ngx_str_t,
) -> ngx_int_t {
    request_guard(|| {
        // SAFETY: the caller passes a valid name and a memory buffer
        // (pos..last), per the dyups API.
        let (name, body) = unsafe { (str_arg(name), buf_arg(buf)) };
        let result = match name {
            _ if !in_running_process() => Err(not_running()),
            Some(name) => update_upstream(&name, &body, false, false, &Requester::internal("c")),
            None => Err(ApiError::bad_request("invalid_name", "no upstream name given")),
        };
        // SAFETY: rv is the caller's string (or null).
        unsafe { answer(result, rv) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn ngx_dyups_delete_upstream(name: *mut ngx_str_t, rv: *mut ngx_str_t) -> ngx_int_t {
    request_guard(|| {
        // SAFETY: the caller passes a valid name, per the dyups API.
        let result = match unsafe { str_arg(name) } {
            _ if !in_running_process() => Err(not_running()),
            Some(name) => delete_upstream(&name, false, &Requester::internal("c")),
            None => Err(ApiError::bad_request("invalid_name", "no upstream name given")),
        };
        // SAFETY: rv is the caller's string (or null).
        unsafe { answer(result, rv) }
    })
}

fn not_running() -> ApiError {
    ApiError::new(500, "not_running", "not available here: call it from a worker")
}

/// # Safety
/// `s` is null or a valid nginx string.
unsafe fn str_arg(s: *mut ngx_str_t) -> Option<String> {
    // SAFETY: per the contract.
    unsafe { s.as_ref().map(str_lossy) }
}

/// # Safety
/// `b` is null or a memory buffer.
unsafe fn buf_arg(b: *mut ngx_buf_t) -> Vec<u8> {
    // SAFETY: per the contract.
    unsafe {
        match b.as_ref() {
            Some(b) if !b.pos.is_null() && b.last >= b.pos => {
                core::slice::from_raw_parts(b.pos, b.last.offset_from(b.pos) as usize).to_vec()
            }
            _ => Vec::new(),
        }
    }
}

/// Writes the message into the per-worker buffer, points `rv` at it and
/// returns the status.
///
/// # Safety
/// `rv` is null or a writable nginx string.
unsafe fn answer(result: Result<(), ApiError>, rv: *mut ngx_str_t) -> ngx_int_t {
    let (status, text) = match result {
        Ok(()) => (200, "success".to_string()),
        Err(e) => (e.status, e.text),
    };
    if !rv.is_null() {
        RV.with(|buf| {
            let mut buf = buf.borrow_mut();
            let len = text.len().min(RV_CAPACITY);
            buf[..len].copy_from_slice(&text.as_bytes()[..len]);
            // SAFETY: per the contract; the buffer outlives this call (it
            // is per worker) and is overwritten only by the next call.
            unsafe { rv.write(ngx_str_t { len, data: buf.as_mut_ptr() }) };
        });
    }
    status as ngx_int_t
}

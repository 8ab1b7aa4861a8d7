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

#![allow(clippy::disallowed_types)] // the C API's ABI: its callers' `ngx_str_t` answer slot (see clippy.toml)

use core::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use dynamic_upstream_core::ApiError;
use ngx::ffi::{ngx_flag_t, ngx_int_t, ngx_str_t};

use crate::nginx::entry::request_guard;
use crate::nginx::process::in_running_process;
use crate::nginx::upstreams::{NgxBuf, NgxText};
use crate::ops::change_log::Requester;
use crate::ops::dyups::{delete_upstream, update_upstream, Condition};

/// 1 while the running configuration has an http block (and so the dyups
/// zone); set in init_module, when a cycle can no longer fail. C reads it
/// as the `ngx_flag_t` it declares: an atomic integer has the same size,
/// alignment and representation.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static ngx_http_dyups_api_enable: AtomicIsize = AtomicIsize::new(0);

const _: () = assert!(
    core::mem::size_of::<AtomicIsize>() == core::mem::size_of::<ngx_flag_t>()
        && core::mem::align_of::<AtomicIsize>() == core::mem::align_of::<ngx_flag_t>()
);

/// Longest message handed back through `rv`.
const RV_CAPACITY: usize = 1024;

thread_local! {
    static RV: core::cell::RefCell<[u8; RV_CAPACITY]> = const { core::cell::RefCell::new([0; RV_CAPACITY]) };
}

pub fn set_enabled(enabled: bool) {
    ngx_http_dyups_api_enable.store(ngx_flag_t::from(enabled), Relaxed);
}

/// The arguments are nullable pointers to nginx's own structures, which
/// the caller (an nginx module) made: a reference to one is trusted as the
/// `ngx` crate trusts it (`ngx_str_t::as_bytes`).
#[no_mangle]
pub extern "C" fn ngx_dyups_update_upstream(
    name: Option<&NgxText>,
    buf: Option<&NgxBuf>,
    rv: Option<&mut ngx_str_t>,
) -> ngx_int_t {
    request_guard(|| {
        let body = buf.map_or(&[][..], NgxBuf::bytes);
        let result = match name.map(NgxText::to_string_lossy) {
            _ if !in_running_process() => Err(not_running()),
            Some(name) => {
                update_upstream(&name, body, false, false, Condition::None, &Requester::internal("c")).map(drop)
            }
            None => Err(ApiError::bad_request("invalid_name", "no upstream name given")),
        };
        answer(result, rv)
    })
}

#[no_mangle]
pub extern "C" fn ngx_dyups_delete_upstream(name: Option<&NgxText>, rv: Option<&mut ngx_str_t>) -> ngx_int_t {
    request_guard(|| {
        let result = match name.map(NgxText::to_string_lossy) {
            _ if !in_running_process() => Err(not_running()),
            Some(name) => delete_upstream(&name, false, Condition::None, &Requester::internal("c")),
            None => Err(ApiError::bad_request("invalid_name", "no upstream name given")),
        };
        answer(result, rv)
    })
}

fn not_running() -> ApiError {
    ApiError::new(500, "not_running", "not available here: call it from a worker")
}

/// Writes the message into the per-worker buffer, points `rv` at it and
/// returns the status. The buffer stays valid until the next call (it is
/// per worker).
fn answer(result: Result<(), ApiError>, rv: Option<&mut ngx_str_t>) -> ngx_int_t {
    let (status, text) = match result {
        Ok(()) => (200, "success".to_string()),
        Err(e) => (e.status, e.text),
    };
    if let Some(rv) = rv {
        RV.with(|buf| {
            let mut buf = buf.borrow_mut();
            let len = text.len().min(RV_CAPACITY);
            buf[..len].copy_from_slice(&text.as_bytes()[..len]);
            *rv = ngx_str_t { len, data: buf.as_mut_ptr() };
        });
    }
    status as ngx_int_t
}

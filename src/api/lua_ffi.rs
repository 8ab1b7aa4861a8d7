//! The C functions behind Lua's `ngx.dynamic` and `ngx.dyups` (called
//! through LuaJIT's FFI by the wrappers in `src/lua/`). They run the same
//! operations as the HTTP APIs: same validation, locks, persistence and
//! cross-worker visibility.
//!
//! Conventions: strings come as pointer and length; numbers as doubles,
//! negative meaning "not given"; every function returns 0 on success or
//! the HTTP status the HTTP API would answer, with the reason in `err`.

use core::ffi::c_int;
use core::slice;

use dynamic_upstream_core::render::Origin;
use dynamic_upstream_core::{Action, Address, ApiError, Param, PeerParams, PeerView, ServerSpec};
use ngx::ffi::ngx_http_request_t;

use crate::nginx::entry::request_guard;
use crate::nginx::layout;
use crate::nginx::log::Log;
use crate::nginx::process::in_running_process;
use crate::nginx::upstreams::Upstream;
use crate::ops::change_log::{log_refusal, Requester};
use crate::ops::dyups::{delete_upstream, update_upstream};
use crate::ops::zone::perform;

/// A peer as `describe_zone` hands it to Lua: `ndu_peer_t` in
/// `src/api/lua/dynamic.lua`, which checks its declaration against
/// [`ndu_peer_layout`] when it is loaded.
#[repr(C)]
pub struct LuaPeer {
    name: [u8; 128],
    name_len: usize,
    weight: i64,
    max_fails: i64,
    fail_timeout: i64,
    max_conns: i64,
    conns: i64,
    fails: i64,
    current_weight: i64,
    effective_weight: i64,
    accessed: i64,
    checked: i64,
    /// The checks' counts, last check and error (when `health` is not 0).
    rises: i64,
    falls: i64,
    last_check: i64,
    last_error: [u8; 64],
    last_error_len: usize,
    backup: i32,
    down: i32,
    /// 0: its upstream has no checks; 1: unchecked; 2: up; 3: down.
    health: i32,
}

/// The size and alignment of [`LuaPeer`], then the offsets of its fields
/// in declaration order, written to `out` (room for `cap`); returns how
/// many numbers the layout has.
#[no_mangle]
pub unsafe extern "C" fn ndu_peer_layout(out: *mut usize, cap: usize) -> usize {
    let layout = layout!(LuaPeer; name, name_len, weight, max_fails, fail_timeout, max_conns, conns, fails,
        current_weight, effective_weight, accessed, checked, rises, falls, last_check, last_error, last_error_len,
        backup, down, health);
    if !out.is_null() {
        for (i, value) in layout.iter().take(cap).enumerate() {
            // SAFETY: the caller passes room for `cap` numbers.
            unsafe { out.add(i).write(*value) };
        }
    }
    layout.len()
}

/// An error (or message) buffer the Lua caller owns: `cap` bytes and a
/// length slot. Its fields are private to this module so that only
/// [`ErrOut::new`]'s contract makes one.
mod err_out {
    #[derive(Clone, Copy)]
    pub struct ErrOut {
        buf: *mut u8,
        cap: usize,
        len: *mut usize,
    }

    impl ErrOut {
        /// # Safety
        /// `buf` is null or writable for `cap` bytes, `len` null or a
        /// writable slot, both for as long as the value is used (the call).
        pub unsafe fn new(buf: *mut u8, cap: usize, len: *mut usize) -> Self {
            Self { buf, cap, len }
        }

        pub fn set(&self, text: &str) {
            if self.buf.is_null() || self.len.is_null() {
                return;
            }
            let n = text.len().min(self.cap);
            // SAFETY: per new()'s contract; at most `cap` bytes are written.
            unsafe {
                core::ptr::copy_nonoverlapping(text.as_ptr(), self.buf, n);
                *self.len = n;
            }
        }
    }
}
use err_out::ErrOut;

/// Changes made through Lua: no client address at hand; logged where the
/// Lua code's own `ngx.log` lines go: the log of the request (or timer's
/// fake request) `r` it runs for, the cycle's if `r` is null.
///
/// # Safety
/// `r` is null or the live request the calling Lua code runs for (what
/// `resty.core.base.get_request()` returns).
unsafe fn lua(r: *mut ngx_http_request_t) -> Requester {
    // SAFETY: per the contract, r and its connection live during the call.
    unsafe {
        let log = r.as_ref().and_then(|r| r.connection.as_ref()).map_or(core::ptr::null_mut(), |c| c.log);
        Requester::new(Origin::internal("lua"), Log::from_raw(log))
    }
}

/// Applies the change `action` builds to the zone upstream `zone`; a
/// change refused while it is built is logged as any refusal.
fn change(by: &Requester, zone: &str, action: impl FnOnce() -> Result<Action, ApiError>) -> Result<(), ApiError> {
    let action = action().inspect_err(|e| log_refusal(by, zone, e))?;
    perform(zone, &action, by).map(drop)
}

/// Runs `body` in a panic barrier, turning errors into a status and a
/// message for Lua.
fn lua_call(err: ErrOut, body: impl FnOnce() -> Result<(), ApiError>) -> c_int {
    let mut outcome = Ok(());
    let rc = request_guard(|| {
        outcome = if in_running_process() {
            body()
        } else {
            Err(ApiError::new(500, "not_running", "not available here: call it from a worker (not init_by_lua)"))
        };
        0
    });
    match (rc, outcome) {
        (0, Ok(())) => 0,
        (0, Err(e)) => {
            err.set(&e.text);
            c_int::from(e.status)
        }
        _ => {
            err.set("internal error");
            500
        }
    }
}

/// # Safety
/// `data` points to `len` readable bytes (or is null with `len` 0).
unsafe fn text(data: *const u8, len: usize) -> String {
    if data.is_null() || len == 0 {
        return String::new();
    }
    // SAFETY: per the contract.
    String::from_utf8_lossy(unsafe { slice::from_raw_parts(data, len) }).into_owned()
}

/// A numeric option: negative means not given; otherwise it must be an
/// integer within the parameter's range.
fn option(param: Param, value: f64) -> Result<Option<u64>, ApiError> {
    if value < 0.0 && value.is_finite() {
        return Ok(None);
    }
    if !value.is_finite() || value.fract() != 0.0 || value > 1e12 {
        return param.parse_value("x").map(Some); // the parameter's own error
    }
    param.parse_value(&format!("{}", value as u64)).map(Some)
}

fn params(weight: f64, max_fails: f64, fail_timeout: f64, max_conns: f64) -> Result<PeerParams, ApiError> {
    Ok(PeerParams {
        weight: option(Param::Weight, weight)?,
        max_fails: option(Param::MaxFails, max_fails)?,
        fail_timeout: option(Param::FailTimeout, fail_timeout)?,
        max_conns: option(Param::MaxConns, max_conns)?,
    })
}

/// Zone names of the upstreams with a zone, `\n`-separated into `buf`;
/// `*len` gets the full length (call again with a larger buffer if it
/// exceeds `cap`).
#[no_mangle]
pub unsafe extern "C" fn ndu_list_zones(
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    err: *mut u8,
    err_cap: usize,
    err_len: *mut usize,
) -> c_int {
    // SAFETY: the caller passes its error buffer of err_cap bytes and a
    // length slot.
    let out = unsafe { ErrOut::new(err, err_cap, err_len) };
    lua_call(out, || {
        let names: Vec<String> = Upstream::running().into_iter().filter_map(Upstream::zone_name).collect();
        let joined = names.join("\n");
        // SAFETY: the caller passes a buffer of `cap` bytes and a length slot.
        unsafe {
            *len = joined.len();
            if joined.len() <= cap {
                core::ptr::copy_nonoverlapping(joined.as_ptr(), buf, joined.len());
            }
        }
        Ok(())
    })
}

/// The peers of a zone into `peers` (room for `cap`); `*count` gets the
/// number of peers (call again with more room if it exceeds `cap`).
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
    // SAFETY: the caller passes its error buffer of err_cap bytes and a
    // length slot.
    let out = unsafe { ErrOut::new(err, err_cap, err_len) };
    lua_call(out, || {
        // SAFETY: the caller passes valid strings and buffers.
        let name = unsafe { text(zone, zone_len) };
        let views = perform(&name, &Action::List, &Requester::internal("lua"))?.peers_with_health();
        // SAFETY: as above; at most `cap` peers are written.
        unsafe {
            *count = views.len();
            for (i, v) in views.iter().take(cap).enumerate() {
                peers.add(i).write(lua_peer(v));
            }
        }
        Ok(())
    })
}

fn lua_peer(v: &PeerView) -> LuaPeer {
    let mut name = [0u8; 128];
    let n = v.name.len().min(name.len());
    name[..n].copy_from_slice(&v.name.as_bytes()[..n]);
    let h = v.health.unwrap_or_default();
    let error = h.last_error.map(|e| e.to_string()).unwrap_or_default();
    let mut last_error = [0u8; 64];
    let error_len = error.len().min(last_error.len());
    last_error[..error_len].copy_from_slice(&error.as_bytes()[..error_len]);
    LuaPeer {
        name,
        name_len: n,
        weight: v.weight,
        max_fails: v.max_fails as i64,
        fail_timeout: v.fail_timeout,
        max_conns: v.max_conns as i64,
        conns: v.conns as i64,
        fails: v.fails as i64,
        current_weight: v.current_weight,
        effective_weight: v.effective_weight,
        accessed: v.accessed,
        checked: v.checked,
        rises: h.rises.into(),
        falls: h.falls.into(),
        last_check: h.last_check,
        last_error,
        last_error_len: error_len,
        backup: v.backup as i32,
        down: v.down as i32,
        health: match v.health {
            None => 0,
            Some(h) if !h.checked => 1,
            Some(h) if !h.down => 2,
            Some(_) => 3,
        },
    }
}

/// `ndu_change_peer`'s `op`: what to do with the server (the same
/// numbers as `OP_*` in `lua/dynamic.lua`).
const OP_ADD: c_int = 0;
const OP_UPDATE: c_int = 1;
const OP_REMOVE: c_int = 2;

/// Adds (`op` 0), changes (1) or removes (2) a server of a zone upstream.
/// Adding: `down` and `backup` are 1 or 0. Changing: `down` is 1 (down),
/// 0 (up) or -1 (unchanged); `backup` is not used. Removing: neither are
/// the numbers.
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
    // SAFETY: the caller passes its error buffer of err_cap bytes and a
    // length slot.
    let out = unsafe { ErrOut::new(err, err_cap, err_len) };
    lua_call(out, || {
        // SAFETY: the caller passes valid strings and its request (or null).
        let (by, zone, server) = unsafe { (lua(r), text(zone, zone_len), text(server, server_len)) };
        change(&by, &zone, || {
            let server = Address::parse(&server)?;
            let params = || params(weight, max_fails, fail_timeout, max_conns);
            match op {
                OP_ADD => {
                    let mut spec = ServerSpec::new(server).with_params(&params()?);
                    spec.down = down > 0;
                    spec.backup = backup > 0;
                    Ok(Action::Add(spec))
                }
                OP_UPDATE => {
                    let down = match down {
                        1 => Some(true),
                        0 => Some(false),
                        _ => None,
                    };
                    Ok(Action::Update { server, params: params()?, down })
                }
                OP_REMOVE => Ok(Action::Remove { server }),
                _ => Err(ApiError::new(500, "internal", format!("unknown peer operation {op}"))),
            }
        })
    })
}

/// `dyups.update`: returns the HTTP status (200 on success) and the REST
/// API's message in `msg`.
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
    // SAFETY: the caller passes its message buffer of msg_cap bytes and a
    // length slot.
    let out = unsafe { ErrOut::new(msg, msg_cap, msg_len) };
    dyups_status(out, || {
        // SAFETY: the caller passes valid strings and its request (or null).
        let (by, name, body) = unsafe { (lua(r), text(name, name_len), slice_of(body, body_len)) };
        update_upstream(&name, &body, false, false, &by)
    })
}

/// `dyups.delete`: as [`ndu_dyups_update`].
#[no_mangle]
pub unsafe extern "C" fn ndu_dyups_delete(
    r: *mut ngx_http_request_t,
    name: *const u8,
    name_len: usize,
    msg: *mut u8,
    msg_cap: usize,
    msg_len: *mut usize,
) -> c_int {
    // SAFETY: the caller passes its message buffer of msg_cap bytes and a
    // length slot.
    let out = unsafe { ErrOut::new(msg, msg_cap, msg_len) };
    dyups_status(out, || {
        // SAFETY: the caller passes a valid string and its request (or null).
        let (by, name) = unsafe { (lua(r), text(name, name_len)) };
        delete_upstream(&name, false, &by)
    })
}

fn dyups_status(msg: ErrOut, body: impl FnOnce() -> Result<(), ApiError>) -> c_int {
    match lua_call(msg, body) {
        0 => {
            msg.set("success");
            200
        }
        status => status,
    }
}

/// # Safety
/// `data` points to `len` readable bytes (or is null with `len` 0).
unsafe fn slice_of(data: *const u8, len: usize) -> Vec<u8> {
    if data.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: per the contract.
    unsafe { slice::from_raw_parts(data, len) }.to_vec()
}

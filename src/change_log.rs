//! The change log: one line per accepted change (`warn`) and per refused
//! one (`info`), written to the log of the request that asked for it (the
//! location's `error_log`), or the cycle's for changes made outside a
//! request. Shared by every front end.

use dynamic_upstream_core::render::{change_line, refusal_line, Change, Origin};
use dynamic_upstream_core::ApiError;
use ngx::ffi::{ngx_log_t, NGX_LOG_INFO, NGX_LOG_WARN};

/// Who asked for a change, and the log its line goes to.
pub struct Requester {
    origin: Origin,
    /// The request's connection log, which nginx points at the location's
    /// `error_log`; the cycle's log for changes made outside a request.
    log: *mut ngx_log_t,
}

impl Requester {
    /// # Safety
    /// `log` is null (the cycle's log is used) or must stay valid as long
    /// as this value (a request's connection log: the request outlives its
    /// handler's call).
    pub unsafe fn new(origin: Origin, log: *mut ngx_log_t) -> Self {
        let log = if log.is_null() { ngx::log::ngx_cycle_log().as_ptr() } else { log };
        Self { origin, log }
    }

    /// A change made outside any request (the C API): no client, the
    /// cycle's log.
    pub fn internal(api: &'static str) -> Self {
        // SAFETY: null: the cycle's log.
        unsafe { Self::new(Origin::internal(api), core::ptr::null_mut()) }
    }

    /// Writes `line` at `level`: to the files and level of `self.log`, but
    /// without what a connection log adds (`*N`, `client: ..., request:
    /// ...`), so a line reads the same whichever log has it.
    fn log(&self, level: u32, line: &str) {
        // SAFETY: self.log is valid (see new); the copy lives on the stack
        // for this call only.
        let mut log = unsafe { *self.log };
        log.connection = 0;
        log.handler = None;
        log.data = core::ptr::null_mut();
        ngx::ngx_log_error!(level, &mut log as *mut ngx_log_t, "{}", line);
    }
}

/// Logs an accepted change at `warn` (not `error`: a change is not a
/// fault; Debian's `error_log` without a level shows `error` and above).
pub fn log_change(by: &Requester, upstream: &str, change: &Change) {
    by.log(NGX_LOG_WARN, &change_line(&by.origin, upstream, change));
}

/// Logs why a change was refused, at `info`.
pub fn log_refusal(by: &Requester, upstream: &str, e: &ApiError) {
    by.log(NGX_LOG_INFO, &refusal_line(&by.origin, upstream, e));
}

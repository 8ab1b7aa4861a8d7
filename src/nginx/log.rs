//! nginx's error logs, for the lines the module writes itself.

use ngx::ffi::ngx_log_t;

/// A log lines can go to: a request's connection log (which nginx points
/// at the location's `error_log`), or the cycle's.
#[derive(Clone, Copy)]
pub struct Log(*mut ngx_log_t);

impl Log {
    /// The cycle's log.
    pub fn cycle() -> Log {
        Log(ngx::log::ngx_cycle_log().as_ptr())
    }

    /// # Safety
    /// `log` is null (the cycle's log is used) or stays valid as long as
    /// this value (a request's connection log: the request outlives its
    /// handler's call).
    pub unsafe fn from_raw(log: *mut ngx_log_t) -> Log {
        if log.is_null() {
            Log::cycle()
        } else {
            Log(log)
        }
    }

    /// Writes `line` at `level`: to the files and level of this log, but
    /// without what a connection log adds (`*N`, `client: ..., request:
    /// ...`), so a line reads the same whichever log has it.
    pub fn write_plain(self, level: u32, line: &str) {
        // SAFETY: self.0 is valid (see from_raw); the copy lives on the
        // stack for this call only.
        let mut log = unsafe { *self.0 };
        log.connection = 0;
        log.handler = None;
        log.data = core::ptr::null_mut();
        ngx::ngx_log_error!(level, &mut log as *mut ngx_log_t, "{}", line);
    }
}

/// Writes `text` to the cycle's log at `level`.
pub fn log(level: u32, text: &str) {
    ngx::ngx_log_error!(level, ngx::log::ngx_cycle_log().as_ptr(), "{}", text);
}

//! nginx's error logs, for the lines the module writes itself.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use ngx::ffi::ngx_log_t;

/// The new cycle's log while its init_module runs (null otherwise): nginx's
/// `ngx_cycle` is then still the running cycle, or, at start, nginx's
/// initial one, whose log is stderr or the compiled-in file, not the
/// `error_log` the operator reads (a state file not restored at start was
/// reported there only, while every change's 500 said "the error log says
/// why": hunt 39).
static INIT_MODULE_LOG: AtomicPtr<ngx_log_t> = AtomicPtr::new(ptr::null_mut());

/// Runs `f` (the module's init_module) with the cycle's log `log` as the
/// one [`log`] and [`Log::cycle`] write to; back to nginx's `ngx_cycle`
/// after, a panic included.
pub(in crate::nginx) fn with_init_module_log<T>(log: *mut ngx_log_t, f: impl FnOnce() -> T) -> T {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            INIT_MODULE_LOG.store(ptr::null_mut(), Ordering::Relaxed);
        }
    }
    INIT_MODULE_LOG.store(log, Ordering::Relaxed);
    let _restore = Restore;
    f()
}

/// The cycle's log the module's own lines go to: the new cycle's in its
/// init_module, else `ngx_cycle`'s.
fn cycle_log() -> *mut ngx_log_t {
    let log = INIT_MODULE_LOG.load(Ordering::Relaxed);
    if log.is_null() {
        ngx::log::ngx_cycle_log().as_ptr()
    } else {
        log
    }
}

/// A log lines can go to: a request's connection log (which nginx points
/// at the location's `error_log`), or the cycle's. It holds a copy of the
/// log without what belongs to the connection (its number, its handler
/// and that handler's data, which live in the request's memory): what is
/// left (files, level, the next logs) lives as long as the cycle, so a
/// value kept after its request ended still writes safely.
#[derive(Clone, Copy)]
pub struct Log(ngx_log_t);

impl Log {
    /// The cycle's log ([`cycle_log`]).
    pub fn cycle() -> Log {
        // SAFETY: the running cycle's log (or the new one's, in its
        // init_module), valid as long as the cycle.
        unsafe { Log::from_raw(cycle_log()) }
    }

    /// # Safety
    /// `log` is null (the cycle's log is used) or valid for the call; the
    /// files it points at live as long as the cycle (a request's
    /// connection log, or the cycle's).
    pub unsafe fn from_raw(log: *mut ngx_log_t) -> Log {
        let log = if log.is_null() { cycle_log() } else { log };
        // SAFETY: per the contract; a plain copy of the struct.
        let mut copy = unsafe { *log };
        copy.connection = 0;
        copy.handler = None;
        copy.data = core::ptr::null_mut();
        Log(copy)
    }

    /// Writes `line` at `level`: to the files and level of this log, but
    /// without what a connection log adds (`*N`, `client: ..., request:
    /// ...`), so a line reads the same whichever log has it.
    pub fn write_plain(self, level: u32, line: &str) {
        let mut log = self.0;
        ngx::ngx_log_error!(level, &mut log as *mut ngx_log_t, "{}", line);
    }
}

/// Writes `text` to the cycle's log ([`cycle_log`]) at `level`.
pub fn log(level: u32, text: &str) {
    ngx::ngx_log_error!(level, cycle_log(), "{}", text);
}

/// nginx's text for the system error number `errno` (what its own lines
/// show after `NNN: `), from the table nginx made at start.
pub fn os_error_text(errno: i32) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: ngx_strerror copies at most `buf.len()` bytes of a message
    // (nginx's "Unknown error" for a number outside its table) into `buf`
    // and returns the end of what it copied.
    let end = unsafe { ngx::ffi::ngx_strerror(errno, buf.as_mut_ptr(), buf.len()) };
    let len = (end as usize).saturating_sub(buf.as_ptr() as usize).min(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

//! Which nginx process this is.

use core::sync::atomic::{AtomicBool, Ordering};

use ngx::ffi::{ngx_process, NGX_PROCESS_SINGLE, NGX_PROCESS_WORKER};

/// Set by init_process: in a worker, or in the one process of
/// `master_process off`. Never in the master, whose `ngx_process` still
/// says "single" while the first configuration is read and the modules'
/// init_module run: a change made there would give the master state that
/// every worker inherits (a grace-period slot, see [`crate::dyups::grace`]).
static STARTED: AtomicBool = AtomicBool::new(false);

/// init_process: this process serves requests.
pub fn mark_started() {
    STARTED.store(true, Ordering::Relaxed);
}

/// Whether the running process has a configured cycle with its shared
/// zones (a worker, or `master_process off` once started): not the master
/// while it reads the configuration (`init_by_lua`).
pub fn in_running_process() -> bool {
    // SAFETY: a plain read of nginx's process global, which only this
    // (the only) thread writes.
    let process = unsafe { ngx_process } as u32;
    process == NGX_PROCESS_WORKER || (process == NGX_PROCESS_SINGLE && STARTED.load(Ordering::Relaxed))
}

/// This process's id.
pub fn pid() -> u64 {
    // SAFETY: a plain read of nginx's process global, set at start.
    unsafe { ngx::ffi::ngx_pid as u64 }
}

/// The parent process's id (a worker's master).
pub fn ppid() -> u64 {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() as u64 }
}

/// Whether this process only tests the configuration (`nginx -t`, `-T`),
/// which runs the modules' init_module too.
pub fn testing_configuration() -> bool {
    // SAFETY: a plain read of nginx's global, set from the command line.
    unsafe { ngx::ffi::ngx_test_config != 0 }
}

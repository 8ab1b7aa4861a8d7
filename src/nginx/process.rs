//! Which nginx process this is, and the process globals the module reads
//! (its flags, clocks and pid).

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dynamic_upstream_core::process::{parse_stat, ProcStat};
use ngx::ffi::{ngx_process, NGX_PROCESS_SINGLE, NGX_PROCESS_WORKER};

/// Set by init_process: in a worker, or in the one process of
/// `master_process off`. Never in the master, whose `ngx_process` still
/// says "single" while the first configuration is read and the modules'
/// init_module run: a change made there would give the master state that
/// every worker inherits (a grace-period slot, see [`crate::dyups::grace`]).
static STARTED: AtomicBool = AtomicBool::new(false);

/// Makes a write past the file size limit (`RLIMIT_FSIZE`: systemd's
/// `LimitFSIZE=`, `ulimit -f`) fail with `EFBIG` instead of killing the
/// process with `SIGXFSZ`, which nginx leaves at its default: a state
/// file's write then fails like any other (500, the change in effect).
/// In init_process.
pub fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN, on nginx's thread,
    // before any request runs.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
}

/// init_process: this process serves requests.
pub fn mark_started() {
    STARTED.store(true, Ordering::Relaxed);
}

/// The cycle this process serves: set at the end of each init_module to
/// its cycle (the one the workers, forked after, serve; the one the process
/// of `master_process off` serves once nginx's reload returns), and to none
/// while an init_module runs (under `master_process off` the serving
/// process runs a reload's, with the old cycle, about to be freed, still in
/// `ngx_cycle`: a zone taken there would outlive it; review 10). While that
/// process reads a reload's configuration, `init_by_lua` runs with
/// `ngx_cycle` pointed at the new cycle, not set up yet (review 11): then
/// the two differ too.
static SERVED_CYCLE: AtomicUsize = AtomicUsize::new(0);

/// The cycle the last init_module set up (0 before the first, and while
/// one runs).
pub(in crate::nginx) fn served_cycle() -> usize {
    SERVED_CYCLE.load(Ordering::Relaxed)
}

/// init_module begins: no cycle is served until it ends.
pub(in crate::nginx) fn clear_served_cycle() {
    SERVED_CYCLE.store(0, Ordering::Relaxed);
}

/// init_module ends (a panic included: nginx's hook catches it inside),
/// with its cycle, which is then served until nginx frees it: a cleanup of
/// its pool forgets it. A cycle's address is only its identity while it
/// lives: when `load_module` moves to another build of the module and
/// back, this build stays loaded in between (the other binds its
/// `ngx_http_dyups_api_enable` to this one's: nginx loads modules
/// `RTLD_GLOBAL`), and glibc often gives the cycle it comes back after the
/// address of the cycle this build served last; taken for that one, its
/// zones' statics (of a freed cycle) were used (hunt 39). Without room in
/// the pool for the cleanup, no cycle is taken as served (the next
/// init_module then starts afresh).
///
/// # Safety
/// `cycle` is the cycle of the init_module that ends, live.
pub(in crate::nginx) unsafe fn set_served_cycle(cycle: *mut ngx::ffi::ngx_cycle_t) {
    /// Forgets the cycle (the cleanup's data) if it is still the served one.
    unsafe extern "C" fn forget(data: *mut core::ffi::c_void) {
        let _ = SERVED_CYCLE.compare_exchange(data as usize, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
    // SAFETY: per the contract; nginx runs the pool's cleanups when it
    // destroys the cycle's pool (last added first: before the dlclose of
    // this module that load_module added while the configuration was read).
    let cleanup = unsafe { ngx::ffi::ngx_pool_cleanup_add((*cycle).pool, 0) };
    if cleanup.is_null() {
        return;
    }
    // SAFETY: a cleanup nginx just allocated.
    unsafe {
        (*cleanup).handler = Some(forget);
        (*cleanup).data = cycle.cast();
    }
    SERVED_CYCLE.store(cycle as usize, Ordering::Relaxed);
}

/// Whether the running process has a configured cycle with its shared
/// zones (a worker, or `master_process off` once started): not the master
/// while it reads the configuration (`init_by_lua`), and not while nginx's
/// `ngx_cycle` is not the cycle this process serves ([`SERVED_CYCLE`]: none
/// while an init_module runs; another during a reload's `init_by_lua` under
/// `master_process off`).
/// Not on another thread (which would race nginx's reads and writes of
/// its globals, a reload's among them).
pub fn in_running_process() -> bool {
    if !on_nginx_thread() {
        return false;
    }
    // SAFETY: plain reads of nginx's process globals, which only this
    // thread writes (`ngx_cycle` is volatile in C: read so).
    let (process, cycle) =
        unsafe { (ngx_process as u32, ptr::read_volatile(ptr::addr_of!(ngx::ffi::ngx_cycle)) as usize) };
    let started = process == NGX_PROCESS_WORKER || (process == NGX_PROCESS_SINGLE && STARTED.load(Ordering::Relaxed));
    started && cycle == SERVED_CYCLE.load(Ordering::Relaxed)
}

/// nginx's thread (`pthread_self`), noted by the callbacks nginx makes
/// ([`note_nginx_thread`]); 0 before the first.
static NGINX_THREAD: AtomicUsize = AtomicUsize::new(0);

/// Notes the calling thread as nginx's: only nginx's callbacks call it.
pub(in crate::nginx) fn note_nginx_thread() {
    // SAFETY: pthread_self cannot fail.
    NGINX_THREAD.store(unsafe { libc::pthread_self() } as usize, Ordering::Relaxed);
}

/// Whether this is nginx's thread: the one that runs nginx's event loop
/// and the modules' callbacks (a thread pool's threads run their tasks
/// only). A forked child's only thread is the copy of its parent's, with
/// the same `pthread_self`. A few instructions: requests ask it.
pub fn on_nginx_thread() -> bool {
    let nginx = NGINX_THREAD.load(Ordering::Relaxed);
    // SAFETY: pthread_self cannot fail.
    nginx != 0 && nginx == unsafe { libc::pthread_self() } as usize
}

/// This worker's index (`ngx_worker`: 0 to worker_processes - 1; 0 in the
/// one process of `master_process off`).
pub fn worker_index() -> usize {
    // SAFETY: a plain read of nginx's global, set before init_process.
    unsafe { ngx::ffi::ngx_worker }
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

/// Whether this process only signals the running master (`nginx -s
/// stop|quit|reopen|reload`), which reads the configuration first: it must
/// not wait for or refuse on anything the running nginx holds.
pub fn signalling() -> bool {
    // SAFETY: a plain read of nginx's global, set from the command line
    // before the configuration is read.
    unsafe { ngx::ffi::ngx_process == ngx::ffi::NGX_PROCESS_SIGNALLER as ngx::ffi::ngx_uint_t }
}

/// Whether nginx asked this process to stop: a graceful quit under way
/// (`ngx_exiting`), or a quit or terminate signal not yet acted on.
pub fn exiting() -> bool {
    // SAFETY: plain reads of nginx's process flags, written by this thread
    // or its signal handlers (`sig_atomic_t`): read volatile, as nginx's
    // own loop reads them.
    unsafe {
        ptr::read_volatile(ptr::addr_of!(ngx::ffi::ngx_exiting)) != 0
            || ptr::read_volatile(ptr::addr_of!(ngx::ffi::ngx_quit)) != 0
            || ptr::read_volatile(ptr::addr_of!(ngx::ffi::ngx_terminate)) != 0
    }
}

/// nginx's millisecond clock (`ngx_current_msec`), as of its last time
/// update.
pub fn current_msec() -> ngx::ffi::ngx_msec_t {
    // SAFETY: one word nginx's time update writes (a `volatile` in C), read
    // volatile as nginx's own readers do.
    unsafe { ptr::read_volatile(ptr::addr_of!(ngx::ffi::ngx_current_msec)) }
}

/// The Unix time of nginx's cached clock (`ngx_cached_time->sec`); 0 before
/// nginx set its clock up.
pub fn cached_time_sec() -> i64 {
    // SAFETY: nginx points `ngx_cached_time` at one of its time slots (a
    // static array, never freed) before any module code runs, and moves it
    // to another slot only after that slot is written: a reader that takes
    // the pointer once reads a whole entry, as nginx's `ngx_time()` does.
    unsafe {
        let cached = ptr::read_volatile(ptr::addr_of!(ngx::ffi::ngx_cached_time));
        if cached.is_null() {
            return 0;
        }
        ptr::read_volatile(ptr::addr_of!((*cached).sec)) as i64
    }
}

/// Set once this process's module exit hooks ran: nginx frees the cycle
/// next (and with it the connections and timer tree), then exits.
static EXITED: AtomicBool = AtomicBool::new(false);

/// exit_process / exit_master, after the module's own: from now on the
/// wrappers make no call into nginx's event loop (a value dropped later,
/// by a thread-local destructor at `exit()`, is left to the process's end).
pub fn mark_exited() {
    EXITED.store(true, Ordering::Relaxed);
}

/// Whether nginx's event loop runs in this process and this is its thread
/// (the process's main thread, which nginx's thread pools are not): what
/// every timer, posted event and connection call needs. False in the
/// master, which never sets up the event loop, and once the process's
/// exit hooks ran.
pub fn in_event_loop() -> bool {
    if EXITED.load(Ordering::Relaxed) {
        return false;
    }
    // SAFETY: getpid and gettid cannot fail.
    let main_thread = unsafe { libc::gettid() == libc::getpid() };
    // SAFETY: a read of nginx's timer tree root, written only by this
    // (main) thread: ngx_event_process_init sets it, before any timer can
    // be added.
    main_thread && unsafe { !ptr::read_volatile(ptr::addr_of!(ngx::ffi::ngx_event_timer_rbtree.root)).is_null() }
}

/// Whether the process `pid`, which started at `start` (clock ticks since
/// boot, as `/proc/PID/stat` says; 0: unknown), no longer runs: no process
/// has that pid (`kill(pid, 0)` fails with `ESRCH`), or, with a start time,
/// the one that has it has ended (a zombie its parent has not reaped yet)
/// or started at another time (a recycled pid). `EPERM` from `kill` means a process with that pid
/// exists that this one may not signal (an old worker whose cycle ran under
/// another `user`): it runs unless /proc says otherwise. Without /proc a
/// recycled pid counts as running: the caller waits longer, never takes
/// over early. Reads /proc: never call it under a lock.
pub fn gone(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return true;
    }
    // Without a start time /proc is not this pid namespace's (or was
    // unreadable): what it says of `pid` may be another process's.
    start != 0 && proc_stat(Some(pid)).is_some_and(|now| now.ended() || now.start_time != start)
}

/// Whether the process `pid` has ended: a child of this process that has
/// exited (a worker that died while its master reads a reload's
/// configuration: asked with `waitid`, which leaves it to nginx to reap,
/// and works in any pid namespace, /proc or not; review 25), no process
/// has that pid, or the one that has it is a zombie its parent has not
/// reaped. /proc is believed only where it shows this process under its
/// own pid (else what it says of `pid` may be another pid namespace's
/// process's). Reads /proc: never call it under a lock.
pub fn ended(pid: i32) -> bool {
    child_exited(pid) || gone(pid, 0) || (my_start_time() != 0 && proc_stat(Some(pid)).is_some_and(|stat| stat.ended()))
}

/// Whether `pid` is a child of this process that has exited and not been
/// reaped yet (it stays so: `WNOWAIT`).
fn child_exited(pid: i32) -> bool {
    let Ok(id) = libc::id_t::try_from(pid) else { return false };
    // SAFETY: a zeroed siginfo_t is valid for waitid to fill in; WNOHANG
    // returns at once, WNOWAIT leaves the child waitable by nginx.
    unsafe {
        let mut info: libc::siginfo_t = core::mem::zeroed();
        libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) == 0
            && info.si_pid() == pid
    }
}

/// This process's start time in clock ticks since boot, if /proc shows this
/// process under its own pid (else it is another pid namespace's, and start
/// times are not compared: 0).
pub fn my_start_time() -> u64 {
    let me = std::process::id();
    proc_stat(None).filter(|s| s.pid as u32 == me).map_or(0, |s| s.start_time)
}

/// `/proc/PID/stat` of process `pid`, or of this process with None (None
/// if unreadable): one read of a small procfs file, with no allocation.
fn proc_stat(pid: Option<i32>) -> Option<ProcStat> {
    use std::io::Write;
    let mut path = [0u8; 32];
    match pid {
        Some(pid) => write!(&mut path[..], "/proc/{pid}/stat\0"),
        None => write!(&mut path[..], "/proc/self/stat\0"),
    }
    .ok()?;
    let mut stat = [0u8; 1024];
    // SAFETY: a NUL-terminated path and a buffer of the length given; the
    // descriptor is closed before returning.
    let read = unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let read = libc::read(fd, stat.as_mut_ptr().cast(), stat.len());
        libc::close(fd);
        read
    };
    parse_stat(stat.get(..usize::try_from(read).ok()?)?)
}

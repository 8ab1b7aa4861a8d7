//! An outgoing connection of the module's own (a health check's probe) on
//! nginx's event loop: `ngx_event_connect_peer` to an address, a timeout,
//! and its read, write and timeout events delivered to a plain Rust
//! function with the key the caller gave (the caller finds its own state
//! by it). Everything nginx points at (the address, the peer connection,
//! the timeout event) is in one allocation of this module that outlives
//! the connection: [`ProbeConnection`] closes the connection and deletes
//! the timer before freeing it.

#![allow(clippy::disallowed_types)] // the wrapper layer: nginx's own structs (see clippy.toml)

use core::mem::zeroed;
use core::ptr::{self, NonNull};

use dynamic_upstream_core::Address;
use ngx::ffi::{
    ngx_close_connection, ngx_connection_log_error_e_NGX_ERROR_INFO, ngx_connection_t, ngx_event_connect_peer,
    ngx_event_get_peer, ngx_event_t, ngx_handle_read_event, ngx_handle_write_event, ngx_int_t, ngx_log_t, ngx_msec_t,
    ngx_peer_connection_t, ngx_post_event, ngx_posted_events, ngx_str_t, NGX_AGAIN, NGX_DECLINED, NGX_LOG_EMERG,
    NGX_OK,
};

use crate::nginx::entry::request_guard;
use crate::nginx::process::in_event_loop;
use crate::nginx::sockaddr::PeerAddress;

/// Which of a probe connection's events nginx delivered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProbeEvent {
    Read,
    Write,
    /// The timeout given to [`ProbeConnection::connect`] expired.
    Timeout,
}

/// The outcome of one `recv` or `send` on the connection (nginx's
/// `c->recv`/`c->send`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Io {
    /// That many bytes (more than 0) moved.
    Done(usize),
    /// Nothing now (`NGX_AGAIN`): wait for the next event.
    Again,
    /// 0: the peer closed the connection (recv), or nothing was sent.
    Closed,
    /// An error (nginx logged it at the info level), with the system
    /// error number nginx saw (0 if none).
    Error(i32),
    /// The connection has no such function.
    Unsupported,
}

/// The handler of a connection's events: the connection's key, and the
/// event. Runs from nginx's event loop, never inside another handler.
pub type ProbeHandler = fn(usize, ProbeEvent);

/// What nginx points at, one allocation: the connection's `data` and the
/// timeout event's `data` lead here.
struct Inner {
    address: PeerAddress,
    name: ngx_str_t,
    /// The connection's log: a copy of the cycle's (whose files and next
    /// logs live as long as the cycle), quiet while it connects.
    log: ngx_log_t,
    pc: ngx_peer_connection_t,
    timeout: ngx_event_t,
    key: usize,
    handler: ProbeHandler,
}

/// An open probe connection. Dropping it deletes its timeout and closes
/// the connection (nginx then delivers none of its events any more).
pub struct ProbeConnection {
    /// Allocated by connect() and freed by drop only. Its `pc.connection`
    /// is an open connection of nginx's as long as self lives.
    inner: NonNull<Inner>,
}

/// Why [`ProbeConnection::connect`] made no connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// The connection failed (refused or unreachable at once, or a socket
    /// of its address family cannot be made: nginx logged why): the probe
    /// failed. The system error number connect() or socket() failed with
    /// (0 if none).
    Failed(i32),
    /// The worker had no connection to spare (all but a sixteenth of its
    /// `worker_connections` busy) or no file descriptor or buffer for a
    /// socket, or is outside its event loop: no probe was made.
    NoConnection,
}

/// This worker's connections: how many are free, and how many it has
/// (`worker_connections`; 0 outside a worker's event loop).
fn worker_connections() -> (usize, usize) {
    // SAFETY: plain reads of this process's cycle, which only this thread
    // (nginx's) changes.
    unsafe { ((*ngx::ffi::ngx_cycle).free_connection_n, (*ngx::ffi::ngx_cycle).connection_n) }
}

/// How many connections this worker can have open at once: its
/// `worker_connections`, or fewer if its file descriptors
/// (`worker_rlimit_nofile`, or the limit it inherited) are fewer.
pub fn connection_limit() -> usize {
    let (_, connections) = worker_connections();
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    let descriptors = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    connections.min(descriptors)
}

/// Whether a connection taken now would be one of the last sixteenth:
/// nginx then closes idle client connections (keep-alive ones, and new
/// ones still waiting for their request) to make room
/// (`ngx_drain_connections`), or has none. A probe never takes one.
fn no_connection_to_spare() -> bool {
    let (free, total) = worker_connections();
    free <= total / 16
}

impl ProbeConnection {
    /// Starts a non-blocking connection to `address`, whose events go to
    /// `handler` with `key`, and a timeout of `timeout_ms` from now (a
    /// [`ProbeEvent::Timeout`], once). A connection made at once (a unix
    /// socket) gets a write event posted: it comes from the event loop,
    /// after the caller is done.
    pub fn connect(
        address: &Address,
        timeout_ms: ngx_msec_t,
        key: usize,
        handler: ProbeHandler,
    ) -> Result<Self, ConnectError> {
        // None to spare: nginx would close a client's idle connection for
        // the probe, or log [alert] "worker_connections are not enough".
        if !in_event_loop() || no_connection_to_spare() {
            return Err(ConnectError::NoConnection);
        }
        let inner = NonNull::from(Box::leak(Box::new(Inner {
            address: PeerAddress::new(address),
            name: ngx_str_t::empty(),
            // SAFETY: the running cycle's log, copied; what it points at
            // lives as long as the cycle, which outlives the connection.
            log: unsafe { *(*ngx::ffi::ngx_cycle).log },
            // SAFETY: plain C structs, all-zero is their initial state.
            pc: unsafe { zeroed() },
            // SAFETY: as above.
            timeout: unsafe { zeroed() },
            key,
            handler,
        })));
        let p = inner.as_ptr();
        // SAFETY: `p` is the fresh allocation, reached only through this
        // pointer; the peer connection's sockaddr and name point into it,
        // which outlives the connection (freed by drop after closing it,
        // or below when none was made). This process's event loop runs
        // and this is its thread.
        let rc = unsafe {
            let name = (*p).address.name();
            (*p).name = ngx_str_t { len: name.len(), data: name.as_ptr().cast_mut() };
            (*p).pc.sockaddr = ptr::addr_of_mut!((*p).address.sockaddr).cast();
            (*p).pc.socklen = (*p).address.socklen;
            (*p).pc.name = ptr::addr_of_mut!((*p).name);
            (*p).pc.get = Some(ngx_event_get_peer);
            (*p).pc.log = ptr::addr_of_mut!((*p).log);
            // A peer that refuses or resets is a probe's verdict (the module logs
            // state changes, with the error), not an error per interval: nginx's
            // own read and write errors on the connection go to the info level,
            // and what ngx_event_connect_peer logs at a level of its own (a
            // connect() that fails at once: [crit] for a unix socket that is
            // gone, [error] for a full backlog; [alert] for a socket() without a
            // descriptor, which is this worker's shortage: no verdict) to none.
            (*p).pc.set_log_error(ngx_connection_log_error_e_NGX_ERROR_INFO);
            let level = (*p).log.log_level;
            (*p).log.log_level = NGX_LOG_EMERG as usize;
            let rc = ngx_event_connect_peer(ptr::addr_of_mut!((*p).pc));
            (*p).log.log_level = level;
            rc
        };
        // Read at once: what socket() or connect() failed with.
        let errno = std::io::Error::last_os_error().raw_os_error();
        if rc != NGX_OK as ngx_int_t && rc != NGX_AGAIN as ngx_int_t {
            // NGX_DECLINED (connect() failed at once) or NGX_ERROR (no
            // socket or connection, or an event not added): nginx closed
            // what it had opened (pc.connection is null).
            // SAFETY: allocated above with Box; nothing points into it.
            drop(unsafe { Box::from_raw(p) });
            // NGX_ERROR for want of a connection, a descriptor or memory:
            // this worker's shortage, not the peer's.
            let shortage = no_connection_to_spare()
                || matches!(errno, Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM));
            let local = rc != NGX_DECLINED as ngx_int_t && shortage;
            return Err(if local { ConnectError::NoConnection } else { ConnectError::Failed(errno.unwrap_or(0)) });
        }
        // SAFETY: a fresh connection of this worker: its data points at
        // the allocation, which stays until the connection is closed (drop).
        unsafe {
            let c = (*p).pc.connection;
            (*c).data = p.cast();
            (*(*c).read).handler = Some(on_read);
            (*(*c).write).handler = Some(on_write);
            let timeout = ptr::addr_of_mut!((*p).timeout);
            (*timeout).handler = Some(on_timeout);
            (*timeout).data = c.cast();
            (*timeout).log = (*p).pc.log;
            (*timeout).set_cancelable(1);
            ngx::ffi::ngx_add_timer(timeout, timeout_ms);
            if rc == NGX_OK as ngx_int_t {
                // Connected at once: no write event may come. Posted as
                // nginx posts its own; ngx_close_connection drops it if the
                // connection is closed first.
                ngx_post_event((*c).write, ptr::addr_of_mut!(ngx_posted_events));
            }
        }
        Ok(ProbeConnection { inner })
    }

    /// The open connection.
    fn connection(&self) -> *mut ngx_connection_t {
        // SAFETY: the allocation lives as long as self; see `inner`.
        unsafe { (*self.inner.as_ptr()).pc.connection }
    }

    /// `recv(fd, 1 byte, MSG_PEEK)`: whether the connection has a byte to
    /// read (`Ok(1)`), was closed by the peer (`Ok(0)`), or the error
    /// (`EAGAIN`: open, nothing to read yet). Reads nothing.
    pub fn peek(&mut self) -> std::io::Result<usize> {
        let mut byte = 0u8;
        // SAFETY: the open connection's socket; one byte into a local.
        let n = unsafe { libc::recv((*self.connection()).fd, ptr::addr_of_mut!(byte).cast(), 1, libc::MSG_PEEK) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Sends from `bytes` with nginx's `c->send` (as much as the socket
    /// takes now).
    pub fn send(&mut self, bytes: &[u8]) -> Io {
        let c = self.connection();
        // SAFETY: the open connection; c->send only reads `bytes.len()`
        // bytes from the pointer (its type is not const in C).
        unsafe {
            let Some(send) = (*c).send else { return Io::Unsupported };
            io(send(c, bytes.as_ptr().cast_mut(), bytes.len()))
        }
    }

    /// Reads into `buf` with nginx's `c->recv`.
    pub fn recv(&mut self, buf: &mut [u8]) -> Io {
        let c = self.connection();
        // SAFETY: the open connection; c->recv writes at most `buf.len()`
        // bytes into it.
        unsafe {
            let Some(recv) = (*c).recv else { return Io::Unsupported };
            io(recv(c, buf.as_mut_ptr(), buf.len()))
        }
    }

    /// nginx's `ngx_handle_read_event(c->read, 0)`: keeps the event method
    /// watching (or, level-triggered, stops watching a ready) read event.
    /// False on an error.
    pub fn handle_read_event(&mut self) -> bool {
        // SAFETY: the open connection's read event, on its event loop.
        unsafe { ngx_handle_read_event((*self.connection()).read, 0) == NGX_OK as ngx_int_t }
    }

    /// nginx's `ngx_handle_write_event(c->write, 0)`: the same for the write
    /// event (with a level-triggered method, the only way to stop
    /// `on_write` coming back once the request is sent). False on an error.
    pub fn handle_write_event(&mut self) -> bool {
        // SAFETY: the open connection's write event, on its event loop.
        unsafe { ngx_handle_write_event((*self.connection()).write, 0) == NGX_OK as ngx_int_t }
    }
}

impl Drop for ProbeConnection {
    /// Deletes the timeout and closes the connection (no event of it is
    /// delivered after: ngx_close_connection removes its posted events and
    /// its fd from the event method), then frees what nginx pointed at.
    fn drop(&mut self) {
        if !in_event_loop() {
            // After the exit hooks (nginx is freeing the cycle and its
            // connections): nothing of nginx is touched, the memory goes
            // with the process. A connection is only made in the event loop.
            return;
        }
        let p = self.inner.as_ptr();
        // SAFETY: the allocation and its open connection (see `inner`),
        // on the event loop's thread (connect() checked it and the value
        // is not Send). Nothing runs a handler synchronously here.
        unsafe {
            let timeout = ptr::addr_of_mut!((*p).timeout);
            if (*timeout).timer_set() != 0 {
                ngx::ffi::ngx_del_timer(timeout);
            }
            ngx_close_connection((*p).pc.connection);
            (*p).pc.connection = ptr::null_mut();
            drop(Box::from_raw(p));
        }
    }
}

/// What c->send or c->recv returned, read at once after the call (an
/// error's number is still in errno: nginx's handlers only log after it).
fn io(n: isize) -> Io {
    if n > 0 {
        Io::Done(n as usize)
    } else if n == 0 {
        Io::Closed
    } else if n == NGX_AGAIN as isize {
        Io::Again
    } else {
        Io::Error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// Runs the handler of the connection whose event `ev` is.
///
/// # Safety
/// `ev`'s `data` is an open probe connection (read, write and timeout
/// events all point at it), whose `data` is its live Inner.
unsafe fn deliver(ev: *mut ngx_event_t, event: ProbeEvent) {
    // SAFETY: per the contract. Copied out: the handler may drop the
    // ProbeConnection (and Inner) before it returns.
    let (key, handler) = unsafe {
        let inner = (*(*ev).data.cast::<ngx_connection_t>()).data.cast::<Inner>();
        ((*inner).key, (*inner).handler)
    };
    let _ = request_guard(|| {
        handler(key, event);
        NGX_OK as ngx_int_t
    });
}

unsafe extern "C" fn on_read(ev: *mut ngx_event_t) {
    // SAFETY: nginx calls this with the read event of a connection connect()
    // made (the only events with this handler), open: events of a closed
    // connection are not delivered.
    unsafe { deliver(ev, ProbeEvent::Read) }
}

unsafe extern "C" fn on_write(ev: *mut ngx_event_t) {
    // SAFETY: as in on_read, its write event.
    unsafe { deliver(ev, ProbeEvent::Write) }
}

unsafe extern "C" fn on_timeout(ev: *mut ngx_event_t) {
    // SAFETY: as in on_read, its timeout event (deleted before the
    // connection is closed), whose data is the connection.
    unsafe { deliver(ev, ProbeEvent::Timeout) }
}

//! A timer on nginx's event loop: an `ngx_event_t` of its own (boxed, so
//! that nginx's timer tree can point into it) with the fake connection
//! nginx's timer code reads as its `data` (`fd` -1, as nginx's own timers
//! have), whose handler is a plain Rust function. Cancelable: a pending
//! timer does not hold up a graceful quit.

use core::mem::zeroed;
use core::ptr::{self, NonNull};

use ngx::ffi::{ngx_connection_t, ngx_event_t, ngx_msec_t};

use crate::nginx::entry::request_guard;
use crate::nginx::process::in_event_loop;

/// What nginx points at: the event first (the handler finds the rest
/// from it), then its fake connection and the function to run.
#[repr(C)]
struct Inner {
    event: ngx_event_t,
    connection: ngx_connection_t,
    handler: fn(),
}

/// A timer whose expiry runs `handler` (from nginx's event loop, never
/// inside another handler). Deleted from nginx's timer tree when dropped,
/// which may be done from its own handler.
pub struct Timer {
    /// Allocated by [`Timer::new`] and freed by drop only; nginx's timer
    /// tree holds a pointer to its event while it is set.
    inner: NonNull<Inner>,
}

impl Timer {
    /// A timer, not set, that runs `handler` when it expires.
    pub fn new(handler: fn()) -> Timer {
        // SAFETY: plain C structs, for which all-zero is the initial state
        // nginx's own code gives them (ngx_pcalloc).
        let (event, connection) = unsafe { (zeroed::<ngx_event_t>(), zeroed::<ngx_connection_t>()) };
        let inner = NonNull::from(Box::leak(Box::new(Inner { event, connection, handler })));
        // SAFETY: the fresh allocation, reached only through this pointer.
        unsafe {
            let inner = inner.as_ptr();
            (*inner).connection.fd = -1;
            (*inner).event.handler = Some(on_expiry);
            (*inner).event.data = ptr::addr_of_mut!((*inner).connection).cast();
            (*inner).event.set_cancelable(1);
        }
        Timer { inner }
    }

    fn event(&self) -> *mut ngx_event_t {
        // SAFETY: the allocation lives as long as self.
        unsafe { ptr::addr_of_mut!((*self.inner.as_ptr()).event) }
    }

    /// Sets the timer to expire in `msec` milliseconds (from nginx's clock
    /// of the last event loop turn), or moves it there if it is set (as
    /// nginx's `ngx_add_timer`, which keeps an expiry less than 300 ms
    /// off). False, and nothing set, outside nginx's event loop (the
    /// master, or another thread).
    pub fn add(&mut self, msec: ngx_msec_t) -> bool {
        if !in_event_loop() {
            return false;
        }
        let ev = self.event();
        // SAFETY: this process's event loop runs and this is its thread (the
        // timer tree is set up); the event is ours and outlives its place in
        // the tree (drop deletes it). Its log is the running cycle's, as for
        // nginx's own timers.
        unsafe {
            (*ev).log = (*ngx::ffi::ngx_cycle).log;
            ngx::ffi::ngx_add_timer(ev, msec);
        }
        true
    }

    /// Whether the timer is set (not expired, not deleted).
    pub fn is_set(&self) -> bool {
        // SAFETY: the allocation lives as long as self.
        unsafe { (*self.event()).timer_set() != 0 }
    }

    /// Deletes the timer if it is set.
    pub fn del(&mut self) {
        if self.is_set() {
            // SAFETY: set, so added by add() in this process's event loop,
            // on this thread (the timer is not Send); in the tree until now.
            unsafe { ngx::ffi::ngx_del_timer(self.event()) };
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if !in_event_loop() {
            // After the exit hooks (nginx is freeing the cycle and its timer
            // tree): nothing of nginx is touched, the memory goes with the
            // process. A timer is only ever added in the event loop.
            return;
        }
        self.del();
        // SAFETY: allocated by new() with Box; no longer in nginx's tree.
        // nginx reads nothing of an expired event after its handler
        // returns (ngx_event_expire_timers), so freeing it from there is
        // safe too: on_expiry touches nothing after the handler.
        drop(unsafe { Box::from_raw(self.inner.as_ptr()) });
    }
}

/// The handler of every [`Timer`]'s event.
unsafe extern "C" fn on_expiry(ev: *mut ngx_event_t) {
    // SAFETY: nginx calls this only with a Timer's event (the only one with
    // this handler), the first field of its live Inner. The function is
    // copied out: the handler may drop the Timer.
    let handler = unsafe { (*ev.cast::<Inner>()).handler };
    let _ = request_guard(|| {
        handler();
        0
    });
}

//! nginx's connection and request counters (the ones `stub_status`
//! shows), in nginx's shared memory.

use dynamic_upstream_core::plus::view::{Connections, Requests};
use ngx::ffi::{
    ngx_atomic_t, ngx_stat_accepted, ngx_stat_active, ngx_stat_handled, ngx_stat_reading, ngx_stat_requests,
    ngx_stat_waiting, ngx_stat_writing,
};

/// One counter (0 where nginx keeps none).
fn stat(counter: *mut ngx_atomic_t) -> u64 {
    // SAFETY: nginx's counters live in its shared memory for the life of
    // the master; read volatile (other workers change them).
    unsafe { counter.as_ref().map_or(0, |c| core::ptr::read_volatile(c) as u64) }
}

/// `GET /connections`: `dropped` is accepted less handled, `active`
/// excludes the `idle` (waiting) ones.
pub fn connections() -> Connections {
    // SAFETY: reading the addresses nginx set at start.
    let (accepted, handled, active, waiting) =
        unsafe { (stat(ngx_stat_accepted), stat(ngx_stat_handled), stat(ngx_stat_active), stat(ngx_stat_waiting)) };
    Connections {
        accepted,
        dropped: accepted.saturating_sub(handled),
        active: active.saturating_sub(waiting),
        idle: waiting,
    }
}

/// `GET /http/requests`: all requests, and those being read or written.
pub fn requests() -> Requests {
    // SAFETY: as in connections().
    let (total, reading, writing) =
        unsafe { (stat(ngx_stat_requests), stat(ngx_stat_reading), stat(ngx_stat_writing)) };
    Requests { total, current: reading + writing }
}

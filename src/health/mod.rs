//! Active health checks: the probes, on each worker's event loop, of the
//! peers of zone upstreams and of run-time (dyups) upstreams. Above
//! `zone/` (whose health records it reads and whose lists it marks) and
//! `dyups/` (whose registry lists it marks). nginx's events, timers and
//! connections are reached through `nginx/` (`timer.rs`,
//! `probe_connection.rs`, `process.rs`), the peer lists through `zone/`.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

pub mod prober;

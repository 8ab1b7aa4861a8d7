//! Active health checks: the probes, on each worker's event loop, of the
//! peers of zone upstreams and of run-time (dyups) upstreams. Above
//! `zone/` (whose health records it reads and whose lists it marks) and
//! `dyups/` (whose registry lists it marks).

pub mod prober;

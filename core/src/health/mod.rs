//! Active health checks, the nginx-free part: the directives of
//! nginx_upstream_check_module (`check_conf`), the words of a dyups body
//! (`tokens`), the probe parser, rise/fall counters and the lease that lets
//! one worker probe each peer (`probe`), and the `check_status` page
//! (`status_page`). The module crate runs the probes on nginx's event loop
//! and keeps the records in shared memory.

pub mod check_conf;
pub mod probe;
pub mod status_page;
pub mod tokens;

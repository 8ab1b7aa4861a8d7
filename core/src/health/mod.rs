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

/// A checked peer's health, as its shared record has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerHealth {
    /// Down by its checks.
    pub down: bool,
    /// Consecutive passed and failed checks.
    pub rises: u32,
    pub falls: u32,
    /// Checks made, failed, and how often the peer went down.
    pub checks: u64,
    pub fails: u64,
    pub unhealthy: u64,
    /// Unix time of the last check, 0 before the first.
    pub last_check: i64,
    /// Why the last check failed (None after a success, or before the
    /// first check).
    pub last_error: Option<probe::Failure>,
}

impl PeerHealth {
    /// Whether the last check passed (false before the first).
    pub fn last_passed(&self) -> bool {
        self.last_check != 0 && self.last_error.is_none()
    }
}

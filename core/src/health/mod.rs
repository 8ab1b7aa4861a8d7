//! Active health checks, the nginx-free part: the directives of
//! nginx_upstream_check_module (`check_conf`), the words of a dyups body
//! (`tokens`), the probe parser, rise/fall counters and the lease that lets
//! one worker probe each peer (`probe`), and the `check_status` page
//! (`status_page`), the zone size records need (`zone_size`). The module crate runs the probes on nginx's event loop
//! and keeps the records in shared memory.

pub mod check_conf;
pub mod probe;
pub mod status_page;
pub mod tokens;
pub mod zone_size;

/// The health of a peer of a checked upstream, as its shared record has
/// it. In JSON answers: `"health": "up"|"down"|"unchecked"` (no record:
/// the health zone had no room for it), `rises`, `falls`, `last_check`
/// (Unix time, 0 before the first) and `last_error` ("" after a success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerHealth {
    /// It has a record (is checked).
    pub checked: bool,
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

    /// `up`, `down` or `unchecked`.
    pub fn state(&self) -> &'static str {
        match (self.checked, self.down) {
            (false, _) => "unchecked",
            (true, false) => "up",
            (true, true) => "down",
        }
    }
}

impl serde::Serialize for PeerHealth {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("PeerHealth", 5)?;
        s.serialize_field("health", self.state())?;
        s.serialize_field("rises", &self.rises)?;
        s.serialize_field("falls", &self.falls)?;
        s.serialize_field("last_check", &self.last_check)?;
        s.serialize_field("last_error", &self.last_error.map(|e| e.to_string()).unwrap_or_default())?;
        s.end()
    }
}

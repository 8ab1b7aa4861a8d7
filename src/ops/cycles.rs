//! The master's configuration cycles as the NGINX Plus API numbers them:
//! how many were loaded, when the running one was, and the revisions
//! (ETags) of the run-time upstreams, which follow the master's start so
//! that they never go back while it runs.
//!
//! A zone upstream's revision starts at its cycle's load time in
//! microseconds and counts its changes (`ZoneUpstream::start_ids`); a
//! run-time upstream's is the master's start time in microseconds plus its
//! record's version in the registry. Both rest on the same assumption:
//! fewer changes than microseconds go by.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Configuration cycles the master started (the first is generation 0),
/// when the running one was loaded (ms), and when the master started (µs):
/// set by the master in init_module, inherited by the workers.
static CYCLES: AtomicU64 = AtomicU64::new(0);
static LOAD_MS: AtomicU64 = AtomicU64::new(0);
static MASTER_START_US: AtomicU64 = AtomicU64::new(0);

/// init_module: a cycle was loaded at `now_ms`.
pub fn start_cycle(now_ms: u64) {
    CYCLES.fetch_add(1, Relaxed);
    LOAD_MS.store(now_ms, Relaxed);
    let _ = MASTER_START_US.compare_exchange(0, now_ms * 1000, Relaxed, Relaxed);
}

/// Configuration reloads since the master started.
pub fn generation() -> u64 {
    CYCLES.load(Relaxed).saturating_sub(1)
}

/// When the running configuration was loaded (Unix ms).
pub fn load_ms() -> u64 {
    LOAD_MS.load(Relaxed)
}

/// A run-time upstream's revision: the registry's version of it, after the
/// master's start time.
pub fn runtime_revision(version: u64) -> u64 {
    MASTER_START_US.load(Relaxed) + version
}

/// The version whose revision is this process's cycle's load time: a
/// registry version a read in this cycle starts from (see
/// `Dyups::record_read`).
pub fn cycle_version_floor() -> u64 {
    runtime_version_after(load_ms() * 1000)
}

/// The version whose revision is `revision`: none for a revision before
/// this master's start (another master's, or none it gave).
pub fn runtime_version_of(revision: u64) -> Option<u64> {
    revision.checked_sub(MASTER_START_US.load(Relaxed))
}

/// The version past which a run-time upstream's record has revisions
/// greater than `revision` (a configuration upstream's zone's, or a time in
/// microseconds: a registry loaded anew by a reload continues from its
/// load time, as a zone upstream's revision does).
pub fn runtime_version_after(revision: u64) -> u64 {
    revision.saturating_sub(MASTER_START_US.load(Relaxed))
}

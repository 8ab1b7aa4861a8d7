//! The master's configuration cycles as the NGINX Plus API numbers them:
//! how many were loaded, when the running one was, and the revisions
//! (ETags) of the run-time upstreams, which follow the master's start so
//! that they never go back while it runs.
//!
//! A zone upstream's revision starts past its cycle's load time in
//! microseconds ([`revisions_start_us`]) and counts its changes
//! (`ZoneUpstream::start_ids`); a
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
/// The cycle's floor of registry revisions (µs), see [`cycle_version_floor`].
static FLOOR_US: AtomicU64 = AtomicU64::new(0);

/// init_module, once the workers of older cycles know they are replaced
/// (`Dyups::begin_cycle`): a cycle was loaded at `now_ms` (nginx's time,
/// which it took before reading the configuration); the registry it keeps
/// is at `registry_version` (0: a new one).
pub fn start_cycle(now_ms: u64, registry_version: u64) {
    CYCLES.fetch_add(1, Relaxed);
    LOAD_MS.store(now_ms, Relaxed);
    let _ = MASTER_START_US.compare_exchange(0, now_ms * 1000, Relaxed, Relaxed);
    // The clock now, not nginx's time of the reload's start: workers of the
    // older cycle changed the registry while nginx read the configuration,
    // with revisions up to their own time (review 59). Past the registry's
    // revisions too, should the clock have gone back (review 60), and a
    // millisecond more for their cached time (and the reading's moment).
    let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros();
    let given = runtime_revision(registry_version);
    FLOOR_US.store(u64::try_from(now_us).unwrap_or(u64::MAX).max(now_ms * 1000).max(given) + 1000, Relaxed);
}

/// Where this cycle's revisions start (µs): its zone upstreams' first one
/// (`ZoneUpstream::start_ids`), and a run-time upstream's past it (see
/// [`cycle_version_floor`]). Past the cycle's load time and every revision
/// given before the cycle began, in either kind, so that no revision read
/// before matches one given after (review 60).
pub fn revisions_start_us() -> u64 {
    FLOOR_US.load(Relaxed)
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

/// The registry version a read in this process's cycle starts from (see
/// `Dyups::record_read`): past every revision given before the cycle began
/// (a worker of an older cycle answers, from then on, the revision of a
/// name's absence that no change matches: see `api::rest`).
pub fn cycle_version_floor() -> u64 {
    runtime_version_after(revisions_start_us())
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

//! The debug builds' stall points, for the tests of a worker killed
//! inside a change of the run-time upstreams' registry
//! (t/dyups-lock-takeover.t), or of a zone upstream's servers.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::time::Duration;

/// Debug builds only, for the tests of a worker killed inside a change:
/// with the environment variable `NDU_TEST_STALL` set to `POINT:NAME`
/// (passed to workers with nginx's `env` directive), a change of upstream
/// NAME stops at POINT, in a replace: `replace_prepared` (its health slots
/// claimed, pending), `replace_activated` (checked, the list not
/// published), `replace_balancer` (the new balancer written, not in force),
/// `replace_retire` (its new list in, the old one not retired),
/// `replace_version` (complete but its version not moved); when a new
/// record is linked: `append_chained` (in creation order, not in `last`
/// nor the index); in a delete: `delete_retire` (its list unpublished, not
/// retired), `delete_unchained` (a run-time upstream's record out of the
/// creation order, still in the index), `delete_unlinked` (unlinked, its
/// deletion not noted yet); in the grace period's reap (any change):
/// `grace_flip` (the retired lists waiting, the phase not flipped yet;
/// NAME `registry`) for 60 s, with the registry's lock and the slab mutex
/// held; in a Plus API replace (`PUT`) of zone upstream NAME's servers:
/// `zone_claimed` (the new servers' health slots claimed, pending; no lock
/// held but a `dynamic_state_file`'s); in a dyups POST or DELETE of NAME,
/// validated, before any lock: `dyups_received` (also a run-time
/// upstream's change through the NGINX Plus API), `delete_received`; after
/// logging `stalling at POINT in a change of NAME`. `NDU_TEST_STALL` may
/// name several, separated by commas. With `NDU_TEST_STALL_ONCE` set to a
/// path, only the process that creates that file stalls (with several
/// points, the file `PATH.POINT.NAME`); `NDU_TEST_STALL_SECONDS` sets how long
/// (60 by default). (Test code: it reads the environment, logs and sleeps
/// under the locks, which the module never does otherwise.)
pub fn stall_for_tests(point: &str, name: &str) {
    let Ok(wanted) = std::env::var("NDU_TEST_STALL") else { return };
    if !wanted.split(',').any(|one| one.split_once(':') == Some((point, name))) {
        return;
    }
    if let Ok(once) = std::env::var("NDU_TEST_STALL_ONCE") {
        let once = if wanted.contains(',') { format!("{once}.{point}.{name}") } else { once };
        if std::fs::OpenOptions::new().write(true).create_new(true).open(once).is_err() {
            return;
        }
    }
    crate::nginx::log::log(ngx::ffi::NGX_LOG_NOTICE, &format!("stalling at {point} in a change of {name}"));
    let seconds = std::env::var("NDU_TEST_STALL_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    std::thread::sleep(Duration::from_secs(seconds));
}

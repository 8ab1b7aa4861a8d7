//! Changing a zone upstream: the operation behind the query-string API and
//! Lua's `ngx.dynamic`.

use dynamic_upstream_core::{Action, ApiError};

use crate::ops::change_log::{log_change, log_refusal, Requester};
use crate::ops::state_files::{managed_by_dyups, save_zone_upstream, ChangeGuard};
use crate::zone::upstream::ZoneUpstream;

/// The zone upstream `name` (by zone name, else by its own name).
pub fn find_zone(name: &str) -> Result<ZoneUpstream, ApiError> {
    ZoneUpstream::find(name, managed_by_dyups)
}

/// Refuses `action` on `upstream` with `e`, logged if it is a change.
pub fn refuse(origin: &Requester, upstream: &str, action: &Action, e: ApiError) -> ApiError {
    if *action != Action::List {
        log_refusal(origin, upstream, &e);
    }
    e
}

/// Finds the zone upstream `name` and applies `action` to it. Logs the
/// change, or why a change was refused.
pub fn perform(name: &str, action: &Action, origin: &Requester) -> Result<ZoneUpstream, ApiError> {
    let refused = |e| refuse(origin, name, action, e);
    let zone = find_zone(name).map_err(refused)?;
    if *action == Action::List {
        return Ok(zone);
    }
    let _guard = ChangeGuard::for_zone_upstream(&zone).map_err(refused)?;
    // Reaping first frees what earlier removals retired and no request holds
    // any more (room for an add); reaping after frees what this one retired,
    // unless a request holds it.
    zone.reap();
    let change = zone.apply(action).map_err(refused)?;
    zone.reap();
    if let Some(change) = change {
        log_change(origin, &zone.name(), &change);
    }
    // The change is live: a state file not written is logged as that (an
    // [error] naming the file), not as a refused change.
    save_zone_upstream(&zone)?;
    Ok(zone)
}

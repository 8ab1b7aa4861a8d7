//! Changing a zone upstream: the operations behind the query-string API,
//! Lua's `ngx.dynamic` and the NGINX Plus API (by server ID, and the
//! declarative replace of `PUT .../servers`).

use dynamic_upstream_core::peer::{checked_total_weight, total_weight_error};
use dynamic_upstream_core::plus::diff::{plan, Current};
use dynamic_upstream_core::render::Change;
use dynamic_upstream_core::{Action, ApiError, PeerParams, ServerSpec};

use crate::dyups::registry::revision_mismatch;
use crate::nginx::sockaddr::PeerAddress;
use crate::nginx::upstreams::Running;
use crate::ops::change_log::{log_change, log_refusal, Requester};
use crate::ops::state_files::{managed_by_dyups, save_zone_upstream, ChangeGuard};
use crate::zone::peers::{ListsRefused, Lost};
use crate::zone::upstream::ZoneUpstream;

/// The zone upstream `name` (by zone name, else by its own name).
pub fn find_zone<'r>(running: &Running<'r>, name: &str) -> Result<ZoneUpstream<'r>, ApiError> {
    ZoneUpstream::find(running, name, managed_by_dyups)
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
pub fn perform<'r>(
    running: &Running<'r>,
    name: &str,
    action: &Action,
    origin: &Requester,
) -> Result<ZoneUpstream<'r>, ApiError> {
    let zone = find_zone(running, name).map_err(|e| refuse(origin, name, action, e))?;
    if *action != Action::List {
        perform_on(&zone, action, origin)?;
    }
    Ok(zone)
}

/// Applies the change `action` to `zone`. Logs the change, or why it was
/// refused.
pub fn perform_on(zone: &ZoneUpstream, action: &Action, origin: &Requester) -> Result<(), ApiError> {
    changing(zone, origin, |zone| {
        if let Some(change) = zone.apply(action)? {
            log_change(origin, &zone.name(), &change);
        }
        Ok(())
    })
}

/// What PATCH and DELETE of the NGINX Plus API do to a server by its ID.
pub enum IdEdit {
    Update { params: PeerParams, down: Option<bool> },
    Remove,
}

/// Applies `edit` to the server with ID `id` of `zone`, which is found
/// under the lists' write locks with the edit (a server removed and added
/// again meanwhile has another ID: 404). Logs the change or the refusal.
pub fn perform_by_id(zone: &ZoneUpstream, id: u64, edit: &IdEdit, origin: &Requester) -> Result<(), ApiError> {
    changing(zone, origin, |zone| {
        match edit {
            IdEdit::Update { params, down } => {
                let (server, before) = zone.update_by_id(id, params, *down)?;
                log_change(origin, &zone.name(), &Change::Update { server: &server, before, params, down: *down });
            }
            IdEdit::Remove => {
                let server = zone.remove_by_id(id)?;
                log_change(origin, &zone.name(), &Change::Remove(&server));
            }
        }
        Ok(())
    })
}

/// Runs `apply` (which logs the change it makes) on `zone` under its
/// change guard, then saves the state file. Logs a refusal.
fn changing(
    zone: &ZoneUpstream,
    origin: &Requester,
    apply: impl FnOnce(&ZoneUpstream) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let refused = |e: ApiError| {
        log_refusal(origin, &zone.name(), &e);
        e
    };
    let _guard = ChangeGuard::for_zone_upstream(zone).map_err(refused)?;
    // Reaping first frees what earlier removals retired and no request holds
    // any more (room for an add); reaping after frees what this one retired,
    // unless a request holds it.
    zone.reap();
    apply(zone).map_err(refused)?;
    zone.reap();
    // The change is live: a state file not written is logged as that (an
    // [error] naming the file), not as a refused change.
    save_zone_upstream(zone)
}

/// Plans made again at most this often when other changes keep winning.
const TRIES: usize = 8;

/// The declarative replace (`PUT .../servers`): makes `desired` the
/// servers of `zone`, only if its revision is still `if_match` (when
/// given). The difference ([`dynamic_upstream_core::plus::diff`]) is
/// applied under one hold of the lists' write locks
/// ([`crate::zone::peers::replace_locked`]); servers that stay keep their
/// peer (ID, statistics, failure state, connections). All or nothing: the
/// desired list is checked as a whole first, and a zone without room for
/// every new peer changes nothing. The plan is computed from a copy of the
/// lists taken after reading the revision, which every change bumps under
/// the write locks: a replace that lost a race with another change is
/// planned again. Peers nginx's resolver made are not compared: they stay
/// (a desired server with the address of one is refused, 409). Logs the
/// change (or refusal) and saves the state file. Ok(false): nothing to
/// change.
pub fn replace(
    zone: &ZoneUpstream,
    desired: &[ServerSpec],
    if_match: Option<u64>,
    origin: &Requester,
) -> Result<bool, ApiError> {
    let mut before = None;
    changing(zone, origin, |zone| {
        before = apply_replace(zone, desired, if_match)?;
        if let Some(before) = before {
            log_change(origin, &zone.name(), &Change::Replace { before: Some(before), after: desired.len() });
        }
        Ok(())
    })?;
    Ok(before.is_some())
}

/// Applies the replace; Some(servers before) if anything changed.
fn apply_replace(
    zone: &ZoneUpstream,
    desired: &[ServerSpec],
    if_match: Option<u64>,
) -> Result<Option<usize>, ApiError> {
    check_list(zone, desired)?;
    for _ in 0..TRIES {
        let revision = zone.counters().revision();
        if if_match.is_some_and(|wanted| wanted != revision) {
            return Err(revision_mismatch(&zone.name()));
        }
        let current: Vec<Current> = zone
            .server_specs()
            .map_err(|e| ApiError::new(500, "internal", e))?
            .into_iter()
            .map(|spec| Current { id: spec.id.unwrap_or(u64::MAX), spec })
            .collect();
        zone.check_not_resolved(desired)?;
        let plan = plan(&current, desired);
        if plan.is_empty() {
            return Ok(None);
        }
        zone.check_balancer_allows(plan.changes_set_or_weights(), false)?;
        let added: Vec<(&ServerSpec, PeerAddress)> =
            plan.add.iter().map(|spec| (spec, PeerAddress::new(&spec.address))).collect();
        let removed: Vec<PeerAddress> = current
            .iter()
            .filter(|c| plan.remove.binary_search(&c.id).is_ok())
            .map(|c| PeerAddress::new(&c.spec.address))
            .collect();
        let slots = zone.claim_slots(&added, &removed)?;
        #[cfg(debug_assertions)]
        crate::dyups::test_stall::stall_for_tests("zone_claimed", &zone.name());
        match zone.replace(revision, &plan, &added, &removed, slots) {
            Ok(()) => return Ok(Some(current.len())),
            Err(Lost::Race) => continue,
            Err(Lost::HandedOver) => return Err(zone.handed_over_conflict()),
            Err(Lost::NoRoom) => return Err(ApiError::no_room(&zone.zone_name(), zone.zone_size())),
            Err(Lost::Balancer(e)) => return Err(e),
            Err(Lost::Refused(refused)) => return Err(lists_refused(zone, refused)),
        }
    }
    Err(ApiError::conflict(
        "busy",
        format!("upstream \"{}\" kept changing while it was replaced; try again", zone.name()),
    ))
}

/// The error for a plan the lists refused under their locks (the checks
/// of [`check_list`], made again there).
fn lists_refused(zone: &ZoneUpstream, refused: ListsRefused) -> ApiError {
    let which = |backup: bool| if backup { "backup" } else { "primary" };
    match refused {
        ListsRefused::TooMany { backup, count, max } => ApiError::new(
            507,
            "too_many_peers",
            format!(
                "upstream \"{}\": {count} {} servers, more than the {max} its zone \"{}\" can track per request",
                zone.name(),
                which(backup),
                zone.zone_name()
            ),
        ),
        ListsRefused::WeightTotal { backup } => ApiError::bad_request(
            "weight_total",
            total_weight_error(&format!("upstream \"{}\"'s {} servers", zone.name(), which(backup)), "would total"),
        ),
        ListsRefused::TableTooBig { total } => zone.table_too_big(total),
        ListsRefused::NoPrimary => {
            ApiError::bad_request("invalid_body", format!("upstream \"{}\" would have no primary server", zone.name()))
        }
    }
}

/// What the desired list must satisfy whatever the current one is.
/// (Backup servers are checked by the replace, which knows the ones it
/// adds: a PUT may keep the backups a configuration wrote before a balancer
/// line, as GET lists them.)
fn check_list(zone: &ZoneUpstream, desired: &[ServerSpec]) -> Result<(), ApiError> {
    for backup in [false, true] {
        let list = || desired.iter().filter(move |s| s.backup == backup);
        let (count, max) = (list().count(), zone.max_peers_per_list());
        if count > max {
            return Err(lists_refused(zone, ListsRefused::TooMany { backup, count, max }));
        }
        if checked_total_weight(list().map(|s| s.weight)).is_none() {
            return Err(lists_refused(zone, ListsRefused::WeightTotal { backup }));
        }
    }
    Ok(())
}

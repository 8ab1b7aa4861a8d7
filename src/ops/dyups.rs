//! Changing the dyups registry: creating, replacing and deleting whole
//! upstreams, the operations behind the REST API's POST and DELETE, the C
//! API and Lua's `ngx.dyups`.

use dynamic_upstream_core::dyups::{self, parse_body, parse_json_body, validate_upstream_name, KeyPart, UpstreamSpec};
use dynamic_upstream_core::render::Change;
use dynamic_upstream_core::{ApiError, Balancer};

use crate::dyups::registry::{revision_mismatch, Continues, Dyups, InitPatience, Precondition};
use crate::dyups::worker::{configured_peers, sync_if_moved};
use crate::nginx::module_hooks::InitModule;
use crate::nginx::peer_stats::now_ms;
use crate::nginx::upstreams::{Running, Upstream};
use crate::nginx::variables::variable_exists;
use crate::ops::change_log::{log_change, log_refusal, Requester};
use crate::ops::cycles::{cycle_version_floor, runtime_revision, runtime_version_after, runtime_version_of};
use crate::ops::state_files::{managed_by_dyups, save_dyups, ChangeGuard};
use crate::zone::upstream::ZoneUpstream;

/// What a change of an upstream is conditional on.
#[derive(Clone, Copy)]
pub enum Condition {
    /// Nothing (a request without `If-Match`, the C API, Lua).
    None,
    /// dyups' `If-Match`: the revision `GET /upstream/NAME` answered, of
    /// its record, of its absence, or of its zone (a configuration
    /// upstream's, until the first replace takes it over).
    Revision(u64),
    /// The NGINX Plus API's: its live record of this version.
    Record(u64),
}

/// Creates or replaces `name` from a body of `server ...;` statements (or
/// JSON) if `condition` holds: the operation behind POST, the C API and
/// Lua. Logs the change, or why it was refused. Returns the upstream's
/// new revision.
pub fn update_upstream(
    name: &str,
    body: &[u8],
    is_json: bool,
    trylock: bool,
    condition: Condition,
    origin: &Requester,
) -> Result<u64, ApiError> {
    logged(origin, name, replace(name, body, is_json, trylock, condition))
}

/// Deletes `name` if `condition` holds: the operation behind DELETE, the C
/// API and Lua.
pub fn delete_upstream(name: &str, trylock: bool, condition: Condition, origin: &Requester) -> Result<(), ApiError> {
    logged(origin, name, delete_record(name, trylock, condition).map(|guard| (Change::Delete, guard, ())))
}

/// Logs `result` (the change made, or the refusal), then saves the state
/// file after a change, still holding the change's guard (a failure to save
/// is logged as that, not as a refused change: the change is live).
fn logged<T>(
    origin: &Requester,
    name: &str,
    result: Result<(Change<'static>, ChangeGuard, T), ApiError>,
) -> Result<T, ApiError> {
    match result {
        Ok((change, _guard, made)) => {
            log_change(origin, name, &change);
            save_dyups().map(|()| made)
        }
        Err(e) => {
            log_refusal(origin, name, &e);
            Err(e)
        }
    }
}

fn replace(
    name: &str,
    body: &[u8],
    is_json: bool,
    trylock: bool,
    condition: Condition,
) -> Result<(Change<'static>, ChangeGuard, u64), ApiError> {
    validate_upstream_name(name)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("invalid_body", "add server failed: body is not UTF-8"))?;
    let spec = if is_json { parse_json_body(text)? } else { parse_body(text)? };
    replace_spec(name, &spec, trylock, condition)
}

/// Sets the servers of run-time upstream `name` to `spec`'s (the NGINX
/// Plus API's changes), only if its version is still `expected`: the
/// operation behind POST, logged and saved the same way.
pub fn update_upstream_spec(
    name: &str,
    spec: &UpstreamSpec,
    trylock: bool,
    expected: u64,
    origin: &Requester,
) -> Result<(), ApiError> {
    logged(origin, name, replace_spec(name, spec, trylock, Condition::Record(expected))).map(drop)
}

fn replace_spec(
    name: &str,
    spec: &UpstreamSpec,
    trylock: bool,
    condition: Condition,
) -> Result<(Change<'static>, ChangeGuard, u64), ApiError> {
    check_hash_key(spec)?;
    refuse_resolving(name)?;
    let dyups = registry()?;
    #[cfg(debug_assertions)]
    crate::dyups::test_stall::stall_for_tests("dyups_received", name);
    let guard = ChangeGuard::for_dyups(trylock)?;
    // Until its first replacement, an upstream of the configuration has no
    // record: it had the configuration's servers.
    let config_servers = Upstream::with_running(|running| {
        config_upstream(running, name).and_then(|(_, upstream)| configured_peers(upstream)).map(|p| p.len())
    });
    let replaced = taking_over(&dyups, name, condition, HandOver::Always, |pre, continues| {
        dyups.replace_if(name, spec, trylock, pre, continues)
    })?;
    sync_if_moved();
    let before = replaced.before.or(config_servers);
    Ok((Change::Replace { before, after: spec.servers.len() }, guard, runtime_revision(replaced.version)))
}

/// Whether a change of a configuration upstream served from its zone
/// hands the zone over.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HandOver {
    /// A replace: the registry serves the upstream from then on.
    Always,
    /// A delete: only to compare the zone's revision (`If-Match`) with no
    /// change of it in between. An unconditional one is not refused, as
    /// before, while the zone's lists stay locked or in a worker a reload
    /// replaced (review 57 F4).
    IfConditional,
}

/// Runs `change` (of `name`) with the precondition `condition` sets and
/// what it continues: for the first change of a configuration upstream
/// served from its zone, a version whose revision is past the zone's and
/// past now, so that the revision does not go back (a conditional change
/// with an ETag read before would pass; hunt 26), and for a replace the
/// zone's next server ID, so that no ID the zone gave is given again to
/// another server (a DELETE by an old ID would remove it). The zone is
/// handed over (see [`HandOver`]) as its numbering and revision are read,
/// under its lists' locks: no change of it through another API comes after
/// (409), none is lost or numbered again (review 26); taken back if the
/// change fails or its revision is not the one wanted. Nothing for other
/// upstreams, and for one the registry serves already (its record
/// continues itself; its `peer.data` is no zone list any more). A worker a
/// reload replaced would read its own cycle's zone, which the running
/// configuration no longer uses: it answers 503, retry (review 26).
fn taking_over<T>(
    dyups: &Dyups,
    name: &str,
    condition: Condition,
    hand_over: HandOver,
    change: impl FnOnce(Option<Precondition>, Continues) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    Upstream::with_running(|running| {
        let Some(zone) = config_upstream(running, name)
            .and_then(|(_, upstream)| ZoneUpstream::of_running(upstream, managed_by_dyups).ok())
        else {
            return change(precondition(name, condition)?, Continues::default());
        };
        let past_now = runtime_version_after(now_ms() * 1000);
        if hand_over == HandOver::IfConditional && matches!(condition, Condition::None) {
            return change(None, Continues { next_id: 0, version_floor: past_now });
        }
        if !dyups.is_current_cycle() {
            return Err(ApiError::reloading());
        }
        let (next_id, revision) = zone.hand_over().ok_or_else(|| {
            ApiError::conflict("locked", format!("upstream \"{name}\"'s servers stayed locked for 100 ms; try again"))
        })?;
        let pre = match condition {
            // Still the zone's: unless another worker took it over since.
            Condition::Revision(wanted) if wanted == revision => Ok(Some(Precondition::NoRecord)),
            // The record another worker made, if this one has not synced
            // with it yet: never "absent" (that revision was the zone's).
            Condition::Revision(wanted) => {
                runtime_version_of(wanted).map(|v| Some(Precondition::Record(v))).ok_or_else(|| revision_mismatch(name))
            }
            other => precondition(name, other),
        };
        let floor = runtime_version_after(revision).max(past_now);
        let changed = pre.and_then(|pre| change(pre, Continues { next_id, version_floor: floor }));
        if changed.is_err() {
            zone.take_back();
        }
        changed
    })
}

/// The registry's precondition for `condition`. A revision that is no
/// version of this master's registry (another master's, a zone's, or none
/// the module gave) holds for nothing: 412.
fn precondition(name: &str, condition: Condition) -> Result<Option<Precondition>, ApiError> {
    Ok(match condition {
        Condition::None => None,
        Condition::Record(version) => Some(Precondition::Record(version)),
        Condition::Revision(wanted) => Some(Precondition::Unchanged {
            since: runtime_version_of(wanted).ok_or_else(|| revision_mismatch(name))?,
            floor: cycle_version_floor(),
        }),
    })
}

fn delete_record(name: &str, trylock: bool, condition: Condition) -> Result<ChangeGuard, ApiError> {
    validate_upstream_name(name)?;
    refuse_resolving(name)?;
    let dyups = registry()?;
    #[cfg(debug_assertions)]
    crate::dyups::test_stall::stall_for_tests("delete_received", name);
    let guard = ChangeGuard::for_dyups(trylock)?;
    let in_config = in_config(name);
    taking_over(&dyups, name, condition, HandOver::IfConditional, |pre, continues| {
        match dyups.delete(name, in_config, trylock, pre, continues)? {
            true => Ok(()),
            false => Err(ApiError::not_found("upstream_not_found", format!("upstream \"{name}\" not found"))),
        }
    })?;
    sync_if_moved();
    Ok(guard)
}

/// An upstream of the configuration with `server NAME resolve` (nginx
/// 1.27.3 and later) is not replaced or deleted here: nginx's resolver
/// changes its zone list through the upstream's `peer.data`, where a
/// run-time version would sit (nginx wrote past the worker's structure
/// there, hunt 23). Its other servers change through the NGINX Plus API or
/// the query-string API.
fn refuse_resolving(name: &str) -> Result<(), ApiError> {
    let resolving =
        Upstream::with_running(|running| config_upstream(running, name).map(|(n, u)| (n, u.resolves_any())));
    match resolving {
        Some((spelled, true)) => Err(ApiError::conflict(
            "upstream_resolves",
            format!(
                "upstream \"{spelled}\" of the configuration has servers with \"resolve\", whose peers nginx's \
                 resolver changes: it cannot be replaced or deleted through this API; change its other servers \
                 with the NGINX Plus API or the query-string API"
            ),
        )),
        _ => Ok(()),
    }
}

/// init_module (master), the state files restored: one warning for each
/// variable that run-time upstreams' hash keys name and the new
/// configuration does not define (a `map` or `set` removed since the key
/// was accepted, which a kept registry or the dyups file still holds),
/// naming those upstreams. nginx takes such a variable as empty for every
/// request (hunt 33; a change with that key answers 400).
pub fn unknown_key_variables(init: &InitModule, patience: &mut InitPatience) -> Vec<String> {
    let Some(dyups) = Dyups::of_new_cycle(init) else { return Vec::new() };
    let keys = dyups.while_write_locked(patience, |held| held.map(|held| held.hash_keys()).unwrap_or_default());
    dyups::unknown_key_variables(&keys, |var| init.has_variable(var))
}

/// A hash key may only use variables nginx knows.
fn check_hash_key(spec: &UpstreamSpec) -> Result<(), ApiError> {
    if let Balancer::Hash { key, .. } = &spec.balancer {
        for part in dyups::split_hash_key(key)? {
            if let KeyPart::Variable(var) = part {
                if !variable_exists(&var) {
                    return Err(ApiError::bad_request(
                        "invalid_body",
                        format!("add server failed: unknown variable \"${var}\" in hash key"),
                    ));
                }
            }
        }
    }
    Ok(())
}

pub fn in_config(name: &str) -> bool {
    Upstream::with_running(|running| config_upstream(running, name).is_some())
}

/// The configuration's upstream `name` (any case), with its own spelling.
pub fn config_upstream<'r>(running: &Running<'r>, name: &str) -> Option<(String, Upstream<'r>)> {
    running.upstreams().iter().map(|&u| (u.name(), u)).find(|(host, _)| host.eq_ignore_ascii_case(name))
}

pub fn registry() -> Result<Dyups<'static>, ApiError> {
    Dyups::get().ok_or_else(|| ApiError::new(500, "no_zone", "the dyups zone is not available"))
}

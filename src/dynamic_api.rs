//! The `dynamic_upstream` front end: the query-string API on zone upstreams.
//!
//! Parse and validate the query (core crate), apply it to the zone's peers
//! ([`crate::zone_peers`]), render the answer (core crate). Errors answer
//! `STATUS Reason: text` (or JSON) and change nothing.

use dynamic_upstream_core::render::{json_error, json_upstream, plain_list, text_error, verbose_list};
use dynamic_upstream_core::{Action, ApiError, QueryRequest, UpstreamView};

use crate::balancer::ZoneUpstream;
use crate::change_log::{log_change, log_refusal, Requester};
use crate::http_io::{HttpRequest, Response};
use crate::reclaim;
use crate::state_files::{save_zone_upstream, ChangeGuard};

/// Answers one request to a `dynamic_upstream` location; `read_only`
/// (`dynamic_upstream_read_only on`) allows listings only.
pub fn respond(req: &mut HttpRequest, read_only: bool) -> Response {
    let args = req.args();
    let json = req.wants_json();
    let origin = req.requester("query");
    let result = if req.is_get_or_head() {
        run(&args, read_only, req.method_name() == "HEAD", &origin)
    } else {
        let e = ApiError::new(405, "method_not_allowed", "only GET and HEAD are accepted");
        Err(match QueryRequest::parse(&args) {
            Ok(request) => refuse(&origin, &request.upstream, &request.action, e),
            Err(_) => e,
        })
    };
    match result {
        Ok((request, zone)) => render(&request, &zone, json),
        Err(e) => error_response(&e, json),
    }
}

fn run(args: &[u8], read_only: bool, head: bool, origin: &Requester) -> Result<(QueryRequest, ZoneUpstream), ApiError> {
    // Unparsed, a request might have been a change: say why it was refused.
    let request = QueryRequest::parse(args).inspect_err(|e| log_refusal(origin, "-", e))?;
    if read_only && request.action != Action::List {
        let e = read_only_error("dynamic_upstream_read_only");
        return Err(refuse(origin, &request.upstream, &request.action, e));
    }
    if head && request.action != Action::List {
        // HEAD must not change anything (it may still say 404).
        let e = match ZoneUpstream::find(&request.upstream) {
            Err(e) => e,
            Ok(_) => ApiError::new(405, "method_not_allowed", "HEAD only lists: use GET to change upstreams"),
        };
        return Err(refuse(origin, &request.upstream, &request.action, e));
    }
    let zone = perform(&request.upstream, &request.action, origin)?;
    Ok((request, zone))
}

/// Refuses `action` on `upstream` with `e`, logged if it is a change.
fn refuse(origin: &Requester, upstream: &str, action: &Action, e: ApiError) -> ApiError {
    if *action != Action::List {
        log_refusal(origin, upstream, &e);
    }
    e
}

/// Finds the zone upstream `name` and applies `action` to it: the one
/// operation behind the query-string API and Lua's `ngx.dynamic`. Logs the
/// change, or why a change was refused.
pub fn perform(name: &str, action: &Action, origin: &Requester) -> Result<ZoneUpstream, ApiError> {
    let refused = |e| refuse(origin, name, action, e);
    let zone = ZoneUpstream::find(name).map_err(refused)?;
    if *action == Action::List {
        return Ok(zone);
    }
    let _guard = ChangeGuard::for_zone_upstream(&zone).map_err(refused)?;
    // Reaping first frees what earlier removals retired and no request holds
    // any more (room for an add); reaping after frees what this one retired,
    // unless a request holds it.
    reclaim::reap(&zone);
    let change = zone.apply(action).map_err(refused)?;
    reclaim::reap(&zone);
    if let Some(change) = change {
        log_change(origin, &zone.name(), &change);
    }
    // The change is live: a state file not written is logged as that (an
    // [error] naming the file), not as a refused change.
    save_zone_upstream(&zone)?;
    Ok(zone)
}

fn render(request: &QueryRequest, zone: &ZoneUpstream, json: bool) -> Response {
    let peers = zone.peers();
    if json {
        let view = UpstreamView { upstream: zone.name(), zone: Some(zone.zone_name()), peers };
        return Response { status: 200, content_type: "application/json", body: json_upstream(&view).into_bytes() };
    }
    let body = if request.verbose { verbose_list(&peers) } else { plain_list(&peers) };
    Response::text(200, body)
}

/// A change asked of a read-only location.
pub fn read_only_error(directive: &str) -> ApiError {
    ApiError::new(403, "read_only", format!("this location only lists upstreams ({directive} on)"))
}

pub fn error_response(e: &ApiError, json: bool) -> Response {
    if json {
        Response { status: e.status, content_type: "application/json", body: json_error(e).into_bytes() }
    } else {
        Response::text(e.status, text_error(e))
    }
}

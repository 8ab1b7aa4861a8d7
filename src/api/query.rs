//! The `dynamic_upstream` front end: the query-string API on zone upstreams.
//!
//! Parse and validate the query (core crate), apply it to the zone's peers
//! ([`crate::ops::zone`]), render the answer (core crate). Errors answer
//! `STATUS Reason: text` (or JSON) and change nothing.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use dynamic_upstream_core::render::{json_error, json_upstream, plain_list, text_error, verbose_list};
use dynamic_upstream_core::{Action, ApiError, QueryRequest, UpstreamView};

use crate::nginx::http_io::{HttpRequest, Response};
use crate::nginx::upstreams::{Running, Upstream};
use crate::ops::change_log::{log_refusal, Requester};
use crate::ops::zone::{find_zone, perform, refuse};
use crate::zone::upstream::ZoneUpstream;

/// Answers one request to a `dynamic_upstream` location; `read_only`
/// (`dynamic_upstream_read_only on`) allows listings only.
pub fn respond(req: &mut HttpRequest, read_only: bool) -> Response {
    let args = req.args();
    let json = req.wants_json();
    let origin = Requester::of(req, "query");
    let head = req.method_name() == "HEAD";
    let get_or_head = req.is_get_or_head();
    Upstream::with_running(|running| {
        let result = if get_or_head {
            run(running, &args, read_only, head, &origin)
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
    })
}

fn run<'r>(
    running: &Running<'r>,
    args: &[u8],
    read_only: bool,
    head: bool,
    origin: &Requester,
) -> Result<(QueryRequest, ZoneUpstream<'r>), ApiError> {
    // Unparsed, a request might have been a change: say why it was refused.
    let request = QueryRequest::parse(args).inspect_err(|e| log_refusal(origin, "-", e))?;
    if read_only && request.action != Action::List {
        let e = ApiError::read_only("dynamic_upstream_read_only");
        return Err(refuse(origin, &request.upstream, &request.action, e));
    }
    if head && request.action != Action::List {
        // HEAD must not change anything (it may still say 404).
        let e = match find_zone(running, &request.upstream) {
            Err(e) => e,
            Ok(_) => ApiError::new(405, "method_not_allowed", "HEAD only lists: use GET to change upstreams"),
        };
        return Err(refuse(origin, &request.upstream, &request.action, e));
    }
    let zone = perform(running, &request.upstream, &request.action, origin)?;
    Ok((request, zone))
}

fn render(request: &QueryRequest, zone: &ZoneUpstream, json: bool) -> Response {
    if json {
        let peers = zone.peers_with_health();
        let view = UpstreamView { upstream: zone.name(), zone: Some(zone.zone_name()), peers };
        return Response { status: 200, content_type: "application/json", body: json_upstream(&view).into_bytes() };
    }
    let peers = zone.peers();
    let body = if request.verbose { verbose_list(&peers) } else { plain_list(&peers) };
    Response::text(200, body)
}

pub fn error_response(e: &ApiError, json: bool) -> Response {
    if json {
        Response { status: e.status, content_type: "application/json", body: json_error(e).into_bytes() }
    } else {
        Response::text(e.status, text_error(e))
    }
}

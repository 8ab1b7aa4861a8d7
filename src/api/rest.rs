//! The `dyups_interface` front end: Tengine dyups' REST API.
//!
//! `GET /list`, `GET /detail`, `GET /upstream/NAME`, `POST /upstream/NAME`
//! (body: `server ...;` statements, or JSON), `DELETE /upstream/NAME`.
//! Bodies and status codes follow dyups: `success` on a change, `add
//! server failed: ...` for a bad body.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{HashMap, HashSet};

use dynamic_upstream_core::dyups::{self, validate_upstream_name, Route};
use dynamic_upstream_core::render::json_error;
use dynamic_upstream_core::revision::{etag, IfMatch};
use dynamic_upstream_core::{ApiError, PeerView, UpstreamView};

use crate::dyups::registry::{revision_mismatch, Dyups, ReadSection, RecordView, ZONE_NAME};
use crate::dyups::worker::{configured_peers, is_front};
use crate::nginx::http_io::{HttpRequest, Response};
use crate::nginx::upstreams::{Running, Upstream};
use crate::ops::change_log::{log_refusal, Requester};
use crate::ops::cycles::{cycle_version_floor, runtime_revision};
use crate::ops::dyups::{config_upstream, delete_upstream, registry, update_upstream, Condition};
use crate::zone::health::{show_health, HealthListing, HealthZone};
use crate::zone::upstream::ZoneUpstream;

/// Largest body accepted by POST.
pub const MAX_BODY: usize = 1024 * 1024;

/// Whether the request's body is read before it is answered: a POST to
/// `/upstream/NAME` where changes are allowed. The one place that decides
/// it: the content handler reads the body exactly when this says so, and
/// hands it to [`respond`].
pub fn reads_body(req: &HttpRequest, read_only: bool) -> bool {
    req.method_name() == "POST" && !read_only && matches!(Route::parse(&req.path()), Some(Route::Upstream(_)))
}

/// An answer, with the revision it sends as `ETag`.
pub struct Answer {
    pub response: Response,
    pub revision: Option<u64>,
}

impl Answer {
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        self.revision.map(|revision| ("ETag", etag(revision))).into_iter().collect()
    }
}

/// Answers a request; `body` is the one read when [`reads_body`] said so.
pub fn respond(req: &HttpRequest, body: Option<&[u8]>, trylock: bool, read_only: bool) -> Answer {
    let json = req.wants_json();
    let origin = Requester::of(req, "rest");
    let (result, revision) = match (req.method_name().as_str(), Route::parse(&req.path())) {
        (_, None) => (
            Err(ApiError::not_found(
                "no_route",
                "not found: use GET /list, GET /detail, GET /status, GET /upstream/NAME, POST /upstream/NAME or \
                 DELETE /upstream/NAME",
            )),
            None,
        ),
        ("GET" | "HEAD", Some(route)) => get(&route, json),
        ("POST" | "DELETE", Some(Route::Upstream(name))) if read_only => {
            let e = ApiError::read_only("dyups_read_only");
            log_refusal(&origin, &name, &e);
            (Err(e), None)
        }
        ("DELETE", Some(Route::Upstream(name))) => {
            let deleted = condition(req, &name, &origin)
                .and_then(|condition| delete_upstream(&name, trylock, condition, &origin));
            (deleted.map(|()| Response::text(200, "success")), None)
        }
        ("POST", Some(Route::Upstream(name))) => match body {
            Some(body) => post(req, &name, body, trylock, &origin),
            None => (Err(ApiError::new(500, "internal", "body not read")), None),
        },
        (_, Some(Route::Upstream(name))) => {
            let e = ApiError::new(405, "method_not_allowed", "only GET, POST and DELETE are accepted");
            // Any other method on an upstream asked to change it.
            log_refusal(&origin, &name, &e);
            (Err(e), None)
        }
        // (It said GET, POST and DELETE to a POST of /list: hunt 43.)
        (_, Some(_)) => (
            Err(ApiError::new(
                405,
                "method_not_allowed",
                "only GET is accepted here (POST and DELETE change /upstream/NAME)",
            )),
            None,
        ),
    };
    Answer { response: result.unwrap_or_else(|e| error_response(&e, json)), revision }
}

/// `POST /upstream/NAME`, answered with the new revision if it was
/// conditional (an unconditional one is answered as dyups does).
fn post(
    req: &HttpRequest,
    name: &str,
    body: &[u8],
    trylock: bool,
    origin: &Requester,
) -> (Result<Response, ApiError>, Option<u64>) {
    let is_json_body = req
        .header_in("content-type")
        .is_some_and(|v| v.len() >= 16 && v[..16].eq_ignore_ascii_case(b"application/json"));
    let posted = condition(req, name, origin).and_then(|condition| {
        update_upstream(name, body, is_json_body, trylock, condition, origin)
            .map(|revision| (!matches!(condition, Condition::None)).then_some(revision))
    });
    match posted {
        Ok(revision) => (Ok(Response::text(200, "success")), revision),
        Err(e) => (Err(e), None),
    }
}

/// What a change of `name` is conditional on: `If-Match`, a revision that
/// `GET /upstream/NAME` answered as `ETag` (`*`: none; one the module
/// never gives holds for nothing: 412). `If-None-Match` is refused: the
/// change would not be conditional on it (nginx's not_modified filter,
/// which acts on it after the change, is kept out of every answer).
fn condition(req: &HttpRequest, name: &str, origin: &Requester) -> Result<Condition, ApiError> {
    let refused = |e: ApiError| {
        log_refusal(origin, name, &e);
        Err(e)
    };
    if req.header_in("if-none-match").is_some() {
        return refused(ApiError::bad_request(
            "invalid_precondition",
            "If-None-Match is not supported on changes: use If-Match with the ETag of GET /upstream/NAME (a 404 \
             answers one too)",
        ));
    }
    let Some(value) = req.header_in("if-match") else { return Ok(Condition::None) };
    match IfMatch::parse(&String::from_utf8_lossy(&value)) {
        IfMatch::Any => Ok(Condition::None),
        IfMatch::Revision(revision) => Ok(Condition::Revision(revision)),
        IfMatch::Invalid => refused(revision_mismatch(name)),
    }
}

/// The upstream a POST is about (`-` if none), for the change log.
pub fn upstream_of(req: &HttpRequest) -> String {
    match Route::parse(&req.path()) {
        Some(Route::Upstream(name)) => name,
        _ => "-".into(),
    }
}

/// A GET's answer, with the revision of `/upstream/NAME`, found or not.
fn get(route: &Route, json: bool) -> (Result<Response, ApiError>, Option<u64>) {
    if let Route::Upstream(name) = route {
        if let Err(e) = validate_upstream_name(name) {
            return (Err(e), None);
        }
    }
    Upstream::with_running(|running| match registry() {
        Ok(dyups) => get_with(running, &dyups, route, json),
        Err(e) => (Err(e), None),
    })
}

fn get_with(
    running: &Running<'_>,
    dyups: &Dyups,
    route: &Route,
    json: bool,
) -> (Result<Response, ApiError>, Option<u64>) {
    let section = ReadSection::new(dyups);
    let response = match route {
        Route::Status => status(dyups, json),
        Route::Upstream(name) => return one_upstream(running, dyups, &section, name, json),
        Route::List => {
            let records = dyups.records(&section).1;
            let table = upstream_table(running, &records);
            let names: Vec<String> = table.iter().map(|(name, _)| name.clone()).collect();
            if json {
                json_response(dyups::list_json(&names))
            } else if names.is_empty() {
                Response::text(204, "")
            } else {
                Response::text(200, dyups::list(&names))
            }
        }
        Route::Detail => {
            let records = dyups.records(&section).1;
            let table = upstream_table(running, &records);
            // One copy of the health zone for the whole answer.
            let health = HealthListing::new(HealthZone::running());
            let details: Vec<(String, Vec<PeerView>)> =
                table.iter().map(|(name, source)| (name.clone(), source.peers(name, Some(&health)))).collect();
            if json {
                let upstreams: Vec<UpstreamView> = details
                    .into_iter()
                    .zip(&table)
                    .map(|((upstream, peers), (_, source))| UpstreamView { upstream, zone: source.zone(), peers })
                    .collect();
                json_response(dyups::detail_json(&upstreams))
            } else if details.is_empty() {
                Response::text(204, "")
            } else {
                Response::text(200, dyups::detail(&details))
            }
        }
    };
    (Ok(response), None)
}

/// `GET /upstream/NAME`: one registry lookup, not a copy of the registry.
/// Answered, found or not, with the revision a change conditional on this
/// read must find (`If-Match`): its record's, its zone's (a configuration
/// upstream served from its zone: the NGINX Plus API's ETag of it), or that
/// of the registry when read (no record: it is unchanged while no record
/// of the name is made or deleted, within this cycle).
fn one_upstream(
    running: &Running<'_>,
    dyups: &Dyups,
    section: &ReadSection,
    name: &str,
    json: bool,
) -> (Result<Response, ApiError>, Option<u64>) {
    let not_found = || ApiError::not_found("upstream_not_found", format!("upstream \"{name}\" not found"));
    let config = config_upstream(running, name);
    let (record, version) = dyups.record_read(section, name, cycle_version_floor());
    // A worker a reload replaced sees the old configuration: for a name
    // without a record it answers a revision no change in a new worker
    // matches (their reads start past every version given before the new
    // cycle began; a change made here since may have moved the registry's
    // past that too: review 59).
    let version = if record.is_none() && !dyups.is_current_cycle() { Some(0) } else { version };
    let revision = version.map(runtime_revision);
    let (name, source) = match (&record, config) {
        (Some(r), _) if r.deleted || !r.has_list() => return (Err(not_found()), revision),
        // An upstream of the configuration keeps the configuration's spelling.
        (Some(r), Some((config_name, _))) => (config_name, Source::Shared(r)),
        (Some(r), None) => (r.name.clone(), Source::Shared(r)),
        (None, Some((_, upstream))) if is_front(upstream) => return (Err(not_found()), revision),
        (None, Some((config_name, upstream))) => (config_name, Source::Config(upstream)),
        (None, None) => return (Err(not_found()), revision),
    };
    let revision = source.served_zone().map(|zone| zone.counters().revision()).or(revision);
    let peers = source.peers(&name, None);
    if json {
        let view = UpstreamView { upstream: name, zone: source.zone(), peers };
        return (Ok(json_response(dynamic_upstream_core::render::json_upstream(&view))), revision);
    }
    (Ok(Response::text(200, dyups::upstream_lines(&peers))), revision)
}

/// Where an upstream's peers are.
enum Source<'r> {
    /// A registry record's list (created or replaced through the API).
    Shared(&'r RecordView<'r>),
    /// An upstream of the configuration as configured. Never one that
    /// this worker has made a front (its peer.data is then the front, not a
    /// peer list): a front whose record is gone was deleted by a newer
    /// cycle, and answers 502 (see `dyups_worker::forget_deleted_front`).
    Config(Upstream<'r>),
}

impl<'r> Source<'r> {
    /// The shared memory zone its peers are in, as the NGINX Plus API
    /// names it: a record's list is in the registry's zone; an upstream
    /// of the configuration has its own zone, or none (hunt 29: always
    /// `null`, where the query-string API named the zone).
    fn zone(&self) -> Option<String> {
        match *self {
            Source::Shared(_) => Some(ZONE_NAME.to_string()),
            Source::Config(upstream) => upstream.zone_name(),
        }
    }

    /// The zone of a configuration upstream served from it (none for one
    /// the registry serves, nor for one without a zone).
    fn served_zone(&self) -> Option<ZoneUpstream<'r>> {
        match *self {
            Source::Config(upstream) if !is_front(upstream) => ZoneUpstream::of_running(upstream, |_, _| None).ok(),
            _ => None,
        }
    }

    /// The peers of upstream `name`, with their health if it is checked
    /// (from `health`, the copy of an answer about many upstreams, if
    /// given).
    fn peers(&self, name: &str, health: Option<&HealthListing>) -> Vec<PeerView> {
        match *self {
            Source::Shared(record) => {
                let mut peers = record.peers();
                show_health(health, HealthZone::running(), name, true, record.check().is_some(), &mut peers);
                peers
            }
            Source::Config(upstream) => match self.served_zone() {
                Some(zone) => zone.peers_with_health_in(health),
                None => configured_peers(upstream).unwrap_or_default(),
            },
        }
    }
}

/// Every upstream the API shows: those of the configuration in their order
/// (as replaced, unless deleted), then those created at run time.
fn upstream_table<'r>(running: &Running<'r>, records: &'r [RecordView<'r>]) -> Vec<(String, Source<'r>)> {
    // Lower-case name → record: one pass, then lookups (thousands of
    // upstreams must not cost a search per upstream).
    let by_name: HashMap<String, &RecordView> = records.iter().map(|r| (r.name.to_ascii_lowercase(), r)).collect();
    let mut table = Vec::with_capacity(records.len());
    let mut in_config: HashSet<String> = HashSet::new();
    for &upstream in running.upstreams() {
        let name = upstream.name();
        let key = name.to_ascii_lowercase();
        match by_name.get(&key) {
            Some(r) if r.deleted || !r.has_list() => {}
            Some(r) => table.push((name, Source::Shared(r))),
            None if is_front(upstream) => {}
            None => table.push((name, Source::Config(upstream))),
        }
        in_config.insert(key);
    }
    for r in records {
        if !r.deleted && r.has_list() && !in_config.contains(&r.name.to_ascii_lowercase()) {
            table.push((r.name.clone(), Source::Shared(r)));
        }
    }
    table
}

/// `GET /status`: how full the dyups zone is.
fn status(dyups: &Dyups, json: bool) -> Response {
    let (pages, free_pages) = dyups.pages();
    let usage = dyups::ZoneUsage {
        zone: ZONE_NAME.to_string(),
        size: dyups.zone_size(),
        pages,
        free_pages,
        upstreams: dyups.live_count(),
    };
    if json {
        return json_response(usage.json());
    }
    Response::text(200, usage.text())
}

fn json_response(body: String) -> Response {
    Response { status: 200, content_type: "application/json", body: body.into_bytes() }
}

/// dyups answers errors with the bare reason.
fn error_response(e: &ApiError, json: bool) -> Response {
    if json {
        return Response { status: e.status, content_type: "application/json", body: json_error(e).into_bytes() };
    }
    Response::text(e.status, e.text.clone())
}

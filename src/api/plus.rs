//! The `dynamic_upstream_api` front end: the upstream subset of the NGINX
//! Plus REST API (version 9, also served as 6 to 8).
//!
//! Routes, bodies and JSON shapes are the core crate's
//! ([`dynamic_upstream_core::plus`]); the upstreams it serves are
//! [`crate::ops::plus`]'s. Every change goes through the operations the
//! other front ends use: a zone upstream's POST through
//! [`crate::ops::zone::perform`] (as the query-string API), its PATCH and
//! DELETE through [`crate::ops::zone::perform_by_id`], its PUT through
//! [`crate::ops::zone::replace`]; a run-time upstream's through
//! [`crate::ops::plus::change_runtime`]. So every change is logged
//! (`api=plus`) and saved in the state files, and the other APIs see it at
//! once.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use dynamic_upstream_core::plus::body::{self, ServerFields, Spellings};
use dynamic_upstream_core::plus::route::changed_upstream;
use dynamic_upstream_core::plus::route::{root_endpoints, HTTP_ENDPOINTS};
use dynamic_upstream_core::plus::view::{self, NginxInfo, Processes, UpstreamFields, UpstreamStatus};
use dynamic_upstream_core::plus::{diff, Endpoint, PlusError, Route};
use dynamic_upstream_core::revision::{etag, IfMatch};
use dynamic_upstream_core::{Action, Address, PeerView, ServerSpec};
use ngx::ffi::NGINX_VERSION;

use crate::nginx::http_io::{Handled, HttpRequest, Response};
use crate::nginx::peer_list::Pick;
use crate::nginx::peer_stats::now_ms;
use crate::nginx::process::{pid, ppid};
use crate::nginx::sockaddr::PeerAddress;
use crate::nginx::stub_status::{connections, requests};
use crate::nginx::upstreams::{Running, Upstream};
use crate::ops::change_log::{log_answered_refusal, Requester};
use crate::ops::cycles::{generation, load_ms};
use crate::ops::plus::{all_upstreams_with, change_runtime, find, Listed, Target};
use crate::ops::zone::{perform_by_id, perform_on, replace, IdEdit};

/// Largest request body accepted (a PUT of a few thousand servers).
pub const MAX_BODY: usize = 1024 * 1024;

/// Whether the request changes an upstream (and so has a body to read).
pub fn is_change(req: &HttpRequest) -> bool {
    let route = Route::parse(&req.path_in_location());
    matches!(
        (req.method_name().as_str(), route.as_ref().map(|r| &r.endpoint)),
        ("POST" | "PUT", Ok(Endpoint::Servers(_))) | ("PATCH", Ok(Endpoint::Server(..)))
    )
}

pub fn too_large() -> PlusError {
    PlusError::new(413, "BodyTooLarge", format!("request body larger than {MAX_BODY} bytes"))
}

/// A successful answer: status, JSON body, extra headers.
pub struct Answer {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn ok(body: String) -> Self {
        Self { status: 200, body, headers: Vec::new() }
    }
}

/// Sends the answer, or the error in NGINX Plus's shape.
pub fn send(req: &mut HttpRequest, answer: Result<Answer, PlusError>) -> Handled {
    if let Err(e) = &answer {
        log_if_refused_change(req, e);
    }
    let answer = answer.unwrap_or_else(|e| Answer {
        status: e.status,
        body: e.json(&req.variable("request_id")),
        headers: Vec::new(),
    });
    let response = Response { status: answer.status, content_type: "application/json", body: answer.body.into_bytes() };
    req.send_with_headers(&response, &answer.headers)
}

/// Logs `e` if it refused a change, once, with the status and reason the
/// client gets: every refusal of the Plus API is logged here (the
/// operations' errors are mapped to its statuses, and it refuses paths,
/// bodies and locations of its own: such refusals went unlogged or
/// misstated, hunt 43, review 54). Not PersistFailed, nor UpstreamChanged:
/// the change was made.
fn log_if_refused_change(req: &HttpRequest, e: &PlusError) {
    if matches!(e.code.as_str(), "PersistFailed" | "UpstreamChanged") {
        return;
    }
    let path = req.path_in_location();
    if let Some(upstream) = changed_upstream(&req.method_name(), &path) {
        log_answered_refusal(&Requester::of(req, "plus"), upstream, e.status, &e.text);
    }
}

/// The answer to the request (`body`: the one a change sent).
pub fn respond(req: &HttpRequest, write: bool, trylock: bool, body: Option<&[u8]>) -> Result<Answer, PlusError> {
    Upstream::with_running(|running| respond_with(running, req, write, trylock, body))
}

fn respond_with(
    running: &Running<'_>,
    req: &HttpRequest,
    write: bool,
    trylock: bool,
    body: Option<&[u8]>,
) -> Result<Answer, PlusError> {
    let route = Route::parse(&req.path_in_location())?;
    let method = req.method_name();
    let read = matches!(method.as_str(), "GET" | "HEAD");
    let change = match (&route.endpoint, method.as_str()) {
        (Endpoint::Servers(_), "POST" | "PUT") | (Endpoint::Server(..), "PATCH" | "DELETE") => true,
        _ if read => false,
        _ => return Err(PlusError::method_not_supported()),
    };
    if change && !write {
        return Err(PlusError::method_disabled());
    }
    // Refusals are logged as sent ([`log_if_refused_change`]).
    let origin = &Requester::of(req, "plus").logging_refusals_itself();
    let now_ms = now_ms();
    Ok(match (&route.endpoint, body) {
        (Endpoint::Versions, _) => Answer::ok(view::versions()),
        (Endpoint::Root, _) => Answer::ok(view::names(root_endpoints(route.version))),
        (Endpoint::Http, _) => Answer::ok(view::names(&HTTP_ENDPOINTS)),
        (Endpoint::Empty, _) => Answer::ok("{}".into()),
        (Endpoint::Workers, _) => Answer::ok("[]".into()),
        (Endpoint::Nginx, _) => Answer::ok(view::json(&nginx_info(req, now_ms))),
        (Endpoint::Processes, _) => Answer::ok(view::json(&Processes { respawned: 0 })),
        (Endpoint::Connections, _) => Answer::ok(view::json(&connections())),
        (Endpoint::HttpRequests, _) => Answer::ok(view::json(&requests())),
        (Endpoint::Upstreams, _) => {
            let fields = upstream_fields(req);
            let all = all_upstreams_with(fields.peers());
            let statuses: Vec<UpstreamStatus> = all.iter().map(Listed::status).collect();
            Answer::ok(view::upstreams(&statuses, now_ms, fields))
        }
        (Endpoint::Upstream(name), _) => {
            let fields = upstream_fields(req);
            Answer::ok(view::upstream(&find(running, name)?.listed_with(fields.peers(), None).status(), now_ms, fields))
        }
        (Endpoint::Servers(name), None) if read => servers_answer(&find(running, name)?, None),
        (Endpoint::Server(name, id), None) if read => {
            let listed = find(running, name)?.listed_one(Pick::Id(*id));
            Answer::ok(view::server(peer_by_id(&listed.peers, *id)?))
        }
        (Endpoint::Server(name, id), None) => delete(&find(running, name)?, *id, origin, trylock)?,
        (Endpoint::Servers(name), Some(body)) if method == "POST" => {
            post(&find(running, name)?, body::post(body)?, origin, trylock)?
        }
        (Endpoint::Servers(name), Some(body)) => {
            let target = find(running, name)?;
            let desired = match body::put(body) {
                Err(e) if e.code == "UpstreamBadAddress" => body::put_spelled(body, &spellings(&target, None))?,
                desired => desired?,
            };
            let if_match = if_match(req)?;
            put(&target, desired, if_match, origin, trylock)?
        }
        (Endpoint::Server(name, id), Some(body)) => {
            let target = find(running, name)?;
            let fields = match body::patch(body) {
                Err(e) if e.code == "UpstreamBadAddress" => {
                    body::patch_spelled(body, &spellings(&target, Some(*id)), *id)?
                }
                fields => fields?,
            };
            patch(&target, *id, fields, origin, trylock)?
        }
        (Endpoint::Servers(_), None) => return Err(PlusError::new(400, "BodyReadError", "the request has no body")),
    })
}

/// The fields of an upstream its `?fields=` asks for (all without it).
fn upstream_fields(req: &HttpRequest) -> UpstreamFields {
    UpstreamFields::from_args(&String::from_utf8_lossy(&req.args()))
}

/// `If-Match: "REV"` (None without the header; `*` matches anything).
fn if_match(req: &HttpRequest) -> Result<Option<u64>, PlusError> {
    let Some(value) = req.header_in("if-match") else { return Ok(None) };
    match IfMatch::parse(&String::from_utf8_lossy(&value)) {
        IfMatch::Any => Ok(None),
        IfMatch::Revision(revision) => Ok(Some(revision)),
        IfMatch::Invalid => Err(PlusError::new(
            412,
            "UpstreamRevisionMismatch",
            "If-Match must be a revision the API sent as ETag, e.g. \"12\"",
        )),
    }
}

/// How `target`'s configuration spells its servers where not by their
/// addresses (`server localhost:8080;`, `server NAME resolve;`), as its
/// listings show them; `only`: the server with that ID alone (a PATCH of
/// it names no other's: review 55).
fn spellings(target: &Target, only: Option<u64>) -> Spellings {
    let mut spellings = Spellings::default();
    if let Target::Zone(_) = target {
        for peer in target.listed().peers.into_iter().filter(|p| only.map_or(true, |id| p.stats.id == Some(id))) {
            if peer.resolved_from.is_some() {
                let listed = ServerFields::listed(&peer);
                spellings.add_resolved(peer.server, listed);
            } else if let (true, Ok(address)) = (peer.server != peer.name, Address::parse(&peer.name)) {
                spellings.add(peer.server, peer.stats.id, address);
            }
        }
    }
    spellings
}

fn peer_by_id(peers: &[PeerView], id: u64) -> Result<&PeerView, PlusError> {
    peers.iter().find(|p| p.stats.id == Some(id)).ok_or_else(|| PlusError::server_not_found(id))
}

/// The servers of `target`, with its revision as `ETag`.
fn servers_answer(target: &Target, changed: Option<bool>) -> Answer {
    let listed = target.listed();
    let mut headers = vec![("ETag", etag(listed.revision))];
    if let Some(changed) = changed {
        headers.push(("X-Upstream-Changed", changed.to_string()));
    }
    Answer { status: 200, body: view::servers(&listed.peers), headers }
}

/// The server of `target` now that `pick` picks, as POST (by its
/// address: a POST adds no second server of one address, nor one nginx
/// resolved) and PATCH (by its ID: a peer nginx resolved may have the
/// address of the static server patched, and be listed first; review 29)
/// answer.
fn server_answer(target: &Target, status: u16, pick: Pick<'_>) -> Result<Answer, PlusError> {
    let listed = target.listed_one(pick);
    let peer = listed.peers.first().ok_or_else(|| {
        PlusError::new(
            409,
            "UpstreamChanged",
            "the change was made, then another change removed or changed the server before it could be read back",
        )
    })?;
    Ok(Answer { status, body: view::server(peer), headers: Vec::new() })
}

fn post(target: &Target, spec: ServerSpec, origin: &Requester, trylock: bool) -> Result<Answer, PlusError> {
    // The new peer's name, as nginx spells it (its spelling of an
    // IPv4-compatible IPv6 address is not the parser's: the new server was
    // not found, and a POST that added it answered 409, study 53).
    let name = PeerAddress::new(&spec.address).name().to_vec();
    match target {
        Target::Zone(zone) => {
            perform_on(zone, &Action::Add(spec), origin)?;
        }
        Target::Runtime { name, .. } => change_runtime(name, origin, trylock, None, |servers| {
            if servers.iter().any(|s| s.address == spec.address) {
                return Err(PlusError::new(409, "EntryExists", format!("server {} already exists", spec.address)));
            }
            servers.push(spec.clone());
            Ok(true)
        })?,
    }
    server_answer(target, 201, Pick::Name(&name))
}

fn patch(
    target: &Target,
    id: u64,
    fields: body::ServerFields,
    origin: &Requester,
    trylock: bool,
) -> Result<Answer, PlusError> {
    let listed = target.listed_one(Pick::Id(id));
    let peer = peer_by_id(&listed.peers, id)?;
    let immutable = |what: &str| {
        PlusError::new(
            400,
            "UpstreamServerImmutable",
            format!("the {what} of server {id} cannot be changed: DELETE it and POST a new one"),
        )
    };
    if fields.id.is_some_and(|given| given != id) {
        return Err(immutable("ID"));
    }
    // By nginx's name of the address, as the peer's (not the parser's
    // spelling, `[::102:304]:80` for `[::1.2.3.4]:80`).
    if fields.server.as_ref().is_some_and(|a| PeerAddress::new(a).name() != peer.name.as_bytes()) {
        return Err(immutable("address"));
    }
    if fields.backup.is_some_and(|b| b != peer.backup) {
        return Err(immutable("\"backup\" flag"));
    }
    if !fields.params.is_empty() || fields.down.is_some() {
        match target {
            Target::Zone(zone) => {
                let edit = IdEdit::Update { params: fields.params, down: fields.down };
                perform_by_id(zone, id, &edit, origin)?;
            }
            Target::Runtime { name, .. } => change_runtime(name, origin, trylock, None, |servers| {
                let server =
                    servers.iter_mut().find(|s| s.id == Some(id)).ok_or_else(|| PlusError::server_not_found(id))?;
                *server = server.clone().with_params(&fields.params);
                server.down = fields.down.unwrap_or(server.down);
                Ok(true)
            })?,
        }
    }
    server_answer(target, 200, Pick::Id(id))
}

fn delete(target: &Target, id: u64, origin: &Requester, trylock: bool) -> Result<Answer, PlusError> {
    match target {
        Target::Zone(zone) => perform_by_id(zone, id, &IdEdit::Remove, origin)?,
        Target::Runtime { name, .. } => change_runtime(name, origin, trylock, None, |servers| {
            let before = servers.len();
            servers.retain(|s| s.id != Some(id));
            if servers.len() == before {
                return Err(PlusError::server_not_found(id));
            }
            if servers.iter().all(|s| s.backup) {
                return Err(PlusError::new(
                    400,
                    "UpstreamServerImmutable",
                    format!("server {id} is the last primary server of upstream \"{name}\" and cannot be removed"),
                ));
            }
            Ok(true)
        })?,
    }
    Ok(servers_answer(target, None))
}

fn put(
    target: &Target,
    desired: Vec<ServerSpec>,
    if_match: Option<u64>,
    origin: &Requester,
    trylock: bool,
) -> Result<Answer, PlusError> {
    let changed = match target {
        Target::Zone(zone) => replace(zone, &desired, if_match, origin)?,
        Target::Runtime { name, .. } => {
            let mut changed = false;
            change_runtime(name, origin, trylock, if_match, |servers| {
                let current: Vec<diff::Current> =
                    servers.iter().map(|s| diff::Current { id: s.id.unwrap_or(u64::MAX), spec: s.clone() }).collect();
                changed = !diff::plan(&current, &desired).is_empty();
                *servers = desired.clone();
                Ok(changed)
            })?;
            changed
        }
    };
    Ok(servers_answer(target, Some(changed)))
}

/// `GET /nginx`.
fn nginx_info(req: &HttpRequest, now_ms: u64) -> NginxInfo {
    NginxInfo {
        version: NGINX_VERSION.to_str().unwrap_or("").to_string(),
        build: format!("nginx-dynamic-upstream-{}", env!("CARGO_PKG_VERSION")),
        address: req.variable("server_addr"),
        generation: generation(),
        load_timestamp: view::iso8601(load_ms()),
        timestamp: view::iso8601(now_ms),
        pid: pid(),
        ppid: ppid(),
    }
}

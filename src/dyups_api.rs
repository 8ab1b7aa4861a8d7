//! The `dyups_interface` front end: Tengine dyups' REST API.
//!
//! `GET /list`, `GET /detail`, `GET /upstream/NAME`, `POST /upstream/NAME`
//! (body: `server ...;` statements, or JSON), `DELETE /upstream/NAME`.
//! Bodies and status codes follow dyups: `success` on a change, `add
//! server failed: ...` for a bad body.

use dynamic_upstream_core::dyups::{
    self, parse_body, parse_json_body, validate_upstream_name, BalancerSpec, KeyPart, Route, UpstreamSpec,
};
use dynamic_upstream_core::render::json_error;
use std::collections::{HashMap, HashSet};

use dynamic_upstream_core::render::Change;
use dynamic_upstream_core::{ApiError, PeerView, UpstreamView};
use ngx::ffi::{ngx_http_upstream_rr_peers_t, ngx_http_upstream_srv_conf_t};

use crate::balancer::{configured_upstreams, str_lossy};
use crate::change_log::{log_change, log_refusal, Requester};
use crate::dyups_registry::{Dyups, ReadSection, RecordView};
use crate::dyups_worker::is_front;
use crate::http_io::{HttpRequest, Response};
use crate::state_files::{save_dyups, ChangeGuard};
use crate::zone_peers::list_peers;

/// Largest body accepted by POST.
pub const MAX_BODY: usize = 1024 * 1024;

/// Answers GET, HEAD and DELETE (POST goes through [`respond_post`] once
/// its body is read).
pub fn respond(req: &HttpRequest, trylock: bool, read_only: bool) -> Response {
    let json = req.wants_json();
    let origin = req.requester("rest");
    let result = match (req.method_name().as_str(), Route::parse(&req.path())) {
        (_, None) => Err(ApiError::not_found(
            "no_route",
            "not found: use GET /list, GET /detail, GET /status, GET /upstream/NAME, POST /upstream/NAME or \
             DELETE /upstream/NAME",
        )),
        ("GET" | "HEAD", Some(route)) => get(&route, json),
        ("POST" | "DELETE", Some(Route::Upstream(name))) if read_only => {
            let e = crate::dynamic_api::read_only_error("dyups_read_only");
            log_refusal(&origin, &name, &e);
            Err(e)
        }
        ("DELETE", Some(Route::Upstream(name))) => delete(&name, trylock, &origin),
        ("POST", Some(Route::Upstream(_))) => Err(ApiError::new(500, "internal", "body not read")),
        (_, route) => {
            let e = ApiError::new(405, "method_not_allowed", "only GET, POST and DELETE are accepted");
            // Any other method on an upstream asked to change it.
            if let Some(Route::Upstream(name)) = route {
                log_refusal(&origin, &name, &e);
            }
            Err(e)
        }
    };
    result.unwrap_or_else(|e| error_response(&e, json))
}

/// Whether a POST to this request's path should have its body read.
pub fn accepts_post(req: &HttpRequest) -> bool {
    matches!(Route::parse(&req.path()), Some(Route::Upstream(_)))
}

/// The upstream a POST is about (`-` if none), for the change log.
pub fn upstream_of(req: &HttpRequest) -> String {
    match Route::parse(&req.path()) {
        Some(Route::Upstream(name)) => name,
        _ => "-".into(),
    }
}

/// Answers a POST whose whole body is `body`.
pub fn respond_post(req: &HttpRequest, body: &[u8], trylock: bool) -> Response {
    let json = req.wants_json();
    let Some(Route::Upstream(name)) = Route::parse(&req.path()) else {
        return error_response(&ApiError::not_found("no_route", "not found"), json);
    };
    let is_json_body = req
        .header_in("content-type")
        .is_some_and(|v| v.len() >= 16 && v[..16].eq_ignore_ascii_case(b"application/json"));
    match update_upstream(&name, body, is_json_body, trylock, &req.requester("rest")) {
        Ok(()) => Response::text(200, "success"),
        Err(e) => error_response(&e, json),
    }
}

/// Creates or replaces `name` from a body of `server ...;` statements (or
/// JSON): the operation behind POST, the C API and Lua. Logs the change,
/// or why it was refused.
pub fn update_upstream(
    name: &str,
    body: &[u8],
    is_json: bool,
    trylock: bool,
    origin: &Requester,
) -> Result<(), ApiError> {
    logged(origin, name, replace(name, body, is_json, trylock))
}

/// Deletes `name`: the operation behind DELETE, the C API and Lua.
pub fn delete_upstream(name: &str, trylock: bool, origin: &Requester) -> Result<(), ApiError> {
    logged(origin, name, delete_record(name, trylock).map(|guard| (Change::Delete, guard)))
}

/// Logs `result` (the change made, or the refusal), then saves the state
/// file after a change, still holding the change's guard (a failure to save
/// is logged as that, not as a refused change: the change is live).
fn logged(
    origin: &Requester,
    name: &str,
    result: Result<(Change<'static>, ChangeGuard), ApiError>,
) -> Result<(), ApiError> {
    match result {
        Ok((change, _guard)) => {
            log_change(origin, name, &change);
            save_dyups()
        }
        Err(e) => {
            log_refusal(origin, name, &e);
            Err(e)
        }
    }
}

fn replace(name: &str, body: &[u8], is_json: bool, trylock: bool) -> Result<(Change<'static>, ChangeGuard), ApiError> {
    validate_upstream_name(name)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("invalid_body", "add server failed: body is not UTF-8"))?;
    let spec = if is_json { parse_json_body(text)? } else { parse_body(text)? };
    check_hash_key(&spec)?;
    let dyups = registry()?;
    let guard = ChangeGuard::for_dyups(trylock)?;
    // Until its first replacement, an upstream of the configuration has no
    // record: it had the configuration's servers.
    let config_servers = config_upstream(name)
        .filter(|&(_, uscf)| !is_front(uscf))
        .map(|(_, uscf)| Source::Config(uscf).peers(&ReadSection::new(&dyups)).len());
    let before = dyups.replace(name, &spec, trylock)?.or(config_servers);
    crate::dyups_worker::sync_if_moved();
    Ok((Change::Replace { before, after: spec.servers.len() }, guard))
}

fn delete_record(name: &str, trylock: bool) -> Result<ChangeGuard, ApiError> {
    validate_upstream_name(name)?;
    let dyups = registry()?;
    let guard = ChangeGuard::for_dyups(trylock)?;
    if !dyups.delete(name, in_config(name), trylock)? {
        return Err(ApiError::not_found("upstream_not_found", format!("upstream \"{name}\" not found")));
    }
    crate::dyups_worker::sync_if_moved();
    Ok(guard)
}

/// A hash key may only use variables nginx knows.
fn check_hash_key(spec: &UpstreamSpec) -> Result<(), ApiError> {
    if let BalancerSpec::Hash { key, .. } = &spec.balancer {
        for part in dyups::split_hash_key(key)? {
            if let KeyPart::Variable(var) = part {
                if !crate::variables::variable_exists(&var) {
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

fn delete(name: &str, trylock: bool, origin: &Requester) -> Result<Response, ApiError> {
    delete_upstream(name, trylock, origin).map(|()| Response::text(200, "success"))
}

fn get(route: &Route, json: bool) -> Result<Response, ApiError> {
    if let Route::Upstream(name) = route {
        validate_upstream_name(name)?;
    }
    let dyups = registry()?;
    let section = ReadSection::new(&dyups);
    match route {
        Route::Status => Ok(status(&dyups, json)),
        Route::Upstream(name) => one_upstream(&dyups, &section, name, json),
        Route::List => {
            let table = upstream_table(&dyups.records().1);
            let names: Vec<String> = table.iter().map(|(name, _)| name.clone()).collect();
            if json {
                return Ok(json_response(dyups::list_json(&names)));
            }
            Ok(if names.is_empty() { Response::text(204, "") } else { Response::text(200, dyups::list(&names)) })
        }
        Route::Detail => {
            let table = upstream_table(&dyups.records().1);
            let details: Vec<(String, Vec<PeerView>)> =
                table.iter().map(|(name, source)| (name.clone(), source.peers(&section))).collect();
            if json {
                let upstreams: Vec<UpstreamView> =
                    details.into_iter().map(|(upstream, peers)| UpstreamView { upstream, zone: None, peers }).collect();
                return Ok(json_response(dyups::detail_json(&upstreams)));
            }
            Ok(if details.is_empty() { Response::text(204, "") } else { Response::text(200, dyups::detail(&details)) })
        }
    }
}

/// `GET /upstream/NAME`: one registry lookup, not a copy of the registry.
fn one_upstream(dyups: &Dyups, section: &ReadSection, name: &str, json: bool) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("upstream_not_found", format!("upstream \"{name}\" not found"));
    let config = config_upstream(name);
    let (name, source) = match (dyups.record(name), config) {
        (Some(r), _) if r.deleted || r.peers.is_null() => return Err(not_found()),
        // An upstream of the configuration keeps the configuration's spelling.
        (Some(r), Some((config_name, _))) => (config_name, Source::Shared(r.peers)),
        (Some(r), None) => (r.name, Source::Shared(r.peers)),
        (None, Some((_, uscf))) if is_front(uscf) => return Err(not_found()),
        (None, Some((config_name, uscf))) => (config_name, Source::Config(uscf)),
        (None, None) => return Err(not_found()),
    };
    let peers = source.peers(section);
    if json {
        let view = UpstreamView { upstream: name, zone: None, peers };
        return Ok(json_response(dynamic_upstream_core::render::json_upstream(&view)));
    }
    Ok(Response::text(200, dyups::upstream_lines(&peers)))
}

/// Where an upstream's peers are.
enum Source {
    /// A registry list (created or replaced through the API).
    Shared(*mut ngx_http_upstream_rr_peers_t),
    /// An upstream of the configuration as configured. Never one that
    /// this worker has made a front (its peer.data is then the front, not a
    /// peer list): a front whose record is gone was deleted by a newer
    /// cycle, and answers 502 (see `dyups_worker::forget_deleted_front`).
    Config(*mut ngx_http_upstream_srv_conf_t),
}

impl Source {
    fn peers(&self, section: &ReadSection) -> Vec<PeerView> {
        match *self {
            Source::Shared(list) => section.peers_of(list),
            // SAFETY: configured upstreams' peer lists live as long as the
            // cycle; every built-in balancer keeps the round-robin peers in
            // peer.data.
            Source::Config(uscf) => unsafe {
                let list = (*uscf).peer.data.cast::<ngx_http_upstream_rr_peers_t>();
                if list.is_null() {
                    Vec::new()
                } else {
                    list_peers(list)
                }
            },
        }
    }
}

/// Every upstream the API shows: those of the configuration in their order
/// (as replaced, unless deleted), then those created at run time.
fn upstream_table(records: &[RecordView]) -> Vec<(String, Source)> {
    // Lower-case name → record: one pass, then lookups (thousands of
    // upstreams must not cost a search per upstream).
    let by_name: HashMap<String, &RecordView> = records.iter().map(|r| (r.name.to_ascii_lowercase(), r)).collect();
    let mut table = Vec::with_capacity(records.len());
    let mut in_config: HashSet<String> = HashSet::new();
    // SAFETY: ngx_cycle is the running cycle in a worker.
    for uscf in unsafe { configured_upstreams(ngx::ffi::ngx_cycle) } {
        // SAFETY: configured upstream of the running cycle.
        let name = unsafe { str_lossy(&(*uscf).host) };
        let key = name.to_ascii_lowercase();
        match by_name.get(&key) {
            Some(r) if r.deleted || r.peers.is_null() => {}
            Some(r) => table.push((name, Source::Shared(r.peers))),
            None if is_front(uscf) => {}
            None => table.push((name, Source::Config(uscf))),
        }
        in_config.insert(key);
    }
    for r in records {
        if !r.deleted && !r.peers.is_null() && !in_config.contains(&r.name.to_ascii_lowercase()) {
            table.push((r.name.clone(), Source::Shared(r.peers)));
        }
    }
    table
}

/// `GET /status`: how full the dyups zone is.
fn status(dyups: &Dyups, json: bool) -> Response {
    let (pages, free_pages) = dyups.pages();
    let usage = dyups::ZoneUsage {
        zone: crate::dyups_registry::ZONE_NAME.to_string(),
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

fn in_config(name: &str) -> bool {
    config_upstream(name).is_some()
}

/// The configuration's upstream `name` (any case), with its own spelling.
fn config_upstream(name: &str) -> Option<(String, *mut ngx_http_upstream_srv_conf_t)> {
    // SAFETY: ngx_cycle is the running cycle in a worker.
    unsafe { configured_upstreams(ngx::ffi::ngx_cycle) }
        .into_iter()
        // SAFETY: configured upstream of the running cycle.
        .map(|u| (unsafe { str_lossy(&(*u).host) }, u))
        .find(|(host, _)| host.eq_ignore_ascii_case(name))
}

fn registry() -> Result<Dyups, ApiError> {
    Dyups::get().ok_or_else(|| ApiError::new(500, "no_zone", "the dyups zone is not available"))
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

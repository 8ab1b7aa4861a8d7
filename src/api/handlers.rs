//! Content handlers of the admin locations: safe [`RequestHandler`]s (and
//! [`BodyHandler`]s for the APIs that read a body); the functions nginx
//! calls are [`content_handler`]'s, the wrapper layer's.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use dynamic_upstream_core::health::status_page::StatusFormat;
use dynamic_upstream_core::plus::PlusError;
use dynamic_upstream_core::ApiError;

use crate::api::{check_status, metrics, plus, query, rest};
use crate::nginx::conf::LocConf;
use crate::nginx::http_io::{BodyError, BodyHandler, Handled, HttpRequest, RequestHandler, Response};
use crate::ops::change_log::{log_refusal, Requester};

// The handlers the directives install: `DirectiveCall::set_location_handler::<H>`
// makes the location's `clcf->handler` `content_handler::<H>`, which nginx
// calls with the live request and which runs `H::handle` inside the panic
// barrier.

/// The query-string API.
pub struct QueryApi;

impl RequestHandler for QueryApi {
    fn handle(req: &mut HttpRequest) -> Handled {
        if let Err(rc) = req.discard_body() {
            return rc;
        }
        let read_only = flag(req, |c| c.dynamic_read_only);
        let response = query::respond(req, read_only);
        req.send(&response)
    }
}

/// The REST API.
pub struct RestApi;

impl RequestHandler for RestApi {
    fn handle(req: &mut HttpRequest) -> Handled {
        let read_only = dyups_read_only(req);
        if rest::reads_body(req, read_only) {
            if req.content_length().is_some_and(|n| n > rest::MAX_BODY as u64) {
                return too_large(req);
            }
            return req.read_body::<Self>();
        }
        if let Err(rc) = req.discard_body() {
            return rc;
        }
        let answer = rest::respond(req, None, trylock(req), read_only);
        req.send_with_headers(&answer.response, &answer.headers())
    }
}

/// Called once a POST's body has been read.
impl BodyHandler for RestApi {
    fn body_ready(req: &mut HttpRequest) -> Handled {
        match req.body(rest::MAX_BODY) {
            Ok(body) => {
                let answer = rest::respond(req, Some(&body), trylock(req), dyups_read_only(req));
                req.send_with_headers(&answer.response, &answer.headers())
            }
            Err(BodyError::TooLarge) => too_large(req),
            Err(BodyError::Unreadable) => req.send(&Response::text(500, "could not read the request body")),
        }
    }
}

/// The NGINX Plus API.
pub struct PlusApi;

impl RequestHandler for PlusApi {
    fn handle(req: &mut HttpRequest) -> Handled {
        let write = flag(req, |c| c.plus_write);
        if write && plus::is_change(req) {
            if req.content_length().is_some_and(|n| n > plus::MAX_BODY as u64) {
                let _ = req.discard_body();
                return plus::send(req, Err(plus::too_large()));
            }
            return req.read_body::<Self>();
        }
        if let Err(rc) = req.discard_body() {
            return rc;
        }
        let answer = plus::respond(req, write, trylock(req), None);
        plus::send(req, answer)
    }
}

/// Called once a POST, PATCH or PUT body has been read.
impl BodyHandler for PlusApi {
    fn body_ready(req: &mut HttpRequest) -> Handled {
        let answer = match req.body(plus::MAX_BODY) {
            Ok(body) => plus::respond(req, true, trylock(req), Some(&body)),
            Err(BodyError::TooLarge) => Err(plus::too_large()),
            Err(BodyError::Unreadable) => Err(PlusError::new(400, "BodyReadError", "reading the request body failed")),
        };
        plus::send(req, answer)
    }
}

/// The Prometheus page.
pub struct MetricsPage;

impl RequestHandler for MetricsPage {
    fn handle(req: &mut HttpRequest) -> Handled {
        if let Err(rc) = req.discard_body() {
            return rc;
        }
        let response = metrics::respond(req);
        req.send(&response)
    }
}

/// The health checks' status page.
pub struct CheckStatusPage;

impl RequestHandler for CheckStatusPage {
    fn handle(req: &mut HttpRequest) -> Handled {
        if let Err(rc) = req.discard_body() {
            return rc;
        }
        let format = req.loc_conf().map_or(StatusFormat::Html, |c| c.check_status);
        let response = check_status::respond(req, format);
        req.send(&response)
    }
}

fn too_large(req: &mut HttpRequest) -> Handled {
    let _ = req.discard_body();
    let e = ApiError::new(413, "too_large", format!("request body larger than {} bytes", rest::MAX_BODY));
    log_refusal(&Requester::of(req, "rest"), &rest::upstream_of(req), &e);
    req.send(&Response::text(e.status, e.text))
}

/// A flag of the location's configuration (`..._read_only`).
fn flag(req: &HttpRequest, flag: impl Fn(&LocConf) -> ngx::ffi::ngx_flag_t) -> bool {
    req.loc_conf().is_some_and(|c| flag(c) == 1)
}

fn dyups_read_only(req: &HttpRequest) -> bool {
    flag(req, |c| c.dyups_read_only)
}

/// `dyups_trylock` of the request's http block.
fn trylock(req: &HttpRequest) -> bool {
    req.main_conf().is_some_and(|c| c.trylock == 1)
}

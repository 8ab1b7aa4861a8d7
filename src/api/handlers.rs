//! Content handlers of the admin locations.

use dynamic_upstream_core::health::status_page::StatusFormat;
use dynamic_upstream_core::plus::PlusError;
use dynamic_upstream_core::ApiError;
use ngx::ffi::{ngx_http_finalize_request, ngx_http_request_t, ngx_int_t};

use crate::api::{check_status, metrics, plus, query, rest};
use crate::nginx::conf::{loc_conf, main_conf, LocConf};
use crate::nginx::entry::request_guard;
use crate::nginx::http_io::{BodyError, HttpRequest, Response};
use crate::ops::change_log::{log_refusal, Requester};

/// The signature nginx expects of a location's content handler.
pub type ContentHandler = unsafe extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t;

/// `location ... { dynamic_upstream; }`: the query-string API.
pub unsafe extern "C" fn dynamic_upstream_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    request_guard(|| {
        if let Err(rc) = req.discard_body() {
            return rc;
        }
        let response = query::respond(&mut req, flag(r, |c| c.dynamic_read_only));
        req.send(&response)
    })
}

/// `location ... { dyups_interface; }`: the REST API.
pub unsafe extern "C" fn dyups_interface_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    request_guard(|| {
        let read_only = dyups_read_only(r);
        if rest::reads_body(&req, read_only) {
            if req.content_length().is_some_and(|n| n > rest::MAX_BODY as u64) {
                return too_large(&mut req);
            }
            return req.read_body(dyups_body_ready);
        }
        if let Err(rc) = req.discard_body() {
            return rc;
        }
        let response = rest::respond(&req, None, trylock(r), read_only);
        req.send(&response)
    })
}

/// Called by nginx once a POST's body has been read.
unsafe extern "C" fn dyups_body_ready(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls the body handler with the live request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    let rc = request_guard(|| match req.body(rest::MAX_BODY) {
        Ok(body) => {
            let response = rest::respond(&req, Some(&body), trylock(r), dyups_read_only(r));
            req.send(&response)
        }
        Err(BodyError::TooLarge) => too_large(&mut req),
        Err(BodyError::Unreadable) => req.send(&Response::text(500, "could not read the request body")),
    });
    // SAFETY: the body handler must finalize the request itself.
    unsafe { ngx_http_finalize_request(r, rc) };
}

/// `location ... { dynamic_upstream_api [write=on]; }`: the NGINX Plus API.
pub unsafe extern "C" fn plus_api_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    request_guard(|| {
        let write = flag(r, |c| c.plus_write);
        if write && plus::is_change(&req) {
            if req.content_length().is_some_and(|n| n > plus::MAX_BODY as u64) {
                let _ = req.discard_body();
                return plus::send(&mut req, Err(plus::too_large()));
            }
            return req.read_body(plus_body_ready);
        }
        if let Err(rc) = req.discard_body() {
            return rc;
        }
        let answer = plus::respond(&req, write, trylock(r), None);
        plus::send(&mut req, answer)
    })
}

/// Called by nginx once a POST, PATCH or PUT body has been read.
unsafe extern "C" fn plus_body_ready(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls the body handler with the live request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    let rc = request_guard(|| {
        let answer = match req.body(plus::MAX_BODY) {
            Ok(body) => plus::respond(&req, true, trylock(r), Some(&body)),
            Err(BodyError::TooLarge) => Err(plus::too_large()),
            Err(BodyError::Unreadable) => Err(PlusError::new(400, "BodyReadError", "reading the request body failed")),
        };
        plus::send(&mut req, answer)
    });
    // SAFETY: the body handler must finalize the request itself.
    unsafe { ngx_http_finalize_request(r, rc) };
}

/// `location ... { dynamic_upstream_metrics; }`: the Prometheus page.
pub unsafe extern "C" fn metrics_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    request_guard(|| {
        if let Err(rc) = req.discard_body() {
            return rc;
        }
        let response = metrics::respond(&req);
        req.send(&response)
    })
}

/// `location ... { check_status [html|csv|json]; }`: the health checks'
/// status page.
pub unsafe extern "C" fn check_status_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    request_guard(|| {
        if let Err(rc) = req.discard_body() {
            return rc;
        }
        // SAFETY: r is the live request.
        let format = unsafe { loc_conf(r) }.map_or(StatusFormat::Html, |c| c.check_status);
        let response = check_status::respond(&req, format);
        req.send(&response)
    })
}

fn too_large(req: &mut HttpRequest) -> ngx_int_t {
    let _ = req.discard_body();
    let e = ApiError::new(413, "too_large", format!("request body larger than {} bytes", rest::MAX_BODY));
    log_refusal(&Requester::of(req, "rest"), &rest::upstream_of(req), &e);
    req.send(&Response::text(e.status, e.text))
}

/// A flag of the location's configuration (`..._read_only`).
fn flag(r: *mut ngx_http_request_t, flag: impl Fn(&LocConf) -> ngx::ffi::ngx_flag_t) -> bool {
    // SAFETY: r is the live request.
    unsafe { loc_conf(r) }.is_some_and(|c| flag(c) == 1)
}

fn dyups_read_only(r: *mut ngx_http_request_t) -> bool {
    flag(r, |c| c.dyups_read_only)
}

/// `dyups_trylock` of the request's http block.
fn trylock(r: *mut ngx_http_request_t) -> bool {
    // SAFETY: r is the live request.
    unsafe { main_conf(r) }.is_some_and(|c| c.trylock == 1)
}

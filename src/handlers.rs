//! Content handlers of the admin locations.

use dynamic_upstream_core::ApiError;
use ngx::ffi::{ngx_http_finalize_request, ngx_http_request_t, ngx_int_t};

use crate::dyups_api;
use crate::entry::request_guard;
use crate::http_io::{BodyError, HttpRequest, Response};

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
        let response = crate::dynamic_api::respond(&mut req, loc_conf(r, |c| c.dynamic_read_only));
        req.send(&response)
    })
}

/// `location ... { dyups_interface; }`: the REST API.
pub unsafe extern "C" fn dyups_interface_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    request_guard(|| {
        let read_only = loc_conf(r, |c| c.dyups_read_only);
        if req.method_name() == "POST" && dyups_api::accepts_post(&req) && !read_only {
            if req.content_length().is_some_and(|n| n > dyups_api::MAX_BODY as u64) {
                return too_large(&mut req);
            }
            return req.read_body(dyups_body_ready);
        }
        if let Err(rc) = req.discard_body() {
            return rc;
        }
        let response = dyups_api::respond(&req, trylock(r), read_only);
        req.send(&response)
    })
}

/// Called by nginx once a POST's body has been read.
unsafe extern "C" fn dyups_body_ready(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls the body handler with the live request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    let rc = request_guard(|| match req.body(dyups_api::MAX_BODY) {
        Ok(body) => {
            let response = dyups_api::respond_post(&req, &body, trylock(r));
            req.send(&response)
        }
        Err(BodyError::TooLarge) => too_large(&mut req),
        Err(BodyError::Unreadable) => req.send(&Response::text(500, "could not read the request body")),
    });
    // SAFETY: the body handler must finalize the request itself.
    unsafe { ngx_http_finalize_request(r, rc) };
}

fn too_large(req: &mut HttpRequest) -> ngx_int_t {
    let _ = req.discard_body();
    let e = ApiError::new(413, "too_large", format!("request body larger than {} bytes", dyups_api::MAX_BODY));
    crate::change_log::log_refusal(&req.requester("rest"), &dyups_api::upstream_of(req), &e);
    req.send(&Response::text(e.status, e.text))
}

/// A flag of the location's configuration (`..._read_only`).
fn loc_conf(r: *mut ngx_http_request_t, flag: impl Fn(&crate::LocConf) -> ngx::ffi::ngx_flag_t) -> bool {
    use ngx::http::HttpModuleLocationConf;
    // SAFETY: r is the live request.
    unsafe { crate::Module::location_conf(&*r) }.is_some_and(|c| flag(c) == 1)
}

/// `dyups_trylock` of the request's http block.
fn trylock(r: *mut ngx_http_request_t) -> bool {
    use ngx::http::HttpModuleMainConf;
    // SAFETY: r is the live request.
    unsafe { crate::Module::main_conf(&*r) }.is_some_and(|c| c.trylock == 1)
}

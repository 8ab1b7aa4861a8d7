//! Content handlers of the admin locations.

use ngx::ffi::{ngx_http_request_t, ngx_int_t};

use crate::entry::request_guard;
use crate::http_io::{HttpRequest, Response};

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
        let response = crate::dynamic_api::respond(&mut req);
        req.send(&response)
    })
}

/// `location ... { dyups_interface; }`: the REST API.
pub unsafe extern "C" fn dyups_interface_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls content handlers with the live request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    request_guard(|| not_implemented(&mut req, "the dyups_interface API (issue #3)"))
}

/// Answers 501 naming the work that will implement the location.
fn not_implemented(req: &mut HttpRequest, what: &str) -> ngx_int_t {
    if let Err(rc) = req.discard_body() {
        return rc;
    }
    req.send(&Response::text(501, format!("501 Not Implemented: {what} is not built yet\n")))
}

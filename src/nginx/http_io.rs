//! Request input and response output: the only place handlers touch
//! `ngx_http_request_t` directly. A content handler is a safe
//! [`RequestHandler`] (and, to read a body, [`BodyHandler`]);
//! [`content_handler`] makes the function nginx calls from it.

#![allow(clippy::disallowed_types)] // the wrapper layer: nginx's own structs (see clippy.toml)

use core::ptr;

use dynamic_upstream_core::render::Origin;

use crate::nginx::conf::{LocConf, MainConf};
use crate::nginx::entry::request_guard;
use crate::nginx::log::Log;
use crate::nginx::upstreams::str_lossy;

use ngx::ffi::{
    add_to_ngx_table, ngx_buf_t, ngx_chain_t, ngx_http_discard_request_body, ngx_http_finalize_request,
    ngx_http_output_filter, ngx_http_read_client_request_body, ngx_http_request_t, ngx_http_send_header, ngx_int_t,
    ngx_list_push, ngx_pcalloc, ngx_pnalloc, ngx_read_file, ngx_table_elt_t, off_t, NGINX_VERSION, NGX_DONE, NGX_ERROR,
    NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_SPECIAL_RESPONSE, NGX_OK,
};

/// `0.1.0 (nginx 1.22.1)`: this module's version and the nginx it was
/// built for, sent as `X-Dynamic-Upstream` with every API answer.
fn version() -> String {
    format!("{} (nginx {})", env!("CARGO_PKG_VERSION"), NGINX_VERSION.to_str().unwrap_or("?"))
}

/// Why a request body was not accepted.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Unreadable,
}

/// A complete response, built by a front end before anything is sent.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self { status, content_type: "text/plain", body: body.into() }
    }
}

/// The signature nginx expects of a location's content handler
/// (`clcf->handler`).
/// What a handler hands back to nginx: a code nginx itself returned for
/// the request (sending the answer, discarding the body) or the one
/// [`HttpRequest::read_body`] returns (`NGX_DONE` once nginx holds the
/// request for the body). Only this file makes one, so a handler returns
/// what its request's calls gave it, not a code of its own making. (A
/// guard against mistakes: nginx's finalization copes with the codes any
/// C module's handler may return, and the reference count only matters
/// for `NGX_DONE`, which this file returns itself only from `read_body`.)
#[must_use]
pub struct Handled(ngx_int_t);

/// A location's content handler, in safe Rust: [`content_handler::<H>`]
/// is the function nginx calls.
pub trait RequestHandler {
    /// Handles the request; returns what the content handler returns to
    /// nginx (from [`HttpRequest::send`], [`HttpRequest::read_body`] or
    /// [`HttpRequest::discard_body`]).
    fn handle(req: &mut HttpRequest) -> Handled;
}

/// What runs once the body [`HttpRequest::read_body::<H>`] started reading
/// is complete.
pub trait BodyHandler {
    /// Answers the request whose body has been read (see
    /// [`HttpRequest::body`]); returns the code the request is finalized
    /// with (from [`HttpRequest::send`]).
    fn body_ready(req: &mut HttpRequest) -> Handled;
}

/// The content handler nginx calls for a location whose handler is `H`:
/// wraps the request and runs `H::handle` inside the panic barrier (a
/// panic answers 500).
///
/// # Safety
/// For nginx only: `r` must be the live request of a content phase (set it
/// as a location's `clcf->handler`).
pub(in crate::nginx) unsafe extern "C" fn content_handler<H: RequestHandler>(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: per the contract, nginx calls content handlers with the live
    // request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    request_guard(|| H::handle(&mut req).0)
}

/// The body handler [`HttpRequest::read_body::<H>`] gives nginx: runs
/// `H::body_ready` inside the panic barrier, then finalizes the request
/// with its code (a body handler must finalize the request itself).
///
/// # Safety
/// For nginx only, as an `ngx_http_client_body_handler_pt`: `r` is the live
/// request whose body has been read.
unsafe extern "C" fn body_ready<H: BodyHandler>(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls the body handler with the live request.
    let mut req = unsafe { HttpRequest::from_raw(r) };
    let rc = request_guard(|| H::body_ready(&mut req).0);
    // SAFETY: r is the live request; the body handler must finalize it
    // itself (this drops the reference read_body's reader took).
    unsafe { ngx_http_finalize_request(r, rc) };
}

/// A request being handled; wraps the raw pointer nginx hands to a content
/// handler, valid for the duration of that call. Only [`content_handler`]
/// and the body handler of [`read_body`](Self::read_body) make one, and
/// lend it to the handler for that call: safe code can neither make one
/// nor keep it past the call.
pub struct HttpRequest {
    r: *mut ngx_http_request_t,
}

impl HttpRequest {
    /// # Safety
    /// `r` must be the live request nginx passed to the current handler,
    /// and the value must not outlive that call.
    unsafe fn from_raw(r: *mut ngx_http_request_t) -> Self {
        Self { r }
    }

    /// This module's settings for the request's location.
    pub fn loc_conf(&self) -> Option<&LocConf> {
        #[allow(clippy::disallowed_methods)] // borrowed through self: see clippy.toml
        // SAFETY: self.r is the live request; its location's configuration
        // lives as long as the cycle, beyond the request; lent for &self.
        unsafe {
            <crate::Module as ngx::http::HttpModuleLocationConf>::location_conf(&*self.r)
        }
    }

    /// This module's settings for the request's http block.
    pub fn main_conf(&self) -> Option<&MainConf> {
        #[allow(clippy::disallowed_methods)] // borrowed through self: see clippy.toml
        // SAFETY: as in loc_conf.
        unsafe {
            <crate::Module as ngx::http::HttpModuleMainConf>::main_conf(&*self.r)
        }
    }

    /// The raw query string (still percent-encoded).
    pub fn args(&self) -> Vec<u8> {
        // SAFETY: self.r is live; args points into the request's buffers.
        unsafe {
            let args = &(*self.r).args;
            if args.len == 0 || args.data.is_null() {
                return Vec::new();
            }
            core::slice::from_raw_parts(args.data, args.len).to_vec()
        }
    }

    /// Who sends this request, for the change log: the client address and
    /// `$remote_user`, if set.
    pub fn origin(&self, api: &'static str) -> Origin {
        // SAFETY: self.r is live, and so is its connection; the user was
        // set by auth_basic's access check or a `$remote_user` evaluated
        // before the content handler.
        unsafe {
            let r = &*self.r;
            let text = |s: &ngx::ffi::ngx_str_t| (s.len > 0).then(|| str_lossy(s));
            Origin {
                api,
                client: r.connection.as_ref().and_then(|c| text(&c.addr_text)),
                user: text(&r.headers_in.user),
            }
        }
    }

    /// The request's connection log (the location's `error_log`).
    pub fn log(&self) -> Log {
        // SAFETY: self.r is live, and so are its connection and the
        // connection's log for as long as the handler runs.
        unsafe { Log::from_raw((*self.r).connection.as_ref().map_or(ptr::null_mut(), |c| c.log)) }
    }

    /// The request method, e.g. `GET`.
    pub fn method_name(&self) -> String {
        // SAFETY: self.r is live; method_name points into its buffers.
        unsafe { str_lossy(&(*self.r).method_name) }
    }

    /// The decoded, normalised path (`r->uri`).
    pub fn path(&self) -> String {
        // SAFETY: self.r is live.
        unsafe { str_lossy(&(*self.r).uri) }
    }

    /// `Content-Length`, if the client sent one.
    pub fn content_length(&self) -> Option<u64> {
        // SAFETY: self.r is live.
        let n = unsafe { (*self.r).headers_in.content_length_n };
        u64::try_from(n).ok()
    }

    /// Starts reading the request body; once it is complete, nginx calls
    /// `H::body_ready` with the request (maybe before this returns), then
    /// the request is finalized with its code. Returns what the content
    /// handler returns.
    pub fn read_body<H: BodyHandler>(&mut self) -> Handled {
        // SAFETY: self.r is live; the reader keeps the request alive (it
        // increments r->main->count) until body_ready finalizes it; nginx
        // calls body_ready::<H> with the request (at once if the body was
        // already read or discarded, or for a subrequest).
        let rc = unsafe { ngx_http_read_client_request_body(self.r, Some(body_ready::<H>)) };
        if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
            return Handled(rc);
        }
        Handled(NGX_DONE as ngx_int_t)
    }

    /// The request body read by [`read_body`](Self::read_body), from memory
    /// or nginx's temporary file; Err if it exceeds `max` bytes or cannot
    /// be read.
    pub fn body(&self, max: usize) -> Result<Vec<u8>, BodyError> {
        let mut body = Vec::new();
        // SAFETY: self.r is live and its body has been read; each buffer
        // is either memory (pos..last) or a file range (file_pos..file_last).
        unsafe {
            let rb = (*self.r).request_body;
            if rb.is_null() {
                return Ok(body);
            }
            let mut chain = (*rb).bufs;
            while !chain.is_null() {
                let b = &*(*chain).buf;
                if b.in_file() != 0 && !b.file.is_null() {
                    let len = usize::try_from(b.file_last - b.file_pos).map_err(|_| BodyError::Unreadable)?;
                    if body.len() + len > max {
                        return Err(BodyError::TooLarge);
                    }
                    let start = body.len();
                    body.resize(start + len, 0);
                    let n = ngx_read_file(b.file, body.as_mut_ptr().add(start), len, b.file_pos);
                    if n != len as isize {
                        return Err(BodyError::Unreadable);
                    }
                } else if !b.pos.is_null() {
                    let len = b.last.offset_from(b.pos) as usize;
                    if body.len() + len > max {
                        return Err(BodyError::TooLarge);
                    }
                    body.extend_from_slice(core::slice::from_raw_parts(b.pos, len));
                }
                chain = (*chain).next;
            }
        }
        Ok(body)
    }

    /// JSON when asked by `format=json` or an `Accept` header that
    /// prefers `application/json` to `text/plain` (an explicit
    /// `format=text` wins over the header).
    pub fn wants_json(&self) -> bool {
        let args = self.args();
        let format = args
            .split(|&b| b == b'&')
            .find_map(|pair| pair.get(..7).filter(|k| k.eq_ignore_ascii_case(b"format=")).map(|_| &pair[7..]));
        match format {
            Some(b"json") => true,
            Some(_) => false,
            None => self.header_in("accept").is_some_and(|v| dynamic_upstream_core::accept::prefers_json(&v)),
        }
    }

    pub fn is_get_or_head(&self) -> bool {
        // SAFETY: self.r is live.
        let method = unsafe { (*self.r).method } as u32;
        method & (NGX_HTTP_GET | NGX_HTTP_HEAD) != 0
    }

    /// The value of the first request header called `name` (any case).
    pub fn header_in(&self, name: &str) -> Option<Vec<u8>> {
        // SAFETY: self.r is live; the headers list belongs to it.
        let request = unsafe { ngx::http::Request::from_ngx_http_request(self.r) };
        request
            .headers_in_iterator()
            .find(|(key, _)| key.as_bytes().eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value.as_bytes().to_vec())
    }

    /// Reads and throws away any request body (GET, HEAD, DELETE).
    pub fn discard_body(&mut self) -> Result<(), Handled> {
        // SAFETY: self.r is the live request (see from_raw).
        let rc = unsafe { ngx_http_discard_request_body(self.r) };
        if rc == NGX_OK as ngx_int_t {
            Ok(())
        } else {
            Err(Handled(rc))
        }
    }

    /// The path after the location's prefix (the whole path in a regular
    /// expression location).
    pub fn path_in_location(&self) -> String {
        use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
        let path = self.path();
        #[allow(clippy::disallowed_methods)] // read within the call: see clippy.toml
        // SAFETY: self.r is live; its location's core conf and name live as
        // long as the configuration.
        let prefix = unsafe { NgxHttpCoreModule::location_conf(&*self.r) }
            .filter(|clcf| clcf.regex.is_null())
            // SAFETY: as above.
            .map(|clcf| str_lossy(&clcf.name))
            .unwrap_or_default();
        path.strip_prefix(&prefix).unwrap_or(&path).to_string()
    }

    /// The value of nginx variable `name` for this request ("" if none).
    pub fn variable(&self, name: &str) -> String {
        let key = [dynamic_upstream_core::dyups::KeyPart::Variable(name.to_string())];
        // SAFETY: self.r is live; the value lives in its pool.
        unsafe { crate::nginx::variables::evaluate_key(self.r, &key).map(|v| str_lossy(&v)) }.unwrap_or_default()
    }

    /// Sends `response` as the whole answer; returns what the content
    /// handler should return to nginx.
    pub fn send(&mut self, response: &Response) -> Handled {
        Handled(self.send_answer(response, &[]))
    }

    /// [`send`](Self::send) with more response headers.
    pub fn send_with_headers(&mut self, response: &Response, headers: &[(&str, String)]) -> Handled {
        Handled(self.send_answer(response, headers))
    }

    /// nginx's not_modified filter is kept out of every answer: it answered
    /// 412 or 304 to a change already made when the request carried
    /// `If-Match`, `If-None-Match` or `If-Unmodified-Since` (study 54); the
    /// answers are no stored representations, and the NGINX Plus API reads
    /// `If-Match` itself.
    fn send_answer(&mut self, response: &Response, headers: &[(&str, String)]) -> ngx_int_t {
        // SAFETY: self.r is the live request; every pointer stored into it
        // points into the request pool or static data, so it outlives the
        // request's use of it (each header's element is pushed onto the
        // request's own headers_out list, its strings copied into the
        // pool).
        unsafe {
            let r = &mut *self.r;
            r.headers_out.status = response.status.into();
            r.headers_out.content_length_n = response.body.len() as off_t;
            r.headers_out.content_type.len = response.content_type.len();
            r.headers_out.content_type.data = response.content_type.as_ptr().cast_mut();
            r.headers_out.content_type_len = response.content_type.len();
            r.headers_out.content_type_lowcase = ptr::null_mut();
            r.set_disable_not_modified(1);
            let version = [("X-Dynamic-Upstream", version())];
            for (name, value) in version.iter().chain(headers) {
                let header = ngx_list_push(&mut r.headers_out.headers).cast::<ngx_table_elt_t>();
                if header.is_null() {
                    return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
                }
                if add_to_ngx_table(header, r.pool, name, value).is_none() {
                    (*header).hash = 0; // half filled: nginx skips it
                    return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
                }
            }

            let rc = ngx_http_send_header(r);
            if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || r.header_only() != 0 {
                return rc;
            }
            if response.body.is_empty() {
                // An empty last buffer ends the response.
                return self.output(ptr::null_mut(), 0);
            }
            let data = ngx_pnalloc(r.pool, response.body.len()).cast::<u8>();
            if data.is_null() {
                return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
            }
            ptr::copy_nonoverlapping(response.body.as_ptr(), data, response.body.len());
            self.output(data, response.body.len())
        }
    }

    /// Passes one last buffer holding `len` bytes at `data` (pool memory) to
    /// the output filters.
    ///
    /// # Safety
    /// `data` must point to `len` bytes in the request pool (or be null with
    /// `len == 0`).
    unsafe fn output(&mut self, data: *mut u8, len: usize) -> ngx_int_t {
        // SAFETY: self.r is live; the buffer is zeroed pool memory.
        unsafe {
            let r = &mut *self.r;
            let buf = ngx_pcalloc(r.pool, core::mem::size_of::<ngx_buf_t>()).cast::<ngx_buf_t>();
            if buf.is_null() {
                return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
            }
            let b = &mut *buf;
            b.start = data;
            b.pos = data;
            b.last = data.add(len);
            b.end = data.add(len);
            if len > 0 {
                b.set_memory(1);
            }
            b.set_last_buf(if r.main == self.r { 1 } else { 0 });
            b.set_last_in_chain(1);
            let mut chain = ngx_chain_t { buf, next: ptr::null_mut() };
            ngx_http_output_filter(r, &mut chain)
        }
    }
}

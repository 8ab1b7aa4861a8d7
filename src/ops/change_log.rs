//! The change log: one line per accepted change (`warn`) and per refused
//! one (`info`), written to the log of the request that asked for it (the
//! location's `error_log`), or the cycle's for changes made outside a
//! request. Shared by every front end.

use dynamic_upstream_core::render::{change_line, refusal_line, Change, Origin};
use dynamic_upstream_core::ApiError;
use ngx::ffi::{NGX_LOG_INFO, NGX_LOG_WARN};

use crate::nginx::http_io::HttpRequest;
use crate::nginx::log::Log;

/// Who asked for a change, and the log its line goes to.
pub struct Requester {
    origin: Origin,
    log: Log,
    /// The front end logs its refusals itself ([`log_answered_refusal`]),
    /// with the status it answers: [`log_refusal`] leaves them to it.
    front_end_logs_refusals: bool,
}

impl Requester {
    pub fn new(origin: Origin, log: Log) -> Self {
        Self { origin, log, front_end_logs_refusals: false }
    }

    /// For a front end that answers other statuses than the operations'
    /// errors carry (the NGINX Plus API: 409 `EntryExists` for a 400), and
    /// refuses changes of its own (a body it does not take): it logs every
    /// refusal itself, once, as answered.
    pub fn logging_refusals_itself(self) -> Self {
        Self { front_end_logs_refusals: true, ..self }
    }

    /// The client of an HTTP request (address and `$remote_user`, if set);
    /// its lines go to the request's connection log.
    pub fn of(req: &HttpRequest, api: &'static str) -> Self {
        Self::new(req.origin(api), req.log())
    }

    /// A change made outside any request (the C API): no client, the
    /// cycle's log.
    pub fn internal(api: &'static str) -> Self {
        Self::new(Origin::internal(api), Log::cycle())
    }
}

/// Logs an accepted change at `warn` (not `error`: a change is not a
/// fault; Debian's `error_log` without a level shows `error` and above).
pub fn log_change(by: &Requester, upstream: &str, change: &Change) {
    by.log.write_plain(NGX_LOG_WARN, &change_line(&by.origin, upstream, change));
}

/// Logs why a change was refused, at `info` (unless the front end logs
/// its refusals itself).
pub fn log_refusal(by: &Requester, upstream: &str, e: &ApiError) {
    if !by.front_end_logs_refusals {
        log_answered_refusal(by, upstream, e.status, &e.text);
    }
}

/// Logs a refused change at `info` with the status and reason the client
/// got.
pub fn log_answered_refusal(by: &Requester, upstream: &str, status: u16, reason: &str) {
    by.log.write_plain(NGX_LOG_INFO, &refusal_line(&by.origin, upstream, status, reason));
}

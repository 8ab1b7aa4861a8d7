//! The `check_status [html|csv|json];` front end: nginx_upstream_check_module's
//! status page ([`dynamic_upstream_core::health::status_page`]) over every
//! checked peer, of configured and run-time upstreams alike.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use dynamic_upstream_core::health::status_page::{render, StatusFormat, StatusQuery, StatusRow};

use crate::nginx::http_io::{HttpRequest, Response};
use crate::ops::cycles::generation;
use crate::ops::plus::{all_upstreams, Listed};

/// The page, in `format` unless `?format=` says otherwise.
pub fn respond(req: &HttpRequest, format: StatusFormat) -> Response {
    if !req.is_get_or_head() {
        return Response::text(405, "only GET and HEAD are accepted\n");
    }
    let query = match StatusQuery::parse(&String::from_utf8_lossy(&req.args())) {
        Ok(query) => query,
        Err(e) => return Response::text(e.status, format!("{}\n", e.text)),
    };
    let rows: Vec<StatusRow> = all_upstreams().iter().flat_map(rows_of).collect();
    let format = query.format.unwrap_or(format);
    // The C module counts configuration loads from 1.
    let page = render(&rows, generation() + 1, format, query.filter);
    Response { status: 200, content_type: format.content_type(), body: page.into_bytes() }
}

/// The checked peers of an upstream (none without checks; a peer the
/// health zone had no room for is not checked).
fn rows_of(upstream: &Listed) -> Vec<StatusRow> {
    let Some(check) = &upstream.check else { return Vec::new() };
    upstream
        .peers
        .iter()
        .filter_map(|p| {
            let h = p.health.filter(|h| h.checked)?;
            Some(StatusRow {
                upstream: upstream.name.clone(),
                name: p.name.clone(),
                down: h.down,
                rises: h.rises,
                falls: h.falls,
                check_type: check.check_type,
                port: check.port,
                admin_down: p.down,
                last_check: h.last_check,
                last_error: h.last_error,
            })
        })
        .collect()
}

//! The `dynamic_upstream_metrics` front end: the Prometheus exposition of
//! what the NGINX Plus API shows, with nginx-prometheus-exporter's metric
//! names and labels ([`dynamic_upstream_core::prometheus`]).

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use dynamic_upstream_core::plus::view::UpstreamStatus;

use crate::nginx::http_io::{HttpRequest, Response};
use crate::nginx::peer_stats::now_ms;
use crate::nginx::stub_status::{connections, requests};
use crate::ops::plus::{all_upstreams, Listed};

/// The answer to a scrape.
pub fn respond(req: &HttpRequest) -> Response {
    if !req.is_get_or_head() {
        return Response::text(405, "only GET and HEAD are accepted\n");
    }
    let all = all_upstreams();
    let statuses: Vec<UpstreamStatus> = all.iter().map(Listed::status).collect();
    let text = dynamic_upstream_core::prometheus::render(&connections(), &requests(), &statuses, now_ms());
    Response { status: 200, content_type: "text/plain; version=0.0.4", body: text.into_bytes() }
}

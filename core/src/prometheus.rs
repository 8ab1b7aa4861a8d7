//! `dynamic_upstream_metrics`: the Prometheus text exposition format
//! (version 0.0.4) with the metric names and labels that
//! nginx-prometheus-exporter publishes for NGINX Plus
//! (`nginxplus_upstream_server_*{upstream="...",server="..."}`), so that
//! dashboards and alerts written for it work unchanged.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::plus::stats::{peer_state, Passive};
use crate::plus::view::{Connections, Requests, UpstreamStatus};
use crate::render::PeerView;

/// The exporter's numbers for a server state (`up` 1, `down` 3,
/// `unavail` 4, `unhealthy` 6; `draining` 2 and `checking` 5 are NGINX
/// Plus states this module has not).
fn state_value(state: &str) -> u64 {
    match state {
        "up" => 1,
        "down" => 3,
        "unhealthy" => 6,
        _ => 4,
    }
}

/// A label value, escaped as the format requires.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP nginxplus_{name} {help}");
    let _ = writeln!(out, "# TYPE nginxplus_{name} {kind}");
}

type PeerMetric = (&'static str, &'static str, &'static str, fn(&PeerView, u64) -> u64);

/// The per-server families: name, type, help (the exporter's), value.
const SERVER_METRICS: [PeerMetric; 15] = [
    ("state", "gauge", "Current state", |p, now| state_value(peer_state(p, (now / 1000) as i64))),
    ("active", "gauge", "Active connections", |p, _| p.conns),
    (
        "limit",
        "gauge",
        "Limit for connections which corresponds to the max_conns parameter of the upstream server. Zero value \
         means there is no limit",
        |p, _| p.max_conns,
    ),
    ("requests", "counter", "Total client requests", |p, _| p.stats.requests),
    ("sent", "counter", "Bytes sent to this server", |p, _| p.stats.sent),
    ("received", "counter", "Bytes received to this server", |p, _| p.stats.received),
    ("fails", "counter", "Number of unsuccessful attempts to communicate with the server", |p, _| p.stats.fails),
    (
        "unavail",
        "counter",
        "How many times the server became unavailable for client requests (state 'unavail') due to the number of \
         unsuccessful attempts reaching the max_fails threshold",
        |p, _| p.stats.unavail,
    ),
    ("header_time", "gauge", "Average time to get the response header from the server", |p, _| {
        p.stats.average_times().map_or(0, |t| t.0)
    }),
    ("response_time", "gauge", "Average time to get the full response from the server", |p, _| {
        p.stats.average_times().map_or(0, |t| t.1)
    }),
    ("downtime", "counter", "Total time the server was unavailable, in milliseconds", |p, now| {
        p.stats.downtime_at(&Passive::of(p), now).total_ms
    }),
    ("selected", "gauge", "Unix time in milliseconds the server was last selected (0: never)", |p, _| {
        p.stats.selected_ms
    }),
    // The health checks' counters, as the NGINX Plus API's `health_checks`
    // (0 for a server nothing checks).
    ("health_checks_checks", "counter", "Total health check requests", |p, _| p.health.map_or(0, |h| h.checks)),
    ("health_checks_fails", "counter", "Failed health checks", |p, _| p.health.map_or(0, |h| h.fails)),
    ("health_checks_unhealthy", "counter", "How many times the server became unhealthy (state 'unhealthy')", |p, _| {
        p.health.map_or(0, |h| h.unhealthy)
    }),
];

/// The whole exposition: `nginxplus_up` (the exporter's: 1 when it could
/// read the API, as whoever reads this page could), connections and
/// requests, then per upstream its zombies and keepalive connections, then
/// per server its families.
pub fn render(connections: &Connections, requests: &Requests, upstreams: &[UpstreamStatus<'_>], now_ms: u64) -> String {
    let mut out = String::new();
    family(&mut out, "up", "gauge", "Status of the last metric scrape");
    out.push_str("nginxplus_up 1\n");
    for (name, kind, help, value) in [
        ("connections_accepted", "counter", "Accepted client connections", connections.accepted),
        ("connections_dropped", "counter", "Dropped client connections", connections.dropped),
        ("connections_active", "gauge", "Active client connections", connections.active),
        ("connections_idle", "gauge", "Idle client connections", connections.idle),
        ("http_requests_total", "counter", "Total http requests", requests.total),
        ("http_requests_current", "gauge", "Current http requests", requests.current),
    ] {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "nginxplus_{name} {value}");
    }
    // Keepalive connections under both of the exporter's names: 1.3.0
    // renamed `keepalives` (Debian 12's 0.11.0) `keepalive` (Debian 13's
    // 1.4.1). Never counted here: 0.
    for (name, help) in [
        ("keepalives", "Idle keepalive connections"),
        ("keepalive", "Idle keepalive connections"),
        ("zombies", "Servers removed from the group but still processing active client requests"),
    ] {
        family(&mut out, &format!("upstream_{name}"), "gauge", help);
        for u in upstreams {
            let value = if name == "zombies" { u.zombies } else { 0 };
            let _ = writeln!(out, "nginxplus_upstream_{name}{{upstream=\"{}\"}} {value}", label(u.name));
        }
    }
    let labels: Vec<Vec<String>> = upstreams.iter().map(|u| server_labels(u.peers)).collect();
    let servers = || {
        upstreams
            .iter()
            .zip(&labels)
            .flat_map(|(u, labels)| u.peers.iter().zip(labels).map(move |(p, l)| (u.name, p, l)))
    };
    for (name, kind, help, value) in SERVER_METRICS {
        family(&mut out, &format!("upstream_server_{name}"), kind, help);
        for (upstream, p, server) in servers() {
            let _ = writeln!(
                out,
                "nginxplus_upstream_server_{name}{{upstream=\"{}\",server=\"{}\"}} {}",
                label(upstream),
                label(server),
                value(p, now_ms)
            );
        }
    }
    family(&mut out, "upstream_server_responses", "counter", "Total responses sent to clients");
    for (upstream, p, server) in servers() {
        for (i, count) in p.stats.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "nginxplus_upstream_server_responses{{upstream=\"{}\",server=\"{}\",code=\"{}xx\"}} {count}",
                label(upstream),
                label(server),
                i + 1
            );
        }
    }
    out
}

/// Each peer's `server` label: its `server` as the NGINX Plus API shows it
/// (the exporter's label), unless another peer of the upstream shows the
/// same (the addresses `server NAME resolve` made, or a server line given
/// twice): then its address, and where that is shared too, its address and
/// ID (`127.0.0.1:8081#3`). Prometheus refuses two series of one name with
/// the same labels.
fn server_labels(peers: &[PeerView]) -> Vec<String> {
    let mut servers: HashMap<&str, usize> = HashMap::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for p in peers {
        *servers.entry(&p.server).or_default() += 1;
        *names.entry(&p.name).or_default() += 1;
    }
    peers
        .iter()
        .map(|p| match (servers[p.server.as_str()], names[p.name.as_str()]) {
            (1, _) => p.server.clone(),
            (_, 1) => p.name.clone(),
            _ => format!("{}#{}", p.name, p.stats.id.map_or_else(|| "none".to_string(), |id| id.to_string())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plus::PeerStats;
    use crate::render::test_peer;

    #[test]
    fn shared_server_labels_are_told_apart() {
        let peer = |server: &str, name: &str, id: u64| {
            let mut p = test_peer(name);
            p.server = server.into();
            p.stats.id = Some(id);
            p
        };
        let peers = [
            peer("backend.test:80", "10.0.0.1:80", 0),
            peer("backend.test:80", "10.0.0.2:80", 1),
            peer("127.0.0.1:81", "127.0.0.1:81", 2),
            peer("127.0.0.1:81", "127.0.0.1:81", 3),
            peer("127.0.0.1:82", "127.0.0.1:82", 4),
        ];
        assert_eq!(
            server_labels(&peers),
            ["10.0.0.1:80", "10.0.0.2:80", "127.0.0.1:81#2", "127.0.0.1:81#3", "127.0.0.1:82"]
        );
    }

    #[test]
    fn exporter_names_and_labels() {
        let mut p = test_peer("127.0.0.1:8081");
        p.conns = 1;
        p.stats = PeerStats {
            requests: 3,
            responses: [0, 2, 0, 0, 1],
            header_time_ms: 3,
            response_time_ms: 9,
            ..Default::default()
        };
        let mut q = test_peer("unix:/tmp/\"q\".sock");
        q.down = true;
        let peers = [p, q];
        let u = [UpstreamStatus { name: "backends", zone: "z", runtime: false, zombies: 0, peers: &peers }];
        let c = Connections { accepted: 10, dropped: 0, active: 2, idle: 1 };
        let r = Requests { total: 20, current: 1 };
        let text = render(&c, &r, &u, 0);
        for line in [
            "# TYPE nginxplus_connections_accepted counter",
            "nginxplus_connections_accepted 10",
            "# TYPE nginxplus_up gauge",
            "nginxplus_up 1",
            "nginxplus_upstream_keepalives{upstream=\"backends\"} 0",
            "nginxplus_upstream_keepalive{upstream=\"backends\"} 0",
            "nginxplus_http_requests_total 20",
            "nginxplus_upstream_zombies{upstream=\"backends\"} 0",
            "# TYPE nginxplus_upstream_server_requests counter",
            "nginxplus_upstream_server_state{upstream=\"backends\",server=\"127.0.0.1:8081\"} 1",
            "nginxplus_upstream_server_state{upstream=\"backends\",server=\"unix:/tmp/\\\"q\\\".sock\"} 3",
            "nginxplus_upstream_server_active{upstream=\"backends\",server=\"127.0.0.1:8081\"} 1",
            "nginxplus_upstream_server_requests{upstream=\"backends\",server=\"127.0.0.1:8081\"} 3",
            "nginxplus_upstream_server_responses{upstream=\"backends\",server=\"127.0.0.1:8081\",code=\"2xx\"} 2",
            "nginxplus_upstream_server_responses{upstream=\"backends\",server=\"127.0.0.1:8081\",code=\"5xx\"} 1",
            "nginxplus_upstream_server_header_time{upstream=\"backends\",server=\"127.0.0.1:8081\"} 1",
            "nginxplus_upstream_server_response_time{upstream=\"backends\",server=\"127.0.0.1:8081\"} 3",
            "# TYPE nginxplus_upstream_server_health_checks_fails counter",
            "# HELP nginxplus_upstream_server_health_checks_unhealthy How many times the server became unhealthy \
             (state 'unhealthy')",
            "nginxplus_upstream_server_health_checks_checks{upstream=\"backends\",server=\"127.0.0.1:8081\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // One series per label set.
        let series: Vec<&str> =
            text.lines().filter(|l| !l.starts_with('#')).map(|l| l.rsplit_once(' ').unwrap().0).collect();
        assert_eq!(series.iter().collect::<std::collections::HashSet<_>>().len(), series.len());
        // Every sample line: name{labels} value, after its family's TYPE.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = l.rsplit_once(' ').unwrap();
            assert!(value.parse::<u64>().is_ok(), "{l}");
        }
    }
}

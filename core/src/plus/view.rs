//! The JSON objects of NGINX Plus API version 9 that this module serves,
//! with NGINX Plus's field names and order.

use serde::Serialize;

use super::route::VERSIONS;
use super::stats::{peer_state, Passive};
use crate::render::PeerView;

/// `/`: the versions served.
pub fn versions() -> String {
    serde_json::to_string(&VERSIONS).unwrap_or_default()
}

/// A JSON array of names.
pub fn names(names: &[&str]) -> String {
    serde_json::to_string(names).unwrap_or_default()
}

/// A time in seconds as NGINX Plus writes it (`10s`).
pub fn seconds_text(seconds: i64) -> String {
    format!("{seconds}s")
}

/// A server's configuration (`NginxHTTPUpstreamConfServer`).
#[derive(Debug, Serialize)]
struct ConfServer<'a> {
    id: u64,
    server: &'a str,
    weight: i64,
    max_conns: u64,
    max_fails: u64,
    fail_timeout: String,
    slow_start: &'static str,
    route: &'static str,
    backup: bool,
    down: bool,
}

fn conf_server(p: &PeerView) -> ConfServer<'_> {
    ConfServer {
        id: p.stats.id.unwrap_or(0),
        server: &p.server,
        weight: p.weight,
        max_conns: p.max_conns,
        max_fails: p.max_fails,
        fail_timeout: seconds_text(p.fail_timeout),
        slow_start: "0s",
        route: "",
        backup: p.backup,
        down: p.down,
    }
}

/// `GET .../servers/ID`.
pub fn server(p: &PeerView) -> String {
    serde_json::to_string(&conf_server(p)).unwrap_or_default()
}

/// `GET .../servers`.
pub fn servers(peers: &[PeerView]) -> String {
    serde_json::to_string(&peers.iter().map(conf_server).collect::<Vec<_>>()).unwrap_or_default()
}

#[derive(Debug, Serialize)]
struct Responses {
    #[serde(rename = "1xx")]
    r1: u64,
    #[serde(rename = "2xx")]
    r2: u64,
    #[serde(rename = "3xx")]
    r3: u64,
    #[serde(rename = "4xx")]
    r4: u64,
    #[serde(rename = "5xx")]
    r5: u64,
    total: u64,
}

/// Its active health checks (`last_passed` once it was checked).
#[derive(Debug, Serialize)]
struct HealthChecks {
    checks: u64,
    fails: u64,
    unhealthy: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_passed: Option<bool>,
}

fn health_checks(p: &PeerView) -> HealthChecks {
    let h = p.health.unwrap_or_default();
    HealthChecks {
        checks: h.checks,
        fails: h.fails,
        unhealthy: h.unhealthy,
        last_passed: (h.last_check != 0).then(|| h.last_passed()),
    }
}

/// A server's status (`NginxHTTPUpstreamPeer`).
#[derive(Debug, Serialize)]
struct Peer<'a> {
    id: u64,
    server: &'a str,
    name: &'a str,
    backup: bool,
    weight: i64,
    state: &'static str,
    active: u64,
    max_conns: u64,
    requests: u64,
    responses: Responses,
    sent: u64,
    received: u64,
    fails: u64,
    unavail: u64,
    health_checks: HealthChecks,
    downtime: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    downstart: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    selected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_time: Option<u64>,
}

fn peer(p: &PeerView, now_ms: u64) -> Peer<'_> {
    let s = &p.stats;
    let r = s.responses;
    let times = s.average_times();
    let down = s.downtime_at(&Passive::of(p), now_ms);
    Peer {
        id: s.id.unwrap_or(0),
        server: &p.server,
        name: &p.name,
        backup: p.backup,
        weight: p.weight,
        state: peer_state(p, (now_ms / 1000) as i64),
        active: p.conns,
        max_conns: p.max_conns,
        requests: s.requests,
        responses: Responses { r1: r[0], r2: r[1], r3: r[2], r4: r[3], r5: r[4], total: s.total_responses() },
        sent: s.sent,
        received: s.received,
        fails: s.fails,
        unavail: s.unavail,
        health_checks: health_checks(p),
        downtime: down.total_ms,
        downstart: down.start_ms.map(iso8601),
        selected: (s.selected_ms != 0).then(|| iso8601(s.selected_ms)),
        header_time: times.map(|t| t.0),
        response_time: times.map(|t| t.1),
    }
}

/// An upstream as `GET /http/upstreams` shows it.
pub struct UpstreamStatus<'a> {
    pub name: &'a str,
    pub zone: &'a str,
    /// Created through the REST API (dyups) rather than the configuration.
    pub runtime: bool,
    /// Removed servers still serving requests.
    pub zombies: u64,
    pub peers: &'a [PeerView],
}

#[derive(Debug, Serialize)]
struct Upstream<'a> {
    peers: Vec<Peer<'a>>,
    keepalive: u64,
    zombies: u64,
    zone: &'a str,
    runtime: bool,
}

fn upstream_object<'a>(u: &UpstreamStatus<'a>, now_ms: u64) -> Upstream<'a> {
    Upstream {
        peers: u.peers.iter().map(|p| peer(p, now_ms)).collect(),
        keepalive: 0,
        zombies: u.zombies,
        zone: u.zone,
        runtime: u.runtime,
    }
}

/// The fields of an upstream object, in the order they are shown.
const UPSTREAM_FIELDS: [&str; 5] = ["peers", "keepalive", "zombies", "zone", "runtime"];

/// Which fields of an upstream `GET /http/upstreams[/NAME]` shows: all of
/// them, or those `?fields=a,b` names (NGINX Plus's argument; `fields=`
/// empty: none, only the names of the upstreams). Names it does not know
/// are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamFields {
    shown: [bool; UPSTREAM_FIELDS.len()],
}

impl UpstreamFields {
    pub const ALL: UpstreamFields = UpstreamFields { shown: [true; UPSTREAM_FIELDS.len()] };

    /// From a request's query string (the first `fields` argument, its name
    /// in any case, as nginx's `ngx_http_arg` finds it).
    pub fn from_args(args: &str) -> UpstreamFields {
        let value = args.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            key.eq_ignore_ascii_case("fields").then_some(value)
        });
        let Some(value) = value else { return UpstreamFields::ALL };
        let value = crate::query::decode(value.as_bytes()).unwrap_or_else(|_| value.to_string());
        let mut shown = [false; UPSTREAM_FIELDS.len()];
        for name in value.split(',') {
            if let Some(i) = UPSTREAM_FIELDS.iter().position(|f| *f == name.trim()) {
                shown[i] = true;
            }
        }
        UpstreamFields { shown }
    }

    /// Whether the peers are shown (the costly part to gather).
    pub fn peers(&self) -> bool {
        self.shown[0]
    }
}

/// `GET /http/upstreams/NAME`, with the fields `fields` keeps.
pub fn upstream(u: &UpstreamStatus<'_>, now_ms: u64, fields: UpstreamFields) -> String {
    if fields == UpstreamFields::ALL {
        return serde_json::to_string(&upstream_object(u, now_ms)).unwrap_or_default();
    }
    let value = |i: usize| match i {
        0 => serde_json::to_string(&u.peers.iter().map(|p| peer(p, now_ms)).collect::<Vec<_>>()),
        1 => Ok("0".to_string()),
        2 => Ok(u.zombies.to_string()),
        3 => serde_json::to_string(u.zone),
        _ => Ok(u.runtime.to_string()),
    };
    let shown: Vec<String> = (0..UPSTREAM_FIELDS.len())
        .filter(|&i| fields.shown[i])
        .map(|i| format!("\"{}\":{}", UPSTREAM_FIELDS[i], value(i).unwrap_or_default()))
        .collect();
    format!("{{{}}}", shown.join(","))
}

/// `GET /http/upstreams`: an object keyed by upstream name, in order.
pub fn upstreams(list: &[UpstreamStatus<'_>], now_ms: u64, fields: UpstreamFields) -> String {
    let mut out = String::from("{");
    for (i, u) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(u.name).unwrap_or_default());
        out.push(':');
        out.push_str(&upstream(u, now_ms, fields));
    }
    out.push('}');
    out
}

/// `GET /nginx`.
#[derive(Debug, Serialize)]
pub struct NginxInfo {
    pub version: String,
    pub build: String,
    pub address: String,
    pub generation: u64,
    pub load_timestamp: String,
    pub timestamp: String,
    pub pid: u64,
    pub ppid: u64,
}

/// `GET /connections`.
#[derive(Debug, Serialize)]
pub struct Connections {
    pub accepted: u64,
    pub dropped: u64,
    pub active: u64,
    pub idle: u64,
}

/// `GET /http/requests`.
#[derive(Debug, Serialize)]
pub struct Requests {
    pub total: u64,
    pub current: u64,
}

/// `GET /processes`.
#[derive(Debug, Serialize)]
pub struct Processes {
    pub respawned: u64,
}

/// Any of the objects above as JSON.
pub fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Unix time in milliseconds as ISO 8601 UTC with milliseconds
/// (`2022-06-28T11:15:44.467Z`).
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plus::PeerStats;
    use crate::render::test_peer;

    #[test]
    fn times_are_iso8601_with_milliseconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_656_415_044_467), "2022-06-28T11:17:24.467Z");
        assert_eq!(iso8601(951_782_400_001), "2000-02-29T00:00:00.001Z");
        assert_eq!(iso8601(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn conf_servers_have_plus_fields_in_order() {
        let mut p = test_peer("127.0.0.1:8081");
        p.stats.id = Some(4);
        assert_eq!(
            servers(&[p]),
            r#"[{"id":4,"server":"127.0.0.1:8081","weight":1,"max_conns":0,"max_fails":1,"fail_timeout":"10s","slow_start":"0s","route":"","backup":false,"down":false}]"#
        );
        assert_eq!(versions(), "[6,7,8,9]");
        assert_eq!(names(&["a", "b\""]), r#"["a","b\""]"#);
    }

    #[test]
    fn upstream_status() {
        let mut p = test_peer("127.0.0.1:8081");
        p.conns = 2;
        p.stats = PeerStats {
            id: Some(0),
            requests: 5,
            responses: [0, 3, 0, 1, 0],
            sent: 100,
            received: 2000,
            fails: 1,
            unavail: 0,
            selected_ms: 1_656_415_044_467,
            header_time_ms: 8,
            response_time_ms: 20,
            ..Default::default()
        };
        let mut idle = test_peer("127.0.0.1:8082");
        idle.down = true;
        idle.backup = true;
        idle.stats.id = Some(1);
        let peers = [p, idle];
        let u = UpstreamStatus { name: "backends", zone: "z", runtime: false, zombies: 1, peers: &peers };
        assert_eq!(
            upstreams(&[u], 1_656_415_045_000, UpstreamFields::ALL),
            concat!(
                r#"{"backends":{"peers":["#,
                r#"{"id":0,"server":"127.0.0.1:8081","name":"127.0.0.1:8081","backup":false,"weight":1,"state":"up","active":2,"max_conns":0,"requests":5,"responses":{"1xx":0,"2xx":3,"3xx":0,"4xx":1,"5xx":0,"total":4},"sent":100,"received":2000,"fails":1,"unavail":0,"health_checks":{"checks":0,"fails":0,"unhealthy":0},"downtime":0,"selected":"2022-06-28T11:17:24.467Z","header_time":2,"response_time":5},"#,
                r#"{"id":1,"server":"127.0.0.1:8082","name":"127.0.0.1:8082","backup":true,"weight":1,"state":"down","active":0,"max_conns":0,"requests":0,"responses":{"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"total":0},"sent":0,"received":0,"fails":0,"unavail":0,"health_checks":{"checks":0,"fails":0,"unhealthy":0},"downtime":0}"#,
                r#"],"keepalive":0,"zombies":1,"zone":"z","runtime":false}}"#
            )
        );
    }

    #[test]
    fn fields_keep_the_named_fields_in_their_order() {
        let peers = [test_peer("127.0.0.1:8081")];
        let u = UpstreamStatus { name: "b", zone: "z", runtime: true, zombies: 2, peers: &peers };
        let shown = |args: &str| upstreams(std::slice::from_ref(&u), 0, UpstreamFields::from_args(args));
        assert_eq!(shown("fields=runtime,zone"), r#"{"b":{"zone":"z","runtime":true}}"#);
        assert_eq!(shown("a=1&FIELDS=zombies&fields=zone"), r#"{"b":{"zombies":2}}"#);
        assert_eq!(shown("fields=zone%2Ckeepalive,nonsense"), r#"{"b":{"keepalive":0,"zone":"z"}}"#);
        assert_eq!(shown("fields="), r#"{"b":{}}"#);
        assert_eq!(shown("fields"), r#"{"b":{}}"#);
        assert_eq!(shown("fieldsx=zone"), shown(""));
        assert!(shown("fields=peers").starts_with(r#"{"b":{"peers":[{"id":"#));
        assert_eq!(shown("fields=peers,keepalive,zombies,zone,runtime"), shown(""));
        assert!(!UpstreamFields::from_args("fields=zone").peers());
        assert!(UpstreamFields::from_args("x=1").peers());
    }
}

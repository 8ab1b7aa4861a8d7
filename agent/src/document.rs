//! The desired state of one upstream, as etcd holds it under
//! `PREFIX/upstreams/NAME`:
//! `{"servers": [{"server": "10.0.0.5:80", "weight": 2, ...}], "balancer": "least_conn"}`.
//!
//! Server objects have NGINX Plus API fields. A document is checked as a
//! whole with the module's own parsers (`dynamic-upstream-core`), so what the
//! agent accepts is what the module accepts; it is then rendered as a dyups
//! POST body (run-time upstreams) or a Plus API server array (the PUT of a
//! configuration upstream).

use std::collections::HashSet;

use dynamic_upstream_core::balancer::Balancer;
use dynamic_upstream_core::dyups::{config_text, finish, parse_statement, Statement, UpstreamSpec};
use dynamic_upstream_core::render::printable;
use dynamic_upstream_core::{Address, Param, ServerSpec};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    servers: Vec<PlusServer>,
    #[serde(default)]
    balancer: Option<String>,
}

/// A number of seconds (`10`) or nginx's time syntax (`"10s"`, `"1m"`), as
/// the Plus API writes `fail_timeout` and `slow_start`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Time {
    Seconds(u64),
    Text(String),
}

impl Time {
    fn text(&self) -> String {
        match self {
            Time::Seconds(n) => n.to_string(),
            Time::Text(t) => t.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlusServer {
    server: String,
    weight: Option<u64>,
    max_conns: Option<u64>,
    max_fails: Option<u64>,
    fail_timeout: Option<Time>,
    slow_start: Option<Time>,
    route: Option<String>,
    backup: Option<bool>,
    down: Option<bool>,
}

/// Parses and checks a document: the whole upstream or one reason why not.
pub fn parse(value: &[u8]) -> Result<UpstreamSpec, String> {
    let invalid = |e: serde_json::Error| format!("invalid document: {e}");
    let value: serde_json::Value = serde_json::from_slice(value).map_err(invalid)?;
    if !value.is_object() {
        return Err("invalid document: not a JSON object".into());
    }
    let doc = Document::deserialize(value).map_err(invalid)?;
    let balancer = match doc.balancer.as_deref().map(str::trim) {
        None | Some("") => Balancer::RoundRobin,
        Some(line) => match parse_statement(line).map_err(|e| format!("balancer: {}", core_reason(&e.text)))? {
            Some(Statement::Balancer(b)) => b,
            _ => return Err(format!("balancer: \"{}\" is not a balancer line", printable(line))),
        },
    };
    let mut seen = HashSet::new();
    let mut servers = Vec::with_capacity(doc.servers.len());
    for (i, s) in doc.servers.iter().enumerate() {
        let server = server_spec(s).map_err(|e| format!("servers[{i}]: {e}"))?;
        if !seen.insert(server.address.clone()) {
            return Err(format!("servers[{i}]: server {} is listed twice", server.address));
        }
        servers.push(server);
    }
    finish(balancer, servers, None).map_err(|e| core_reason(&e.text).to_string())
}

fn server_spec(s: &PlusServer) -> Result<ServerSpec, String> {
    let address = Address::parse(&s.server).map_err(|e| e.text)?;
    let mut spec = ServerSpec::new(address);
    let param = |p: Param, text: String| p.parse_value(&text).map_err(|e| e.text);
    if let Some(n) = s.weight {
        spec.weight = param(Param::Weight, n.to_string())?;
    }
    if let Some(n) = s.max_conns {
        spec.max_conns = param(Param::MaxConns, n.to_string())?;
    }
    if let Some(n) = s.max_fails {
        spec.max_fails = param(Param::MaxFails, n.to_string())?;
    }
    if let Some(t) = &s.fail_timeout {
        spec.fail_timeout = param(Param::FailTimeout, t.text())?;
    }
    // Fields of NGINX Plus that open-source nginx 1.22 has no use for:
    // accepted only with the value that means "off".
    if s.slow_start.as_ref().is_some_and(|t| dynamic_upstream_core::peer::parse_seconds(&t.text()) != Some(0)) {
        return Err("slow_start is not supported (nginx open source has no slow start): use 0 or leave it out".into());
    }
    if s.route.as_deref().is_some_and(|r| !r.is_empty()) {
        return Err("route is not supported (nginx open source has no sticky route): use \"\" or leave it out".into());
    }
    spec.backup = s.backup.unwrap_or(false);
    spec.down = s.down.unwrap_or(false);
    Ok(spec)
}

/// The module's parsers speak for the dyups API (`add server failed: ...`);
/// the reason alone reads better in the agent's log.
fn core_reason(text: &str) -> &str {
    text.strip_prefix("add server failed: ").unwrap_or(text)
}

/// The body of `POST /upstream/NAME` on a `dyups_interface` location.
pub fn dyups_body(spec: &UpstreamSpec) -> String {
    config_text(spec)
}

/// The body of `PUT /api/9/http/upstreams/NAME/servers`: Plus API server
/// objects. The balancer belongs to the configuration and is not sent.
pub fn plus_servers(spec: &UpstreamSpec) -> String {
    let servers: Vec<serde_json::Value> = spec
        .servers
        .iter()
        .map(|s| {
            serde_json::json!({
                "server": s.address.to_string(),
                "weight": s.weight,
                "max_conns": s.max_conns,
                "max_fails": s.max_fails,
                "fail_timeout": format!("{}s", s.fail_timeout),
                "backup": s.backup,
                "down": s.down,
            })
        })
        .collect();
    serde_json::Value::Array(servers).to_string()
}

/// How a document reads in a log line: `3 servers, least_conn` (the
/// balancer only where it is sent: to run-time upstreams).
pub fn summary(spec: &UpstreamSpec, with_balancer: bool) -> String {
    let n = spec.servers.len();
    let servers = format!("{n} server{}", if n == 1 { "" } else { "s" });
    if !with_balancer {
        return servers;
    }
    format!("{servers}, {}", spec.balancer.directive().unwrap_or_else(|| "round robin".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(doc: &str) -> String {
        parse(doc.as_bytes()).unwrap_err()
    }

    #[test]
    fn the_issue_example() {
        let spec =
            parse(br#"{"servers": [{"server": "10.0.0.5:80", "weight": 2}], "balancer": "least_conn"}"#).unwrap();
        assert_eq!(dyups_body(&spec), "least_conn;\nserver 10.0.0.5:80 weight=2 max_fails=1 fail_timeout=10;\n");
        assert_eq!(summary(&spec, true), "1 server, least_conn");
        assert_eq!(summary(&spec, false), "1 server");
    }

    #[test]
    fn every_plus_field_maps_to_a_server_parameter() {
        let spec = parse(
            br#"{"servers": [
                {"server": "127.0.0.1:8081", "weight": 3, "max_conns": 10, "max_fails": 2,
                 "fail_timeout": "1m", "slow_start": "0s", "route": "", "backup": false, "down": true},
                {"server": "[::1]", "fail_timeout": 5, "backup": true},
                {"server": "unix:/run/app.sock"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            dyups_body(&spec),
            "server 127.0.0.1:8081 weight=3 max_fails=2 fail_timeout=60 max_conns=10 down;\n\
             server [::1]:80 weight=1 max_fails=1 fail_timeout=5 backup;\n\
             server unix:/run/app.sock weight=1 max_fails=1 fail_timeout=10;\n"
        );
        assert_eq!(summary(&spec, true), "3 servers, round robin");
        let plus: serde_json::Value = serde_json::from_str(&plus_servers(&spec)).unwrap();
        assert_eq!(
            plus[0],
            serde_json::json!({"server": "127.0.0.1:8081", "weight": 3, "max_conns": 10, "max_fails": 2,
                               "fail_timeout": "60s", "backup": false, "down": true})
        );
        assert_eq!(plus[1]["server"], "[::1]:80");
        assert_eq!(plus[1]["backup"], true);
    }

    #[test]
    fn balancer_lines_are_those_dyups_accepts() {
        for (line, body) in [
            ("least_conn", "least_conn;\n"),
            ("  ip_hash ", "ip_hash;\n"),
            ("hash $request_uri consistent", "hash $request_uri consistent;\n"),
            ("random two least_conn", "random two least_conn;\n"),
            ("", ""),
        ] {
            let doc = format!(r#"{{"servers": [{{"server": "10.0.0.1"}}], "balancer": "{line}"}}"#);
            let spec = parse(doc.as_bytes()).unwrap();
            assert!(dyups_body(&spec).starts_with(&format!("{body}server 10.0.0.1:80 ")), "{line}");
        }
    }

    #[test]
    fn bad_documents_get_one_reason() {
        let cases = [
            ("{", "invalid document: EOF while parsing an object at line 1 column 1"),
            ("[[], null]", "invalid document: not a JSON object"),
            (r#"{"balancer": "least_conn"}"#, "invalid document: missing field `servers`"),
            (r#"{"servers": []}"#, "no server given"),
            (r#"{"servers": [{"server": "10.0.0.1"}], "extra": 1}"#, "invalid document: unknown field `extra`"),
            (r#"{"servers": [{"server": "10.0.0.1", "id": 0}]}"#, "invalid document: unknown field `id`"),
            (
                r#"{"servers": [{"server": "backend.local:80"}]}"#,
                "servers[0]: server \"backend.local:80\" is a host name",
            ),
            (
                r#"{"servers": [{"server": "10.0.0.1:99999"}]}"#,
                "servers[0]: server address \"10.0.0.1:99999\" has a port outside 1-65535",
            ),
            (
                r#"{"servers": [{"server": "10.0.0.1", "weight": 0}]}"#,
                "servers[0]: weight must be an integer from 1 to 1000000",
            ),
            (
                r#"{"servers": [{"server": "10.0.0.1", "weight": -1}]}"#,
                "invalid document: invalid value: integer `-1`, expected u64",
            ),
            (
                r#"{"servers": [{"server": "10.0.0.1", "fail_timeout": "10x"}]}"#,
                "servers[0]: fail_timeout must be a number of seconds",
            ),
            (
                r#"{"servers": [{"server": "10.0.0.1", "slow_start": "30s"}]}"#,
                "servers[0]: slow_start is not supported",
            ),
            (r#"{"servers": [{"server": "10.0.0.1", "route": "a"}]}"#, "servers[0]: route is not supported"),
            (
                r#"{"servers": [{"server": "10.0.0.1"}, {"server": "10.0.0.1:80"}]}"#,
                "servers[1]: server 10.0.0.1:80 is listed twice",
            ),
            (r#"{"servers": [{"server": "10.0.0.1", "backup": true}]}"#, "every server is a backup"),
            (
                r#"{"servers": [{"server": "10.0.0.1"}, {"server": "10.0.0.2", "backup": true}], "balancer": "ip_hash"}"#,
                "backup server 10.0.0.2:80 is not allowed with the ip_hash balancer",
            ),
            (
                r#"{"servers": [{"server": "10.0.0.1"}], "balancer": "keepalive 8"}"#,
                "balancer: \"keepalive\" is not supported",
            ),
            (
                r#"{"servers": [{"server": "10.0.0.1"}], "balancer": "least_conn; server 10.0.0.9"}"#,
                "balancer: unknown directive \"least_conn;\"",
            ),
            (
                r#"{"servers": [{"server": "10.0.0.1"}], "balancer": "server 10.0.0.9"}"#,
                "balancer: \"server 10.0.0.9\" is not a balancer line",
            ),
            (
                r#"{"servers": [{"server": "10.0.0.1"}], "balancer": "random one"}"#,
                "balancer: invalid parameter \"one\" in \"random\"",
            ),
        ];
        for (doc, reason) in cases {
            let e = err(doc);
            assert!(e.starts_with(reason), "{doc}: {e}");
            assert!(!e.contains('\n'), "{doc}: {e}");
        }
    }
}

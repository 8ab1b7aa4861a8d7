//! The response formats: the text listings existing scripts parse (byte for
//! byte as ngx_dynamic_upstream wrote them) and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::error::{reason_phrase, ApiError};

/// One peer as the APIs show it: its configuration and live figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerView {
    /// The server as configured (`server` line text, or the added address).
    pub server: String,
    /// The address nginx connects to.
    pub name: String,
    pub weight: i64,
    pub max_fails: u64,
    /// Seconds.
    pub fail_timeout: i64,
    pub max_conns: u64,
    pub backup: bool,
    pub down: bool,
    pub conns: u64,
    pub fails: u64,
    pub current_weight: i64,
    pub effective_weight: i64,
    /// Unix time of the last failure, 0 if none.
    pub accessed: i64,
    /// Unix time the peer was last checked, 0 if never.
    pub checked: i64,
}

/// An upstream's peers, primaries first, then backups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamView {
    pub upstream: String,
    /// Shared memory zone name (`None` for upstreams without a zone).
    pub zone: Option<String>,
    pub peers: Vec<PeerView>,
}

/// `server ADDR[ backup][ down];` per peer.
pub fn plain_list(peers: &[PeerView]) -> String {
    let mut out = String::with_capacity(peers.len() * 32);
    for p in peers {
        let _ = write!(out, "server {}", p.name);
        push_flags(&mut out, p);
        out.push_str(";\n");
    }
    out
}

/// `server ADDR weight=W max_fails=F fail_timeout=T[ max_conns=N][ backup][ down];`
/// per peer.
pub fn verbose_list(peers: &[PeerView]) -> String {
    let mut out = String::with_capacity(peers.len() * 80);
    for p in peers {
        let _ = write!(
            out,
            "server {} weight={} max_fails={} fail_timeout={}",
            p.name, p.weight, p.max_fails, p.fail_timeout
        );
        if p.max_conns != 0 {
            let _ = write!(out, " max_conns={}", p.max_conns);
        }
        push_flags(&mut out, p);
        out.push_str(";\n");
    }
    out
}

fn push_flags(out: &mut String, p: &PeerView) {
    if p.backup {
        out.push_str(" backup");
    }
    if p.down {
        out.push_str(" down");
    }
}

/// The upstream as JSON.
pub fn json_upstream(view: &UpstreamView) -> String {
    // Serializing plain structs of strings and integers cannot fail.
    serde_json::to_string(view).unwrap_or_default() + "\n"
}

/// `400 Bad Request: weight must be ...`
pub fn text_error(e: &ApiError) -> String {
    format!("{} {}: {}\n", e.status, reason_phrase(e.status), e.text)
}

/// `{"error":{"status":400,"code":"...","text":"..."}}`
pub fn json_error(e: &ApiError) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        error: Inner<'a>,
    }
    #[derive(Serialize)]
    struct Inner<'a> {
        status: u16,
        code: &'a str,
        text: &'a str,
    }
    let body = Body { error: Inner { status: e.status, code: e.code, text: &e.text } };
    serde_json::to_string(&body).unwrap_or_default() + "\n"
}

/// A peer with nginx's default parameters and no traffic, for tests.
#[cfg(test)]
pub(crate) fn test_peer(name: &str) -> PeerView {
    PeerView {
        server: name.to_string(),
        name: name.to_string(),
        weight: 1,
        max_fails: 1,
        fail_timeout: 10,
        max_conns: 0,
        backup: false,
        down: false,
        conns: 0,
        fails: 0,
        current_weight: 0,
        effective_weight: 1,
        accessed: 0,
        checked: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str) -> PeerView {
        test_peer(name)
    }

    #[test]
    fn plain_is_compatible() {
        let mut down = peer("127.0.0.1:6003");
        down.down = true;
        let mut backup = peer("127.0.0.1:6004");
        backup.backup = true;
        assert_eq!(
            plain_list(&[peer("127.0.0.1:6001"), down, backup]),
            "server 127.0.0.1:6001;\nserver 127.0.0.1:6003 down;\nserver 127.0.0.1:6004 backup;\n"
        );
    }

    #[test]
    fn verbose_appends_non_defaults_in_order() {
        let mut p = peer("127.0.0.1:6003");
        assert_eq!(verbose_list(&[p.clone()]), "server 127.0.0.1:6003 weight=1 max_fails=1 fail_timeout=10;\n");
        p.max_conns = 7;
        p.backup = true;
        p.down = true;
        assert_eq!(
            verbose_list(&[p]),
            "server 127.0.0.1:6003 weight=1 max_fails=1 fail_timeout=10 max_conns=7 backup down;\n"
        );
    }

    #[test]
    fn errors() {
        let e = ApiError::bad_request("invalid_parameter", "weight must be an integer from 1 to 1000000");
        assert_eq!(text_error(&e), "400 Bad Request: weight must be an integer from 1 to 1000000\n");
        assert_eq!(
            json_error(&e),
            "{\"error\":{\"status\":400,\"code\":\"invalid_parameter\",\"text\":\"weight must be an integer from 1 to 1000000\"}}\n"
        );
    }

    #[test]
    fn json_lists_every_field() {
        let v = UpstreamView { upstream: "b".into(), zone: Some("z".into()), peers: vec![peer("127.0.0.1:1")] };
        let j: serde_json::Value = serde_json::from_str(&json_upstream(&v)).unwrap();
        assert_eq!(j["zone"], "z");
        for f in [
            "server",
            "name",
            "weight",
            "max_fails",
            "fail_timeout",
            "max_conns",
            "backup",
            "down",
            "conns",
            "fails",
            "current_weight",
            "effective_weight",
            "accessed",
            "checked",
        ] {
            assert!(j["peers"][0].get(f).is_some(), "{f}");
        }
    }
}

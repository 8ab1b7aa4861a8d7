//! The response formats: the text listings existing scripts parse (byte for
//! byte as ngx_dynamic_upstream wrote them) and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::address::Address;
use crate::error::{reason_phrase, ApiError};
use crate::peer::{Param, PeerParams, ServerSpec};

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
    /// The name nginx resolved it from (`server NAME resolve`): nginx
    /// adds and removes such a peer, the APIs only show it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_from: Option<String>,
    pub down: bool,
    pub conns: u64,
    pub fails: u64,
    pub current_weight: i64,
    pub effective_weight: i64,
    /// Unix time of the last failure, 0 if none.
    pub accessed: i64,
    /// Unix time the peer was last checked, 0 if never.
    pub checked: i64,
    /// Its ID and NGINX Plus statistics (the Plus API and metrics only).
    #[serde(skip)]
    pub stats: crate::plus::PeerStats,
    /// Its health, if its upstream has checks (JSON: the fields of
    /// [`crate::health::PeerHealth`], none without checks).
    #[serde(flatten)]
    pub health: Option<crate::health::PeerHealth>,
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

/// Who asked for a change, for the change log: the API (`query`, `rest`,
/// `lua`, `c`), the client address and the authenticated user (`auth_basic`)
/// when the change came through an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub api: &'static str,
    pub client: Option<String>,
    pub user: Option<String>,
}

impl Origin {
    /// A change made from inside nginx (Lua, the C API): no client.
    pub fn internal(api: &'static str) -> Self {
        Self { api, client: None, user: None }
    }
}

/// A peer's parameters before an update, copied out under the peers lock
/// (a fixed-size value: nothing is allocated there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerValues {
    pub weight: u64,
    pub max_fails: u64,
    pub fail_timeout: u64,
    pub max_conns: u64,
    pub down: bool,
}

/// An accepted change, as the change log tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    /// A peer's parameters (`params`, `down`) set; `before` holds their
    /// values before.
    Update {
        server: &'a Address,
        before: PeerValues,
        params: &'a PeerParams,
        down: Option<bool>,
    },
    Add(&'a ServerSpec),
    Remove(&'a Address),
    /// A dyups upstream set to `after` servers; `before` is `None` when it
    /// was created.
    Replace {
        before: Option<usize>,
        after: usize,
    },
    Delete,
}

/// `dynamic upstream change: client=127.0.0.1 user=alice api=query upstream=backend: 10.0.0.5:80 weight 1 -> 10, down`
pub fn change_line(origin: &Origin, upstream: &str, change: &Change) -> String {
    printable(&format!("dynamic upstream change: {}: {}", who(origin, upstream), describe(change))).into_owned()
}

/// `dynamic upstream change refused: client=... upstream=backend: 400 server 10.0.0.9:80 is not in upstream "backend"`:
/// the status and the reason the client got.
pub fn refusal_line(origin: &Origin, upstream: &str, status: u16, reason: &str) -> String {
    printable(&format!("dynamic upstream change refused: {}: {status} {reason}", who(origin, upstream))).into_owned()
}

/// `text` with every non-printing character escaped, for a log line whose
/// fields come from a request (user, upstream name, reason): control
/// characters (`char::is_control`: C0, DEL, C1) as `\xNN` below 0x80 and
/// `\u{N}` above, and so are the invisible format characters (zero-width,
/// line and paragraph separators, bidi overrides, BOM), so no field can
/// forge a line or hide or reorder what follows it.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
    };
    if !text.chars().any(hidden) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !hidden(c) => out.push(c),
            c if c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    out.into()
}

fn who(origin: &Origin, upstream: &str) -> String {
    let word = |w: &Option<String>| w.as_deref().map_or("-".into(), |w| crate::state::config_word(w).into_owned());
    format!(
        "client={} user={} api={} upstream={}",
        word(&origin.client),
        word(&origin.user),
        origin.api,
        crate::state::config_word(upstream)
    )
}

fn describe(change: &Change) -> String {
    match change {
        Change::Update { server, before, params, down } => {
            let mut parts = Vec::new();
            let olds = [before.weight, before.max_fails, before.fail_timeout, before.max_conns];
            // Only what changed: setting a value a peer already has is none.
            for (param, old) in Param::ALL.into_iter().zip(olds) {
                match param.get(params) {
                    Some(new) if new != old => parts.push(format!("{} {old} -> {new}", param.name())),
                    _ => {}
                }
            }
            match down {
                Some(true) if !before.down => parts.push("down".into()),
                Some(false) if before.down => parts.push("up".into()),
                _ => {}
            }
            if parts.is_empty() {
                parts.push("unchanged".into());
            }
            format!("{server} {}", parts.join(", "))
        }
        Change::Add(spec) => {
            let mut out = format!("added {}", spec.address);
            let defaults = ServerSpec::new(spec.address.clone());
            let values = [
                ("weight", spec.weight, defaults.weight),
                ("max_fails", spec.max_fails, defaults.max_fails),
                ("fail_timeout", spec.fail_timeout, defaults.fail_timeout),
                ("max_conns", spec.max_conns, defaults.max_conns),
            ];
            for (name, value, default) in values {
                if value != default {
                    let _ = write!(out, " {name}={value}");
                }
            }
            for (flag, set) in [("backup", spec.backup), ("down", spec.down)] {
                if set {
                    let _ = write!(out, " {flag}");
                }
            }
            out
        }
        Change::Remove(server) => format!("removed {server}"),
        Change::Replace { before: Some(before), after } => format!("replaced: {before} servers -> {after}"),
        Change::Replace { before: None, after } => format!("created: {after} servers"),
        Change::Delete => "deleted".into(),
    }
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
        resolved_from: None,
        down: false,
        conns: 0,
        fails: 0,
        current_weight: 0,
        effective_weight: 1,
        accessed: 0,
        checked: 0,
        stats: Default::default(),
        health: None,
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

    fn origin() -> Origin {
        Origin { api: "query", client: Some("127.0.0.1".into()), user: Some("alice".into()) }
    }

    #[test]
    fn change_lines() {
        let server: Address = Address::parse("10.0.0.5:80").unwrap();
        let before = PeerValues { weight: 1, max_fails: 1, fail_timeout: 10, max_conns: 0, down: false };
        let params = PeerParams { weight: Some(10), max_conns: Some(5), ..PeerParams::default() };
        let update = Change::Update { server: &server, before, params: &params, down: Some(true) };
        assert_eq!(
            change_line(&origin(), "backend", &update),
            "dynamic upstream change: client=127.0.0.1 user=alice api=query upstream=backend: \
             10.0.0.5:80 weight 1 -> 10, max_conns 0 -> 5, down"
        );
        let nothing = PeerParams::default();
        let up = Change::Update { server: &server, before, params: &nothing, down: Some(false) };
        let lua = Origin::internal("lua");
        let was_down = PeerValues { down: true, ..before };
        let up_again = Change::Update { server: &server, before: was_down, params: &nothing, down: Some(false) };
        assert_eq!(
            change_line(&lua, "b", &up_again),
            "dynamic upstream change: client=- user=- api=lua upstream=b: 10.0.0.5:80 up"
        );
        // Only real changes: a peer already up, a weight it already has.
        assert_eq!(describe(&up), "10.0.0.5:80 unchanged");
        let same = PeerParams { weight: Some(1), max_fails: Some(2), ..PeerParams::default() };
        let no_news = Change::Update { server: &server, before: was_down, params: &same, down: Some(true) };
        assert_eq!(describe(&no_news), "10.0.0.5:80 max_fails 1 -> 2");
        let mut spec = ServerSpec::new(server.clone());
        spec.weight = 2;
        spec.backup = true;
        assert_eq!(describe(&Change::Add(&spec)), "added 10.0.0.5:80 weight=2 backup");
        assert_eq!(describe(&Change::Remove(&server)), "removed 10.0.0.5:80");
        assert_eq!(describe(&Change::Replace { before: Some(3), after: 4 }), "replaced: 3 servers -> 4");
        assert_eq!(describe(&Change::Replace { before: None, after: 1 }), "created: 1 servers");
        assert_eq!(describe(&Change::Delete), "deleted");
    }

    #[test]
    fn printable_escapes_every_non_printing_character() {
        assert_eq!(printable("plain text, \"quoted\" é ü 名"), "plain text, \"quoted\" é ü 名");
        assert!(matches!(printable("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[2J\u{7}\0\u{7f}\t\n\rb"), "a\\x1b[2J\\x07\\x00\\x7f\\x09\\x0a\\x0db");
        assert_eq!(
            printable("\u{85}\u{9f}\u{200b}\u{2028}\u{202e}\u{2066}\u{feff}x"),
            "\\u{85}\\u{9f}\\u{200b}\\u{2028}\\u{202e}\\u{2066}\\u{feff}x"
        );
        // Every char below 0x20, DEL and C1 is escaped.
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(printable(&c.to_string()).starts_with('\\'), "{c:?}");
        }
    }

    #[test]
    fn log_lines_carry_no_raw_control_character() {
        let who =
            Origin { api: "query", client: Some("127.0.0.1".into()), user: Some("a\u{1b}]0;x\u{7}\u{85}".into()) };
        let e = ApiError::not_found("upstream_not_found", "upstream \"x\u{1b}[2J\0\" not found");
        assert_eq!(
            refusal_line(&who, "x\u{1b}[2J\0", e.status, &e.text),
            "dynamic upstream change refused: client=127.0.0.1 user=\"a\\x1b]0;x\\x07\\u{85}\" api=query \
             upstream=\"x\\x1b[2J\\x00\": 404 upstream \"x\\x1b[2J\\x00\" not found"
        );
        assert_eq!(
            change_line(&who, "b\u{7f}", &Change::Delete),
            "dynamic upstream change: client=127.0.0.1 user=\"a\\x1b]0;x\\x07\\u{85}\" api=query upstream=\"b\\x7f\": deleted"
        );
    }

    #[test]
    fn refusal_line_quotes_odd_users() {
        let who = Origin { api: "rest", client: Some("::1".into()), user: Some("a b".into()) };
        let e = ApiError::not_found("upstream_not_found", "upstream \"x\" not found");
        assert_eq!(
            refusal_line(&who, "x", e.status, &e.text),
            "dynamic upstream change refused: client=::1 user=\"a b\" api=rest upstream=x: 404 upstream \"x\" not found"
        );
    }
}

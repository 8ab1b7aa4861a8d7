//! The dyups REST API: what `POST /upstream/NAME` bodies say, which names
//! are acceptable, and the text formats Tengine's dyups answers with.

use std::fmt::Write as _;

use crate::address::{shown, Address};
use crate::balancer::{chash_table_refusal, Balancer, MAX_CHASH_WEIGHT};
use crate::error::ApiError;
use crate::health::check_conf::{CheckConf, CheckConfBuilder};
use crate::health::tokens;
use crate::json::Json;
use crate::peer::{primary_weight, Param, ServerSpec};
use crate::render::PeerView;

/// Longest upstream name (a host name).
pub const MAX_UPSTREAM_NAME: usize = 255;

/// A whole upstream as a POST describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub balancer: Balancer,
    pub servers: Vec<ServerSpec>,
    /// The upstream's active health checks (`check ...;` lines).
    pub check: Option<CheckConf>,
}

/// The request routes of `dyups_interface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    List,
    Detail,
    Upstream(String),
    /// Usage of the module's shared zone.
    Status,
}

impl Route {
    /// `/list`, `/detail`, `/status`, `/upstream/NAME`; None for anything
    /// else. As Tengine's dyups reads them: the first segment in any case,
    /// and what follows `/list/` or `/detail/` ignored (hunt 34).
    pub fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix('/')?;
        let (first, tail) = match rest.split_once('/') {
            Some((first, tail)) => (first, Some(tail)),
            None => (rest, None),
        };
        let is = |name: &str| first.eq_ignore_ascii_case(name);
        if is("list") {
            Some(Route::List)
        } else if is("detail") {
            Some(Route::Detail)
        } else if is("status") {
            Some(Route::Status)
        } else if is("upstream") {
            tail.map(|name| Route::Upstream(name.to_string()))
        } else {
            None
        }
    }
}

/// A dyups upstream name must be usable as a `Host` header: letters,
/// digits, `.`, `-`, `_`, at most 255 bytes.
pub fn validate_upstream_name(name: &str) -> Result<(), ApiError> {
    // Labels separated by single dots: a name a Host header can carry.
    let ok = !name.is_empty()
        && name.len() <= MAX_UPSTREAM_NAME
        && name.split('.').all(|label| !label.is_empty())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "upstream name \"{}\" is not a valid host name (letters, digits, '.', '-', '_', at most {} bytes)",
                shown(name),
                MAX_UPSTREAM_NAME
            ),
        ))
    }
}

fn failed(text: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_body", format!("add server failed: {text}"))
}

/// One statement of an upstream body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    Server(ServerSpec),
    Balancer(Balancer),
}

/// The characters nginx's configuration syntax treats as whitespace.
const NGINX_WHITESPACE: [char; 4] = [' ', '\t', '\r', '\n'];

/// Parses one statement (without its `;`): `server ...` or a balancer.
pub fn parse_statement(statement: &str) -> Result<Option<Statement>, ApiError> {
    if let Some(c) = statement.chars().find(|c| c.is_control() && !NGINX_WHITESPACE.contains(c)) {
        return Err(failed(format!("control character {:?} in the body", c)));
    }
    let words: Vec<&str> = statement.split(NGINX_WHITESPACE).filter(|w| !w.is_empty()).collect();
    parse_words(&words)
}

/// Parses one statement's words: `server ...` or a balancer.
pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<Option<Statement>, ApiError> {
    let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
    let Some((&directive, args)) = words.split_first() else {
        return Ok(None);
    };
    if directive == "server" {
        return parse_server(args).map(|s| Some(Statement::Server(s)));
    }
    parse_balancer(directive, args).map(|b| Some(Statement::Balancer(b)))
}

/// Removes `#` comments (to the end of the line), as nginx's parser does;
/// a `#` inside a quoted word is kept.
pub fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quotes = Quotes::default();
    let mut comment = false;
    for c in text.chars() {
        if comment {
            comment = c != '\n';
        } else if c == '#' && !quotes.inside() {
            comment = true;
            continue;
        } else {
            quotes.step(c);
        }
        if !comment {
            out.push(c);
        }
    }
    out
}

/// Whether a scan of nginx configuration text is inside a quoted word.
#[derive(Default)]
pub struct Quotes {
    open: Option<char>,
    escaped: bool,
}

impl Quotes {
    pub fn inside(&self) -> bool {
        self.open.is_some()
    }

    /// Moves past `c`.
    pub fn step(&mut self, c: char) {
        match self.open {
            _ if self.escaped => self.escaped = false,
            _ if c == '\\' => self.escaped = true,
            Some(q) if c == q => self.open = None,
            None if c == '"' || c == '\'' => self.open = Some(c),
            _ => {}
        }
    }
}

/// Parses a body of nginx `upstream {}` statements:
/// `server ADDR [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N] [backup] [down];`,
/// at most one balancer statement (`least_conn;`, `ip_hash;`,
/// `hash KEY [consistent];`, `random [two [least_conn]];`) and the check
/// directives (`check ...;`, `check_http_send "...";`, ...). Words are
/// split as nginx does ([`tokens::statements`]: quotes, `\r\n`, `#`
/// comments at the start of a word).
pub fn parse_body(text: &str) -> Result<UpstreamSpec, ApiError> {
    let mut balancer: Option<Balancer> = None;
    let mut servers = Vec::new();
    let mut checks = CheckConfBuilder::default();
    let statements = tokens::marked_statements(text).map_err(|e| {
        if text.trim_start().starts_with('{') && Json::parse(text).is_ok() {
            failed("the body is JSON: send it with \"Content-Type: application/json\"")
        } else {
            failed(e.text)
        }
    })?;
    for (words, quoted) in statements {
        let directive = words.first().map_or("", String::as_str);
        if CheckConfBuilder::handles(directive) {
            checks.apply(directive, &words[1..]).map_err(|e| failed(e.text))?;
            continue;
        }
        if quoted {
            return Err(failed(format!(
                "quoted words are only allowed in check directives (\"{}\")",
                shown(directive)
            )));
        }
        match parse_words(&words)? {
            None => {}
            Some(Statement::Server(server)) => servers.push(server),
            Some(Statement::Balancer(parsed)) => {
                if let Some(previous) = &balancer {
                    return Err(failed(format!(
                        "more than one balancer (\"{}\" after \"{}\")",
                        shown(directive),
                        previous.directive_name()
                    )));
                }
                balancer = Some(parsed);
            }
        }
    }
    let check = checks.finish().map_err(|e| failed(e.text))?;
    finish(balancer.unwrap_or(Balancer::RoundRobin), servers, check)
}

pub fn finish(
    balancer: Balancer,
    servers: Vec<ServerSpec>,
    check: Option<CheckConf>,
) -> Result<UpstreamSpec, ApiError> {
    if servers.is_empty() {
        return Err(failed("no server given"));
    }
    if !balancer.allows_backup() {
        if let Some(s) = servers.iter().find(|s| s.backup) {
            return Err(failed(format!(
                "backup server {} is not allowed with the {} balancer",
                s.address,
                balancer.directive_name()
            )));
        }
    }
    if servers.iter().all(|s| s.backup) {
        return Err(failed("every server is a backup; at least one primary is needed"));
    }
    if let Balancer::Hash { consistent: true, .. } = balancer {
        check_chash_table(&servers)?;
    }
    Ok(UpstreamSpec { balancer, servers, check })
}

/// A body whose consistent-hash table would be larger than
/// [`MAX_CHASH_TABLE`](crate::balancer::MAX_CHASH_TABLE) is refused: a
/// worker may fail to allocate it (the upstream would answer 502 there),
/// and building it costs every worker time.
fn check_chash_table(servers: &[ServerSpec]) -> Result<(), ApiError> {
    let total = primary_weight(servers);
    if total <= MAX_CHASH_WEIGHT {
        return Ok(());
    }
    Err(failed(format!(
        "consistent hash needs 160 points of 16 bytes per unit of weight in every worker: {}",
        chash_table_refusal(total)
    )))
}

fn parse_server(args: &[&str]) -> Result<ServerSpec, ApiError> {
    let Some((&address, params)) = args.split_first() else {
        return Err(failed("\"server\" needs an address"));
    };
    let address = Address::parse(address).map_err(|e| failed(e.text))?;
    let mut spec = ServerSpec::new(address);
    let mut seen: Vec<&str> = Vec::new();
    for &param in params {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if seen.contains(&name) {
            return Err(failed(format!("server parameter \"{}\" is given twice", shown(name))));
        }
        seen.push(name);
        match (name, Param::from_name(name)) {
            ("backup", _) if value.is_empty() && !param.contains('=') => spec.backup = true,
            ("down", _) if value.is_empty() && !param.contains('=') => spec.down = true,
            (_, Some(p)) => {
                let v = p.parse_value(value).map_err(|e| failed(e.text))?;
                match p {
                    Param::Weight => spec.weight = v,
                    Param::MaxFails => spec.max_fails = v,
                    Param::FailTimeout => spec.fail_timeout = v,
                    Param::MaxConns => spec.max_conns = v,
                }
            }
            _ => return Err(failed(format!("invalid server parameter \"{}\"", shown(param)))),
        }
    }
    Ok(spec)
}

fn parse_balancer(directive: &str, args: &[&str]) -> Result<Balancer, ApiError> {
    let wrong_args = || failed(format!("invalid number of arguments in \"{}\"", shown(directive)));
    match directive {
        "least_conn" | "ip_hash" if !args.is_empty() => Err(wrong_args()),
        "least_conn" => Ok(Balancer::LeastConn),
        "ip_hash" => Ok(Balancer::IpHash),
        // As nginx's ngx_http_upstream_random(): at most two arguments,
        // "two", then "least_conn".
        "random" => match args {
            [] => Ok(Balancer::Random),
            ["two"] => Ok(Balancer::RandomTwo { least_conn: false }),
            ["two", "least_conn"] => Ok(Balancer::RandomTwo { least_conn: true }),
            [_, _, _, ..] => Err(wrong_args()),
            ["two", other] | [other, ..] => {
                Err(failed(format!("invalid parameter \"{}\" in \"random\"", shown(other))))
            }
        },
        "hash" => match args {
            [key] => Ok(Balancer::Hash { key: parse_hash_key(key)?, consistent: false }),
            [key, "consistent"] => Ok(Balancer::Hash { key: parse_hash_key(key)?, consistent: true }),
            [_, other] => Err(failed(format!("invalid parameter \"{}\" in \"hash\"", shown(other)))),
            _ => Err(wrong_args()),
        },
        "keepalive" => Err(failed(
            "\"keepalive\" is not supported for upstreams created at run time (cached connections are per worker and \
             would outlive the upstream)",
        )),
        _ => Err(failed(format!("unknown directive \"{}\"", shown(directive)))),
    }
}

/// One piece of a hash key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    Text(String),
    Variable(String),
}

/// Splits a hash key such as `$host$uri` or `x${arg_id}` into literal text
/// and variable names.
pub fn split_hash_key(key: &str) -> Result<Vec<KeyPart>, ApiError> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = key;
    while let Some(pos) = rest.find('$') {
        text.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, next) = if let Some(braced) = after.strip_prefix('{') {
            let end =
                braced.find('}').ok_or_else(|| failed(format!("unclosed '{{' in hash key \"{}\"", shown(key))))?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(failed(format!("invalid variable in hash key \"{}\"", shown(key))));
        }
        if !text.is_empty() {
            parts.push(KeyPart::Text(std::mem::take(&mut text)));
        }
        parts.push(KeyPart::Variable(name.to_ascii_lowercase()));
        rest = next;
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(KeyPart::Text(text));
    }
    if parts.iter().any(|p| matches!(p, KeyPart::Text(t) if t.contains(['{', '}']))) {
        return Err(failed(format!("'{{' and '}}' are only allowed as in ${{name}} in hash key \"{}\"", shown(key))));
    }
    Ok(parts)
}

fn parse_hash_key(key: &str) -> Result<String, ApiError> {
    // One nginx token: no whitespace (a JSON key "$uri consistent" must not
    // become `hash $uri consistent;`), no quotes or syntax; `{` and `}`
    // only as in `${name}`, checked by split_hash_key.
    if key.is_empty()
        || key.len() > 255
        || key.chars().any(|c| c.is_control() || c.is_whitespace() || "\"'#;\\".contains(c))
    {
        return Err(failed(format!("invalid hash key \"{}\"", shown(key))));
    }
    split_hash_key(key)?;
    Ok(key.to_string())
}

/// `{"servers":[{"server":"127.0.0.1:8088","weight":3,...}],"balancer":"least_conn"}`
///
/// Checked field by field, so that every error names the field.
pub fn parse_json_body(text: &str) -> Result<UpstreamSpec, ApiError> {
    let body = Json::parse(text).map_err(|e| failed(format!("invalid JSON body: {e}")))?;
    let Json::Object(fields) = &body else {
        return Err(failed("the JSON body must be an object"));
    };
    if let Some((key, _)) =
        fields.iter().find(|(k, _)| !["servers", "balancer", "hash_key", "check"].contains(&k.as_str()))
    {
        return Err(failed(format!("unknown field \"{}\"", shown(key))));
    }
    let text_field = |name: &str| -> Result<Option<&str>, ApiError> {
        match body.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(failed(format!("\"{name}\" must be a string"))),
        }
    };
    let balancer = match (text_field("balancer")?, text_field("hash_key")?) {
        (None | Some("round_robin") | Some("round-robin"), None) => Balancer::RoundRobin,
        (Some("least_conn"), None) => Balancer::LeastConn,
        (Some("ip_hash"), None) => Balancer::IpHash,
        (Some("random"), None) => Balancer::Random,
        (Some("random_two"), None) => Balancer::RandomTwo { least_conn: false },
        (Some("random_two_least_conn"), None) => Balancer::RandomTwo { least_conn: true },
        (Some(kind @ ("hash" | "consistent_hash")), Some(key)) => {
            Balancer::Hash { key: parse_hash_key(key)?, consistent: kind == "consistent_hash" }
        }
        (Some("hash" | "consistent_hash"), None) => return Err(failed("a hash balancer needs \"hash_key\"")),
        (_, Some(_)) => return Err(failed("\"hash_key\" goes with balancer \"hash\" or \"consistent_hash\"")),
        (Some(other), None) => return Err(failed(format!("unknown balancer \"{}\"", shown(other)))),
    };
    let servers = match body.get("servers") {
        Some(Json::Array(items)) => items.iter().map(json_server).collect::<Result<Vec<_>, _>>()?,
        _ => return Err(failed("\"servers\" must be an array of servers")),
    };
    let check = match body.get("check") {
        None | Some(Json::Null) => None,
        Some(check) => json_check(check)?,
    };
    finish(balancer, servers, check)
}

/// The JSON body's `"check"` object, read through the same
/// [`CheckConfBuilder`] as `check ...;` lines: `{"interval":3000,
/// "rise":2, "fall":5, "timeout":1000, "default_down":true, "type":"http",
/// "port":8080, "http_send":"GET / HTTP/1.0\r\n\r\n",
/// "expect_alive":["http_2xx"], "keepalive_requests":1}`.
fn json_check(check: &Json) -> Result<Option<CheckConf>, ApiError> {
    let Json::Object(fields) = check else {
        return Err(failed("\"check\" must be an object"));
    };
    let mut builder = CheckConfBuilder::default();
    let mut line = Vec::new();
    for (key, value) in fields {
        let number = || match value {
            Json::Unsigned(n) => Ok(n.to_string()),
            _ => Err(failed(format!("\"check\" field \"{key}\" must be a non-negative integer"))),
        };
        let text = || match value {
            Json::String(s) => Ok(s.clone()),
            _ => Err(failed(format!("\"check\" field \"{key}\" must be a string"))),
        };
        let apply = |builder: &mut CheckConfBuilder, directive: &str, args: &[String]| {
            builder.apply(directive, args).map_err(|e| failed(e.text))
        };
        match key.as_str() {
            "interval" | "rise" | "fall" | "timeout" | "port" => line.push(format!("{key}={}", number()?)),
            "type" => line.push(format!("type={}", text()?)),
            "default_down" => match value {
                Json::Bool(flag) => line.push(format!("default_down={flag}")),
                _ => return Err(failed("\"check\" field \"default_down\" must be true or false")),
            },
            "http_send" => apply(&mut builder, "check_http_send", &[text()?])?,
            "keepalive_requests" => apply(&mut builder, "check_keepalive_requests", &[number()?])?,
            "expect_alive" => {
                let classes = match value {
                    Json::Array(items) => items
                        .iter()
                        .map(|item| match item {
                            Json::String(s) => Ok(s.clone()),
                            _ => Err(failed("\"check\" field \"expect_alive\" must be an array of strings")),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => return Err(failed("\"check\" field \"expect_alive\" must be an array of strings")),
                };
                apply(&mut builder, "check_http_expect_alive", &classes)?;
            }
            _ => return Err(failed(format!("unknown \"check\" field \"{}\"", shown(key)))),
        }
    }
    builder.apply("check", &line).map_err(|e| failed(e.text))?;
    builder.finish().map_err(|e| failed(e.text))
}

fn json_server(item: &Json) -> Result<ServerSpec, ApiError> {
    let Json::Object(fields) = item else {
        return Err(failed("each server must be an object"));
    };
    let address = match item.get("server") {
        Some(Json::String(s)) => Address::parse(s).map_err(|e| failed(e.text))?,
        _ => return Err(failed("each server needs \"server\": \"ADDRESS\"")),
    };
    let mut spec = ServerSpec::new(address);
    for (key, value) in fields {
        match (key.as_str(), Param::from_name(key)) {
            ("server", _) => {}
            ("backup" | "down", _) => {
                let Json::Bool(flag) = value else {
                    return Err(failed(format!("\"{key}\" must be true or false")));
                };
                if key == "backup" {
                    spec.backup = *flag;
                } else {
                    spec.down = *flag;
                }
            }
            (_, Some(param)) => {
                // Only plain non-negative integers; anything else gets the
                // parameter's own range message.
                let number = match value {
                    Json::Unsigned(n) => n.to_string(),
                    _ => "invalid".to_string(),
                };
                let v = param.parse_value(&number).map_err(|e| failed(e.text))?;
                match param {
                    Param::Weight => spec.weight = v,
                    Param::MaxFails => spec.max_fails = v,
                    Param::FailTimeout => spec.fail_timeout = v,
                    Param::MaxConns => spec.max_conns = v,
                }
            }
            _ => return Err(failed(format!("unknown server field \"{}\"", shown(key)))),
        }
    }
    Ok(spec)
}

/// `server 127.0.0.1:8088 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0`
pub fn server_line(p: &PeerView) -> String {
    format!(
        "server {} weight={} max_conns={} max_fails={} fail_timeout={} backup={} down={}",
        p.name, p.weight, p.max_conns, p.max_fails, p.fail_timeout, p.backup as u8, p.down as u8
    )
}

/// The server lines of one upstream, each ending in `\n`.
pub fn upstream_lines(peers: &[PeerView]) -> String {
    let mut out = String::new();
    for p in peers {
        out.push_str(&server_line(p));
        out.push('\n');
    }
    out
}

/// `GET /detail`: per upstream its name, its server lines, an empty line.
pub fn detail(upstreams: &[(String, Vec<PeerView>)]) -> String {
    let mut out = String::new();
    for (name, peers) in upstreams {
        let _ = writeln!(out, "{name}");
        out.push_str(&upstream_lines(peers));
        out.push('\n');
    }
    out
}

/// `GET /list`: one name per line.
pub fn list(names: &[String]) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

/// Usage of the dyups zone, for `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ZoneUsage {
    pub zone: String,
    pub size: usize,
    pub pages: usize,
    pub free_pages: usize,
    pub upstreams: usize,
}

impl ZoneUsage {
    /// `zone NAME size=BYTES pages=N free_pages=N upstreams=N`
    pub fn text(&self) -> String {
        format!(
            "zone {} size={} pages={} free_pages={} upstreams={}\n",
            self.zone, self.size, self.pages, self.free_pages, self.upstreams
        )
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }
}

/// `GET /list` as JSON: `{"upstreams":["a","b"]}`.
pub fn list_json(names: &[String]) -> String {
    #[derive(serde::Serialize)]
    struct ListJson<'a> {
        upstreams: &'a [String],
    }
    serde_json::to_string(&ListJson { upstreams: names }).unwrap_or_default() + "\n"
}

/// `GET /detail` as JSON: `{"upstreams":[{"upstream":..., "peers":[...]}]}`.
pub fn detail_json(upstreams: &[crate::render::UpstreamView]) -> String {
    #[derive(serde::Serialize)]
    struct DetailJson<'a> {
        upstreams: &'a [crate::render::UpstreamView],
    }
    serde_json::to_string(&DetailJson { upstreams }).unwrap_or_default() + "\n"
}

/// The body as nginx's configuration would write it: what state files hold.
pub fn config_text(spec: &UpstreamSpec) -> String {
    let mut out = String::new();
    if let Some(directive) = spec.balancer.directive() {
        let _ = writeln!(out, "{directive};");
    }
    for s in &spec.servers {
        let _ = write!(
            out,
            "server {} weight={} max_fails={} fail_timeout={}",
            crate::state::config_word(&s.address.to_string()),
            s.weight,
            s.max_fails,
            s.fail_timeout
        );
        if s.max_conns != 0 {
            let _ = write!(out, " max_conns={}", s.max_conns);
        }
        if s.backup {
            out.push_str(" backup");
        }
        if s.down {
            out.push_str(" down");
        }
        out.push(';');
        if let Some(id) = s.id {
            let _ = write!(out, " {}{id}", crate::plus::ids::MARK);
        }
        out.push('\n');
    }
    if let Some(check) = &spec.check {
        out.push_str(&check.config_text());
    }
    out
}

/// The warnings for run-time upstreams' hash keys (`keys`: each upstream's
/// name and key) that name variables `known` does not know: one per such
/// variable, naming the first [`KEY_UPSTREAMS_NAMED`] upstreams whose keys
/// name it (nginx takes an unknown variable as empty for every request).
pub fn unknown_key_variables(keys: &[(String, String)], known: impl Fn(&str) -> bool) -> Vec<String> {
    // Each unknown variable, with the upstreams whose keys name it.
    let mut unknown: Vec<(String, Vec<&str>)> = Vec::new();
    for (upstream, key) in keys {
        for part in split_hash_key(key).unwrap_or_default() {
            let KeyPart::Variable(var) = part else { continue };
            if known(&var) {
                continue;
            }
            match unknown.iter_mut().find(|(seen, _)| *seen == var) {
                // A key may name a variable twice.
                Some((_, upstreams)) if upstreams.last() == Some(&upstream.as_str()) => {}
                Some((_, upstreams)) => upstreams.push(upstream),
                None => unknown.push((var, vec![upstream])),
            }
        }
    }
    unknown.iter().map(|(var, upstreams)| unknown_variable_text(var, upstreams)).collect()
}

/// How many upstreams a warning of [`unknown_key_variables`] names.
pub const KEY_UPSTREAMS_NAMED: usize = 10;

fn unknown_variable_text(var: &str, upstreams: &[&str]) -> String {
    let mut named: Vec<String> = upstreams.iter().take(KEY_UPSTREAMS_NAMED).map(|u| format!("\"{u}\"")).collect();
    if upstreams.len() > KEY_UPSTREAMS_NAMED {
        named.push(format!("and {} more", upstreams.len() - KEY_UPSTREAMS_NAMED));
    }
    let (whose, those) =
        if upstreams.len() == 1 { ("key of run-time upstream", "it") } else { ("keys of run-time upstreams", "them") };
    format!(
        "dynamic upstream: the variable \"${var}\" in the hash {whose} {} is not defined by this configuration: \
         nginx takes it as empty for every request; define it again, or POST {those} with another key",
        named.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        parse_body(body).unwrap_err().text
    }

    #[test]
    fn the_dyups_example_body() {
        let spec = parse_body(
            "server 127.0.0.1:8088;server 127.0.0.1:8089 weight=3 max_fails=2 fail_timeout=5 max_conns=10;\
             server 127.0.0.1:18089 backup;server unix:/tmp/app.sock down;",
        )
        .unwrap();
        assert_eq!(spec.balancer, Balancer::RoundRobin);
        assert_eq!(spec.servers.len(), 4);
        let s = &spec.servers[1];
        assert_eq!((s.weight, s.max_fails, s.fail_timeout, s.max_conns), (3, 2, 5, 10));
        assert!(spec.servers[2].backup);
        assert!(spec.servers[3].down);
        assert_eq!(spec.servers[3].address.to_string(), "unix:/tmp/app.sock");
    }

    #[test]
    fn whitespace_and_balancers() {
        let spec = parse_body("\n  ip_hash ;\n server   127.0.0.1:1 ;\n\n").unwrap();
        assert_eq!(spec.balancer, Balancer::IpHash);
        let spec = parse_body("hash $host$uri consistent; server 127.0.0.1:1;").unwrap();
        assert_eq!(spec.balancer, Balancer::Hash { key: "$host$uri".into(), consistent: true });
        assert_eq!(
            parse_body("least_conn; server 127.0.0.1:1 backup; server 127.0.0.1:2;").unwrap().balancer,
            Balancer::LeastConn
        );
        assert_eq!(parse_body("random; server 127.0.0.1:1;").unwrap().balancer, Balancer::Random);
    }

    #[test]
    fn random_two_as_nginx_takes_it() {
        let balancer = |body: &str| parse_body(&format!("{body} server 127.0.0.1:1;")).map(|s| s.balancer);
        assert_eq!(balancer("random two;").unwrap(), Balancer::RandomTwo { least_conn: false });
        assert_eq!(balancer("random\ttwo  least_conn ;").unwrap(), Balancer::RandomTwo { least_conn: true });
        for (body, reason) in [
            ("random one;", "invalid parameter \"one\" in \"random\""),
            ("random least_conn;", "invalid parameter \"least_conn\" in \"random\""),
            ("random two most_conn;", "invalid parameter \"most_conn\" in \"random\""),
            ("random TWO;", "invalid parameter \"TWO\" in \"random\""),
            ("random two least_conn extra;", "invalid number of arguments in \"random\""),
            ("random one two three;", "invalid number of arguments in \"random\""),
            ("random two; random;", "more than one balancer (\"random\" after \"random\")"),
        ] {
            assert_eq!(balancer(body).unwrap_err().text, format!("add server failed: {reason}"), "{body}");
        }
        assert!(balancer("random two least_conn; server 127.0.0.1:2 backup;")
            .unwrap_err()
            .text
            .contains("not allowed with the random balancer"));
        let json = |name: &str| {
            parse_json_body(&format!(r#"{{"servers":[{{"server":"127.0.0.1:1"}}],"balancer":"{name}"}}"#))
                .map(|s| s.balancer)
        };
        assert_eq!(json("random_two").unwrap(), Balancer::RandomTwo { least_conn: false });
        assert_eq!(json("random_two_least_conn").unwrap(), Balancer::RandomTwo { least_conn: true });
        assert_eq!(json("random two").unwrap_err().text, "add server failed: unknown balancer \"random two\"");
        for body in ["random two;", "random two least_conn;"] {
            let spec = parse_body(&format!("{body} server 127.0.0.1:1 weight=2;")).unwrap();
            let text = config_text(&spec);
            assert!(text.starts_with(&format!("{body}\n")), "{text}");
            assert_eq!(parse_body(&text).unwrap(), spec);
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        assert_eq!(err("aaserver 127.0.0.1:1;"), "add server failed: unknown directive \"aaserver\"");
        assert_eq!(
            err("ip_hash aaa; server 127.0.0.1:1;"),
            "add server failed: invalid number of arguments in \"ip_hash\""
        );
        assert_eq!(err(""), "add server failed: no server given");
        assert_eq!(err("server 127.0.0.1:1"), "add server failed: missing ';' after \"server 127.0.0.1:1\"");
        assert!(err("server 127.0.0.1:1 weight=0;").starts_with("add server failed: weight must be"));
        assert!(err("server 127.0.0.1:1 color=red;").contains("invalid server parameter"));
        assert!(err("server 127.0.0.1:1 backup=1;").contains("invalid server parameter"));
        assert!(err("server example.com:80;").contains("host name"));
        assert!(err("ip_hash; server 127.0.0.1:1; server 127.0.0.1:2 backup;").contains("not allowed with the ip_hash"));
        assert!(err("keepalive 8; server 127.0.0.1:1;").contains("keepalive"));
        assert!(err("ip_hash; least_conn; server 127.0.0.1:1;").contains("more than one balancer"));
        assert!(err("server 127.0.0.1:1 backup;").contains("at least one primary"));
        assert!(err("hash $; server 127.0.0.1:1;").contains("invalid variable"));
        assert!(err("hash a b; server 127.0.0.1:1;").contains("invalid parameter"));
        assert!(err("hash a{b; server 127.0.0.1:1;").contains("blocks are not allowed here"));
        assert!(err("hash a}b; server 127.0.0.1:1;").contains("only allowed as in"));
        assert!(err("server\x0c127.0.0.1:1;").contains("control character"));
        assert!(err("server 127.0.0.1:1;\x0b").contains("control character"));
        assert_eq!(parse_body("server\t127.0.0.1:1\r\n;").unwrap().servers.len(), 1);
        let json_key = r#"{"servers":[{"server":"127.0.0.1:1"}],"balancer":"hash","hash_key":"$uri consistent"}"#;
        assert!(parse_json_body(json_key).unwrap_err().text.contains("invalid hash key"));
        assert_eq!(parse_body("server 127.0.0.1:1; # main\n# all\nserver 127.0.0.1:2;").unwrap().servers.len(), 2);
    }

    #[test]
    fn consistent_hash_tables_are_bounded() {
        let body = |weight: u64, n: usize| {
            format!(
                "hash $uri consistent;{}",
                (1..=n).map(|p| format!("server 127.0.0.1:{p} weight={weight};")).collect::<String>()
            )
        };
        // 26214 units of weight: 26214 * 160 points of 16 bytes, under 64 MiB.
        assert!(parse_body(&body(26214, 1)).is_ok());
        assert!(parse_body(&body(262, 100)).is_ok());
        assert_eq!(
            err(&body(26215, 1)),
            "add server failed: consistent hash needs 160 points of 16 bytes per unit of weight in every worker: \
             total weight 26215 would take 65 MiB, more than the 64 MiB allowed (total weight at most 26214)"
        );
        assert!(err(&body(1_000_000, 100)).contains("total weight 100000000 would take 244141 MiB"));
        let json =
            r#"{"servers":[{"server":"127.0.0.1:1","weight":30000}],"balancer":"consistent_hash","hash_key":"$uri"}"#;
        assert!(parse_json_body(json).unwrap_err().text.contains("more than the 64 MiB allowed"));
        // Down servers have their points too; other balancers have no table.
        assert!(err(&format!("{} server 127.0.0.1:9 weight=26214 down;", body(1, 1))).contains("total weight 26215"));
        assert!(parse_body("hash $uri; server 127.0.0.1:1 weight=1000000;").is_ok());
        assert!(parse_body("server 127.0.0.1:1 weight=1000000;").is_ok());
        // The state file reader refuses it too, naming the line.
        let conf = format!("upstream a {{\n{}\n}}\n", body(26215, 1));
        let e = crate::state::parse_dyups_conf(&conf).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.text.contains("more than the 64 MiB allowed"), "{}", e.text);
    }

    #[test]
    fn hash_keys_split_into_parts() {
        assert_eq!(
            split_hash_key("a$host${uri}b").unwrap(),
            vec![
                KeyPart::Text("a".into()),
                KeyPart::Variable("host".into()),
                KeyPart::Variable("uri".into()),
                KeyPart::Text("b".into())
            ]
        );
        assert_eq!(split_hash_key("$Arg_ID").unwrap(), vec![KeyPart::Variable("arg_id".into())]);
    }

    #[test]
    fn json_bodies() {
        let spec =
            parse_json_body(r#"{"servers":[{"server":"127.0.0.1:8088","weight":3}],"balancer":"least_conn"}"#).unwrap();
        assert_eq!(spec.balancer, Balancer::LeastConn);
        assert_eq!(spec.servers[0].weight, 3);
        let spec =
            parse_json_body(r#"{"servers":[{"server":"127.0.0.1:1"}],"balancer":"consistent_hash","hash_key":"$uri"}"#)
                .unwrap();
        assert_eq!(spec.balancer, Balancer::Hash { key: "$uri".into(), consistent: true });
        for bad in [
            r#"{"servers":[]}"#,
            r#"{"servers":[{"server":"x.example"}]}"#,
            r#"{"servers":[{"server":"127.0.0.1:1","weight":0}]}"#,
            r#"{"servers":[{"server":"127.0.0.1:1"}],"balancer":"fastest"}"#,
            r#"{"servers":[{"server":"127.0.0.1:1","colour":1}]}"#,
            r#"not json"#,
            r#"{"servers":[{"server":"127.0.0.1:1","max_fails":-1}]}"#,
            r#"{"servers":[{"server":"127.0.0.1:1","weight":"3"}]}"#,
            r#"{"servers":[{"server":"127.0.0.1:1","backup":1}]}"#,
        ] {
            assert!(parse_json_body(bad).unwrap_err().text.starts_with("add server failed: "), "{bad}");
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = |body: &str| parse_json_body(body).unwrap_err().text;
        assert_eq!(
            e(r#"{"servers":[{"server":"127.0.0.1:1","max_fails":-1}]}"#),
            "add server failed: max_fails must be an integer from 0 to 1000000"
        );
        assert_eq!(
            e(r#"{"servers":[{"server":"127.0.0.1:1","weight":1.5}]}"#),
            "add server failed: weight must be an integer from 1 to 1000000"
        );
        assert_eq!(
            e(r#"{"servers":[{"server":"127.0.0.1:1","backup":1}]}"#),
            "add server failed: \"backup\" must be true or false"
        );
        assert!(e(r#"{"servers":[{"server":"127.0.0.1:1","fail_timeout":"soon"}]}"#).contains("fail_timeout must be"));
    }

    #[test]
    fn names() {
        assert!(validate_upstream_name("dyhost-1.example_x").is_ok());
        for bad in ["", "a/b", "..x/", "a;b", "a b", "ü", &"a".repeat(256), "...", "a..b", ".a", "a."] {
            assert_eq!(validate_upstream_name(bad).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/list"), Some(Route::List));
        assert_eq!(Route::parse("/detail"), Some(Route::Detail));
        assert_eq!(Route::parse("/upstream/a"), Some(Route::Upstream("a".into())));
        assert_eq!(Route::parse("/status"), Some(Route::Status));
        assert_eq!(Route::parse("/other"), None);
    }

    #[test]
    fn formats() {
        let p = crate::render::test_peer("127.0.0.1:8088");
        assert_eq!(
            server_line(&p),
            "server 127.0.0.1:8088 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0"
        );
        assert_eq!(
            detail(&[("host1".into(), vec![p.clone()])]),
            "host1\nserver 127.0.0.1:8088 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n\n"
        );
        assert_eq!(list(&["a".into(), "b".into()]), "a\nb\n");
    }

    #[test]
    fn config_text_round_trips() {
        let spec =
            parse_body("hash $uri consistent; server 127.0.0.1:1 weight=2 max_conns=3; server 127.0.0.1:2 down;")
                .unwrap();
        assert_eq!(parse_body(&config_text(&spec)).unwrap(), spec);
    }

    #[test]
    fn check_lines_in_a_body() {
        // Tengine's dyups test body.
        let spec = parse_body(
            "server 127.0.0.1:8088; check interval=1000 rise=2 fall=3 timeout=1000 default_down=true type=tcp;",
        )
        .unwrap();
        let check = spec.check.clone().unwrap();
        assert_eq!((check.interval_ms, check.rise, check.fall, check.timeout_ms), (1000, 2, 3, 1000));
        assert!(check.default_down);
        // A quoted request may hold `;`, `#` and `}`; `\r\n` are CR LF.
        let spec = parse_body(
            "server 127.0.0.1:1; check type=http; check_http_send \"GET /a;b#c} HTTP/1.0\\r\\n\\r\\n\"; \
             check_http_expect_alive http_2xx;",
        )
        .unwrap();
        assert_eq!(spec.check.as_ref().unwrap().send, "GET /a;b#c} HTTP/1.0\r\n\r\n");
        assert_eq!(parse_body(&config_text(&spec)).unwrap(), spec);
        assert_eq!(
            config_text(&spec),
            "server 127.0.0.1:1 weight=1 max_fails=1 fail_timeout=10;\n\
             check interval=30000 rise=2 fall=5 timeout=1000 default_down=true type=http;\n\
             check_http_send \"GET /a;b#c} HTTP/1.0\\r\\n\\r\\n\";\n\
             check_http_expect_alive http_2xx;\n"
        );
    }

    #[test]
    fn hostile_check_lines() {
        for (body, text) in [
            ("server 127.0.0.1:1; check interval=0;", "add server failed: interval in \"check\" must be"),
            ("server 127.0.0.1:1; check type=mysql;", "add server failed: "),
            ("server 127.0.0.1:1; check; check;", "add server failed: "),
            (
                "server 127.0.0.1:1; check_http_send \"GET / HTTP/1.0\\r\\n\\r\\n\";",
                "add server failed: \"check_http_send\" has no effect",
            ),
            ("server 127.0.0.1:1; check rise=2 rise=3;", "add server failed: parameter \"rise\" is given twice"),
            ("server 127.0.0.1:1; check_http_send \"GET /;", "add server failed: unexpected end of the body"),
            ("server 127.0.0.1:1; check_keepalive_requests 2;", "add server failed: "),
        ] {
            assert!(err(body).starts_with(text), "{body}: {}", err(body));
        }
    }

    #[test]
    fn json_check_object() {
        let spec = parse_json_body(
            r#"{"servers":[{"server":"127.0.0.1:1"}],"check":{"interval":1000,"rise":2,"fall":3,"timeout":500,
                "default_down":false,"type":"http","port":8080,"http_send":"HEAD / HTTP/1.0\r\n\r\n",
                "expect_alive":["http_2xx","http_4xx"]}}"#,
        )
        .unwrap();
        let body = parse_body(
            "server 127.0.0.1:1; check interval=1000 rise=2 fall=3 timeout=500 default_down=false type=http port=8080; \
             check_http_send \"HEAD / HTTP/1.0\\r\\n\\r\\n\"; check_http_expect_alive http_2xx http_4xx;",
        )
        .unwrap();
        assert_eq!(spec, body);
        let json_err = |body: &str| parse_json_body(body).unwrap_err().text;
        for (body, text) in [
            (r#"{"servers":[{"server":"127.0.0.1:1"}],"check":[]}"#, "add server failed: \"check\" must be an object"),
            (
                r#"{"servers":[{"server":"127.0.0.1:1"}],"check":{"rise":"2"}}"#,
                "add server failed: \"check\" field \"rise\" must be a non-negative integer",
            ),
            (
                r#"{"servers":[{"server":"127.0.0.1:1"}],"check":{"bogus":1}}"#,
                "add server failed: unknown \"check\" field \"bogus\"",
            ),
            (r#"{"servers":[{"server":"127.0.0.1:1"}],"check":{"type":"ajp"}}"#, "add server failed: "),
            (r#"{"servers":[{"server":"127.0.0.1:1"}],"check":{"rise":0}}"#, "add server failed: rise in \"check\""),
        ] {
            assert!(json_err(body).starts_with(text), "{body}: {}", json_err(body));
        }
    }

    #[test]
    fn unknown_key_variables_group_by_variable() {
        let keys: Vec<(String, String)> =
            [("h", "$mykey"), ("twice", "$mykey$MYKEY-$arg_k"), ("other", "${gone}x$uri"), ("fine", "$arg_k$uri")]
                .iter()
                .map(|(u, k)| (u.to_string(), k.to_string()))
                .collect();
        let known = |var: &str| var == "uri" || var.starts_with("arg_");
        assert_eq!(
            unknown_key_variables(&keys, known),
            [
                "dynamic upstream: the variable \"$mykey\" in the hash keys of run-time upstreams \"h\", \"twice\" is \
                 not defined by this configuration: nginx takes it as empty for every request; define it again, or \
                 POST them with another key",
                "dynamic upstream: the variable \"$gone\" in the hash key of run-time upstream \"other\" is not \
                 defined by this configuration: nginx takes it as empty for every request; define it again, or POST \
                 it with another key",
            ]
        );
        assert!(unknown_key_variables(&keys, |_| true).is_empty());
        let many: Vec<(String, String)> = (0..12).map(|i| (format!("u{i}"), "$gone".to_string())).collect();
        let text = &unknown_key_variables(&many, |_| false)[0];
        assert!(text.contains("\"u9\", and 2 more is not defined"), "{text}");
        assert!(!text.contains("\"u10\""), "{text}");
    }
}

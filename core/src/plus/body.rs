//! The server objects clients send (`POST`, `PATCH`, and the `PUT`
//! extension's array), validated field by field as the module's other APIs
//! validate them. Parameters this module cannot honour on open-source
//! nginx (`slow_start` other than 0, `route`, `service`, `drain`) are
//! refused with a 400 that says so, rather than ignored.

use std::collections::{HashMap, HashSet};

use crate::address::{shown, Address};
use crate::json::Json;
use crate::peer::{Param, PeerParams, ServerSpec};
use crate::render::PeerView;

use super::PlusError;

/// The fields of one server object; `None` where it did not give one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerFields {
    pub id: Option<u64>,
    pub server: Option<Address>,
    pub params: PeerParams,
    pub backup: Option<bool>,
    pub down: Option<bool>,
}

impl ServerFields {
    /// Every field of `peer` as GET lists it (but its ID and address).
    pub fn listed(peer: &PeerView) -> ServerFields {
        ServerFields {
            params: PeerParams {
                weight: u64::try_from(peer.weight).ok(),
                max_fails: Some(peer.max_fails),
                fail_timeout: u64::try_from(peer.fail_timeout).ok(),
                max_conns: Some(peer.max_conns),
            },
            backup: Some(peer.backup),
            down: Some(peer.down),
            ..ServerFields::default()
        }
    }

    /// The server to add: nginx's defaults for what was not given.
    fn into_spec(self) -> Result<ServerSpec, PlusError> {
        let address = self.server.ok_or_else(|| PlusError::format("missing \"server\" argument"))?;
        let mut spec = ServerSpec::new(address).with_params(&self.params);
        spec.backup = self.backup.unwrap_or(false);
        spec.down = self.down.unwrap_or(false);
        Ok(spec)
    }
}

/// A request body as JSON: 415 `JsonError` if it is not.
pub fn parse_json(body: &[u8]) -> Result<Json, PlusError> {
    let text = std::str::from_utf8(body).map_err(|_| PlusError::new(415, "JsonError", "the body is not UTF-8"))?;
    Json::parse(text).map_err(|e| PlusError::new(415, "JsonError", format!("JSON error: {e}")))
}

/// `POST .../servers`: one server object; `server` is required.
pub fn post(body: &[u8]) -> Result<ServerSpec, PlusError> {
    fields(&parse_json(body)?)?.into_spec()
}

/// `PATCH .../servers/ID`: any subset of the fields.
pub fn patch(body: &[u8]) -> Result<ServerFields, PlusError> {
    fields(&parse_json(body)?)
}

/// [`patch`] of the server `id`, where a `server` that is no address may
/// be how GET lists it (`spellings`): the configuration's spelling of its
/// address (`localhost:8080`, `127.0.0.1:08080`), or, for a server nginx
/// resolved, its `server` line (no address then: the server's own). A PATCH
/// of what GET lists was refused as a host name (review 54).
pub fn patch_spelled(body: &[u8], spellings: &Spellings, id: u64) -> Result<ServerFields, PlusError> {
    fields_spelled(&parse_json(body)?, Some(spellings), Some(id))
}

/// A configuration's spellings of its servers (`server localhost:8080;`),
/// as the listings show them in `server`: each text with the IDs and
/// addresses of the peers nginx made of it, so that a PUT of what GET
/// lists names them (hunt 36: a host name was refused).
#[derive(Default)]
pub struct Spellings {
    /// By text: the peers spelled so, (ID, address) each, in list order
    /// (a table: one scan per server made a PUT of N spelled servers
    /// O(N²), review 33).
    by_text: HashMap<String, Vec<(Option<u64>, Address)>>,
    /// The servers nginx resolves (`server NAME resolve`), by the text
    /// GET lists them as (`NAME:PORT`), with their values as listed: a PUT
    /// keeps them, so an object of the body that names one as listed means
    /// "kept" (review 33: it was refused as a host name).
    resolved: HashMap<String, ServerFields>,
}

impl Spellings {
    /// A peer listed as `text` (its configuration's spelling), with `id`,
    /// at `address`.
    pub fn add(&mut self, text: String, id: Option<u64>, address: Address) {
        self.by_text.entry(text).or_default().push((id, address));
    }

    /// A peer nginx resolved from the `server` line GET lists as `text`,
    /// with the values it lists (those of its line).
    pub fn add_resolved(&mut self, text: String, listed: ServerFields) {
        self.resolved.insert(text, listed);
    }

    /// The listed values of the resolved server `item` names by its
    /// `server` text, if it names one.
    fn resolved_named_by(&self, item: &Json) -> Option<(&str, &ServerFields)> {
        let Json::Object(entries) = item else { return None };
        let text = entries.iter().find_map(|(key, value)| match (key.as_str(), value) {
            ("server", Json::String(text)) => Some(text.as_str()),
            _ => None,
        })?;
        self.resolved.get_key_value(text).map(|(text, listed)| (text.as_str(), listed))
    }

    /// The address `text` (not an address itself) names: the peer of that
    /// ID, or the only peer spelled so; None if no peer is spelled so.
    fn address(&self, text: &str, id: Option<u64>) -> Option<Result<Address, PlusError>> {
        let spelled = self.by_text.get(text)?;
        if let Some((_, address)) = spelled.iter().find(|(peer_id, _)| id.is_some() && *peer_id == id) {
            return Some(Ok(address.clone()));
        }
        match spelled.as_slice() {
            [(_, address)] => Some(Ok(address.clone())),
            many => Some(Err(PlusError::new(
                400,
                "UpstreamBadAddress",
                format!(
                    "server \"{}\" names {} servers of the configuration: give each one's \"id\" as listed, or its \
                     address",
                    shown(text),
                    many.len()
                ),
            ))),
        }
    }
}

/// `PUT .../servers`: the complete, non-empty list; no address twice.
pub fn put(body: &[u8]) -> Result<Vec<ServerSpec>, PlusError> {
    put_spelled(body, &Spellings::default())
}

/// [`put`], where a `server` that is no address may be one of `spellings`.
pub fn put_spelled(body: &[u8], spellings: &Spellings) -> Result<Vec<ServerSpec>, PlusError> {
    let Json::Array(items) = parse_json(body)? else {
        return Err(PlusError::format("the body must be a JSON array of server objects"));
    };
    if items.is_empty() {
        return Err(PlusError::format("the server list is empty: an upstream needs at least one server"));
    }
    let mut servers: Vec<ServerSpec> = Vec::with_capacity(items.len());
    // The addresses so far, hashed: a scan of the earlier servers per
    // server cost O(N²) for a list of tens of thousands.
    let mut addresses: HashSet<Address> = HashSet::with_capacity(items.len());
    let mut resolved_kept = false;
    for item in &items {
        if let Some((text, listed)) = spellings.resolved_named_by(item) {
            keep_as_listed(item, text, listed)?;
            resolved_kept = true;
            continue;
        }
        let spec = fields_spelled(item, Some(spellings), None)?.into_spec()?;
        if !addresses.insert(spec.address.clone()) {
            return Err(PlusError::format(format!("server \"{}\" is given twice", spec.address)));
        }
        servers.push(spec);
    }
    // With resolved servers kept, whether a primary is left is the lists'
    // question (nginx may resolve the name to nothing).
    if !resolved_kept && servers.iter().all(|s| s.backup) {
        return Err(PlusError::format("every server is a backup: at least one primary server is needed"));
    }
    Ok(servers)
}

/// Checks that `item`, which names the resolved server `text`, gives it
/// the values it is listed with: a PUT cannot change a server nginx
/// resolves (409, as a PATCH of it).
fn keep_as_listed(item: &Json, text: &str, listed: &ServerFields) -> Result<(), PlusError> {
    let Json::Object(entries) = item else { return Ok(()) };
    let others: Vec<(String, Json)> = entries.iter().filter(|(key, _)| key != "server").cloned().collect();
    let given = fields(&Json::Object(others))?;
    let params = [Param::Weight, Param::MaxFails, Param::FailTimeout, Param::MaxConns];
    let differs = params.into_iter().find_map(|param| {
        let value = param.get(&given.params)?;
        (Some(value) != param.get(&listed.params)).then_some(param.name())
    });
    let differs = differs
        .or_else(|| given.backup.filter(|&b| Some(b) != listed.backup).map(|_| "backup"))
        .or_else(|| given.down.filter(|&d| Some(d) != listed.down).map(|_| "down"));
    match differs {
        None => Ok(()),
        Some(field) => Err(PlusError::new(
            409,
            "ServerResolved",
            format!(
                "server \"{}\" is resolved by nginx (server ... resolve): a PUT keeps it as it is, and cannot change its \
                 \"{field}\"; change the configuration's server line instead",
                shown(text)
            ),
        )),
    }
}

/// The fields of one server object.
pub fn fields(json: &Json) -> Result<ServerFields, PlusError> {
    fields_spelled(json, None, None)
}

/// [`fields`], where a `server` that is no address may be one of
/// `spellings` (named with the object's `id`).
fn fields_spelled(json: &Json, spellings: Option<&Spellings>, id: Option<u64>) -> Result<ServerFields, PlusError> {
    let Json::Object(entries) = json else {
        return Err(PlusError::format("a server must be a JSON object"));
    };
    let mut out = ServerFields::default();
    let mut spelled: Option<(&str, crate::ApiError)> = None;
    for (key, value) in entries {
        if matches!(value, Json::Array(_) | Json::Object(_)) {
            return Err(PlusError::format(format!("nested object or list in \"{}\"", shown(key))));
        }
        match key.as_str() {
            "id" => out.id = Some(unsigned(key, value)?),
            "server" => {
                let Json::String(text) = value else { return Err(invalid(key)) };
                match Address::parse(text) {
                    Ok(address) => out.server = Some(address),
                    Err(e) if spellings.is_none() => return Err(PlusError::new(400, "UpstreamBadAddress", e.text)),
                    Err(e) => spelled = Some((text, e)),
                }
            }
            "backup" => out.backup = Some(flag(key, value)?),
            "down" => out.down = Some(flag(key, value)?),
            "slow_start" => {
                if seconds(key, value, "UpstreamBadSlowStart")? != 0 {
                    return Err(unsupported("UpstreamBadSlowStart", "slow_start"));
                }
            }
            "route" => match value {
                Json::String(s) if s.is_empty() => {}
                Json::String(_) => return Err(unsupported("UpstreamBadRoute", "route")),
                _ => return Err(invalid(key)),
            },
            "service" => return Err(unsupported("UpstreamBadService", "service")),
            "drain" => {
                if flag(key, value)? {
                    return Err(unsupported("UpstreamConfFormatError", "drain"));
                }
            }
            name => {
                let Some(param) = Param::from_name(name) else {
                    return Err(PlusError::format(format!("unknown parameter \"{}\"", shown(name))));
                };
                let code = match param {
                    Param::Weight => "UpstreamBadWeight",
                    Param::MaxFails => "UpstreamBadMaxFails",
                    Param::FailTimeout => "UpstreamBadFailTimeout",
                    Param::MaxConns => "UpstreamBadMaxConns",
                };
                let text = match (param, value) {
                    (Param::FailTimeout, Json::String(s)) => s.clone(),
                    (_, Json::Unsigned(n)) => n.to_string(),
                    (_, Json::OtherNumber(n)) => n.clone(),
                    _ => return Err(invalid(key)),
                };
                let v = param.parse_value(&text).map_err(|e| PlusError::new(400, code, e.text))?;
                param.set(&mut out.params, v);
            }
        }
    }
    if let (Some((text, e)), Some(spellings)) = (spelled, spellings) {
        // Named with the object's `id`, wherever it stands in the object
        // (or the path's).
        out.server = match spellings.address(text, out.id.or(id)) {
            Some(address) => Some(address?),
            None if spellings.resolved.contains_key(text) => None,
            None => return Err(PlusError::new(400, "UpstreamBadAddress", e.text)),
        };
    }
    Ok(out)
}

fn invalid(key: &str) -> PlusError {
    PlusError::format(format!("invalid \"{}\" value", shown(key)))
}

fn unsupported(code: &str, what: &str) -> PlusError {
    PlusError::new(400, code, format!("\"{what}\" is not supported by this module (NGINX Plus only)"))
}

fn flag(key: &str, value: &Json) -> Result<bool, PlusError> {
    match value {
        Json::Bool(b) => Ok(*b),
        _ => Err(invalid(key)),
    }
}

fn unsigned(key: &str, value: &Json) -> Result<u64, PlusError> {
    match value {
        Json::Unsigned(n) => Ok(*n),
        _ => Err(invalid(key)),
    }
}

/// A time as NGINX Plus writes it (`"10s"`, `"1m"`) or a number of seconds.
fn seconds(key: &str, value: &Json, code: &str) -> Result<u64, PlusError> {
    let text = match value {
        Json::String(s) => s.clone(),
        Json::Unsigned(n) => n.to_string(),
        _ => return Err(invalid(key)),
    };
    crate::peer::parse_seconds(&text)
        .ok_or_else(|| PlusError::new(400, code, format!("invalid \"{}\" value \"{}\"", shown(key), shown(&text))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(result: Result<impl std::fmt::Debug, PlusError>) -> (u16, String, String) {
        let e = result.unwrap_err();
        (e.status, e.code, e.text)
    }

    #[test]
    fn post_takes_defaults() {
        let s = post(br#"{"server":"127.0.0.1:8081"}"#).unwrap();
        assert_eq!(s, ServerSpec::new(Address::parse("127.0.0.1:8081").unwrap()));
        let s = post(br#"{"server":"10.0.0.1","weight":5,"max_conns":7,"max_fails":0,"fail_timeout":"1m","slow_start":"0s","route":"","backup":true,"down":true,"drain":false,"id":3}"#).unwrap();
        assert_eq!(s.address.to_string(), "10.0.0.1:80");
        assert_eq!((s.weight, s.max_conns, s.max_fails, s.fail_timeout, s.backup, s.down), (5, 7, 0, 60, true, true));
        assert_eq!(post(br#"{"server":"10.0.0.1","fail_timeout":30}"#).unwrap().fail_timeout, 30);
    }

    #[test]
    fn every_field_is_validated() {
        let cases: [(&[u8], u16, &str); 21] = [
            (b"{", 415, "JsonError"),
            (b"\xff", 415, "JsonError"),
            (br#"{"server":"1.2.3.4","server":"1.2.3.5"}"#, 415, "JsonError"),
            (br#"[]"#, 400, "UpstreamConfFormatError"),
            (br#"{}"#, 400, "UpstreamConfFormatError"),
            (br#"{"weight":2}"#, 400, "UpstreamConfFormatError"),
            (br#"{"server":"example.com"}"#, 400, "UpstreamBadAddress"),
            (br#"{"server":5}"#, 400, "UpstreamConfFormatError"),
            (br#"{"server":"1.2.3.4","weight":0}"#, 400, "UpstreamBadWeight"),
            (br#"{"server":"1.2.3.4","weight":"2"}"#, 400, "UpstreamConfFormatError"),
            (br#"{"server":"1.2.3.4","weight":-1}"#, 400, "UpstreamBadWeight"),
            (br#"{"server":"1.2.3.4","max_conns":1.5}"#, 400, "UpstreamBadMaxConns"),
            (br#"{"server":"1.2.3.4","max_fails":1000001}"#, 400, "UpstreamBadMaxFails"),
            (br#"{"server":"1.2.3.4","fail_timeout":"1x"}"#, 400, "UpstreamBadFailTimeout"),
            (br#"{"server":"1.2.3.4","slow_start":"10s"}"#, 400, "UpstreamBadSlowStart"),
            (br#"{"server":"1.2.3.4","route":"a"}"#, 400, "UpstreamBadRoute"),
            (br#"{"server":"1.2.3.4","service":"http"}"#, 400, "UpstreamBadService"),
            (br#"{"server":"1.2.3.4","drain":true}"#, 400, "UpstreamConfFormatError"),
            (br#"{"server":"1.2.3.4","backup":1}"#, 400, "UpstreamConfFormatError"),
            (br#"{"server":"1.2.3.4","bogus":1}"#, 400, "UpstreamConfFormatError"),
            (br#"{"server":"1.2.3.4","weight":[1]}"#, 400, "UpstreamConfFormatError"),
        ];
        for (body, status, code) in cases {
            let (s, c, _) = err(post(body));
            assert_eq!((s, c.as_str()), (status, code), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(err(post(br#"{"server":"1.2.3.4","weight":0}"#)).2, "weight must be an integer from 1 to 1000000");
        assert_eq!(err(post(br#"{"server":"1.2.3.4","bogus":1}"#)).2, "unknown parameter \"bogus\"");
        assert_eq!(
            err(post(br#"{"server":"1.2.3.4","slow_start":"10s"}"#)).2,
            "\"slow_start\" is not supported by this module (NGINX Plus only)"
        );
    }

    #[test]
    fn patch_takes_any_subset() {
        assert_eq!(patch(b"{}").unwrap(), ServerFields::default());
        let f = patch(br#"{"down":true,"weight":3}"#).unwrap();
        assert_eq!((f.down, f.params.weight, f.server), (Some(true), Some(3), None));
        assert_eq!(err(patch(br#"{"max_fails":"x"}"#)).1, "UpstreamConfFormatError");
    }

    #[test]
    fn put_names_servers_as_the_configuration_spells_them() {
        let a = |text: &str| Address::parse(text).unwrap();
        let mut spellings = Spellings::default();
        spellings.add("localhost:80".into(), Some(0), a("127.0.0.1:80"));
        spellings.add("localhost:80".into(), Some(1), a("[::1]:80"));
        spellings.add("single:81".into(), Some(2), a("127.0.0.2:81"));
        let s = put_spelled(
            br#"[{"server":"localhost:80","id":1},{"id":0,"server":"localhost:80"},{"server":"single:81"}]"#,
            &spellings,
        )
        .unwrap();
        let addresses: Vec<String> = s.iter().map(|s| s.address.to_string()).collect();
        assert_eq!(addresses, ["[::1]:80", "127.0.0.1:80", "127.0.0.2:81"], "by ID, or the only one spelled so");
        let (status, code, text) = err(put_spelled(br#"[{"server":"localhost:80"}]"#, &spellings));
        assert_eq!((status, code.as_str()), (400, "UpstreamBadAddress"));
        assert!(text.contains("names 2 servers of the configuration"), "{text}");
        let (_, code, text) = err(put_spelled(br#"[{"server":"other:80"}]"#, &spellings));
        assert_eq!(code, "UpstreamBadAddress");
        assert!(text.contains("host name"), "{text}");
        // Without spellings (POST, PATCH, a run-time upstream): host names
        // stay refused.
        assert_eq!(err(put(br#"[{"server":"single:81"}]"#)).1, "UpstreamBadAddress");
    }

    #[test]
    fn put_takes_a_whole_list() {
        let s = put(br#"[{"server":"127.0.0.1:1"},{"server":"127.0.0.1:2","weight":2,"backup":true}]"#).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s[1].backup);
        for (body, text) in [
            (&br#"{"server":"127.0.0.1:1"}"#[..], "the body must be a JSON array of server objects"),
            (b"[]", "the server list is empty: an upstream needs at least one server"),
            (
                br#"[{"server":"127.0.0.1:1"},{"server":"127.0.0.1:1","weight":2}]"#,
                "server \"127.0.0.1:1\" is given twice",
            ),
            (
                br#"[{"server":"127.0.0.1:1","backup":true}]"#,
                "every server is a backup: at least one primary server is needed",
            ),
            (br#"[{"weight":1}]"#, "missing \"server\" argument"),
            (br#"[1]"#, "a server must be a JSON object"),
        ] {
            let (status, code, t) = err(put(body));
            assert_eq!((status, code.as_str(), t.as_str()), (400, "UpstreamConfFormatError", text));
        }
    }

    /// A list of tens of thousands of servers (hunt 19 F2: 36,403 in
    /// 1 MiB) is read whole; an address given twice anywhere in it is
    /// refused as in a short list.
    #[test]
    fn put_takes_large_lists() {
        let address = |i: usize| format!("127.{}.{}.{}:80", i / 65536, (i / 256) % 256, i % 256);
        let body = |addresses: &[String]| {
            let items: Vec<String> = addresses.iter().map(|a| format!("{{\"server\":\"{a}\"}}")).collect();
            format!("[{}]", items.join(",")).into_bytes()
        };
        let addresses: Vec<String> = (0..40_000).map(address).collect();
        let servers = put(&body(&addresses)).unwrap();
        assert!(servers.iter().map(|s| s.address.to_string()).eq(addresses.iter().cloned()));
        for (first, at) in [(0, 1), (0, 40_000), (20_000, 40_000), (39_999, 40_000)] {
            let mut with = addresses.clone();
            with.insert(at, addresses[first].clone());
            let (status, code, t) = err(put(&body(&with)));
            let text = format!("server \"{}\" is given twice", addresses[first]);
            assert_eq!((status, code.as_str(), t.as_str()), (400, "UpstreamConfFormatError", text.as_str()));
        }
    }

    /// A resolved server named as GET lists it is kept (dropped from the
    /// static list), unless the object changes one of its values (review
    /// 33: it was refused as a host name).
    #[test]
    fn put_keeps_resolved_servers_as_listed() {
        let mut spellings = Spellings::default();
        let listed = ServerFields {
            params: PeerParams { weight: Some(1), max_fails: Some(1), fail_timeout: Some(10), max_conns: Some(0) },
            backup: Some(false),
            down: Some(false),
            ..ServerFields::default()
        };
        spellings.add_resolved("b.test:81".to_string(), listed);
        let as_listed = r#"{"id":3,"server":"b.test:81","weight":1,"max_conns":0,"max_fails":1,"fail_timeout":"10s","slow_start":"0s","route":"","backup":false,"down":false}"#;
        let body = format!(r#"[{as_listed},{{"server":"10.0.0.1:80"}}]"#);
        let servers = put_spelled(body.as_bytes(), &spellings).unwrap();
        assert_eq!(servers.iter().map(|s| s.address.to_string()).collect::<Vec<_>>(), ["10.0.0.1:80"]);
        assert_eq!(put_spelled(format!("[{as_listed}]").as_bytes(), &spellings).unwrap(), []);
        for (changed, field) in
            [(r#""weight":2"#, "weight"), (r#""backup":true"#, "backup"), (r#""fail_timeout":"11s""#, "fail_timeout")]
        {
            let body = format!(r#"[{{"server":"b.test:81",{changed}}}]"#);
            let (status, code, text) = err(put_spelled(body.as_bytes(), &spellings));
            assert_eq!((status, code.as_str()), (409, "ServerResolved"), "{changed}");
            assert!(text.contains(&format!("cannot change its \"{field}\"")), "{text}");
        }
        // Another host name is still refused as one.
        let (status, code, _) = err(put_spelled(br#"[{"server":"c.test:81"}]"#, &spellings));
        assert_eq!((status, code.as_str()), (400, "UpstreamBadAddress"));
    }
}

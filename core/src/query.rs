//! The query-string API of `dynamic_upstream`:
//! `?upstream=NAME[&server=ADDR][&verbose=][&weight=N]...[&add=|&remove=]`.
//!
//! Parsing validates everything a request says before anything is applied,
//! so a refused request changes nothing.

use crate::address::{shown, Address};
use crate::error::ApiError;
use crate::peer::{Param, PeerParams, ServerSpec};

/// Response format chosen by `format=` (or the Accept header, decided by the
/// caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// What a request asks to do with the upstream's peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Only list.
    List,
    /// Change parameters and/or the down flag of one peer.
    Update { server: Address, params: PeerParams, down: Option<bool> },
    /// Append a peer (to the backup list when `spec.backup`).
    Add(ServerSpec),
    /// Remove a peer from whichever list holds it.
    Remove { server: Address },
}

/// A parsed and validated query-string request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRequest {
    /// Zone name or upstream name.
    pub upstream: String,
    pub action: Action,
    /// Answer with the verbose listing (else the plain one).
    pub verbose: bool,
    /// `format=` if given.
    pub format: Option<Format>,
}

/// Longest upstream or zone name accepted.
pub const MAX_NAME_LEN: usize = 255;

/// Everything the query string may carry.
#[derive(Default)]
struct RawArgs {
    upstream: Option<String>,
    server: Option<String>,
    format: Option<String>,
    params: PeerParams,
    verbose: bool,
    add: bool,
    remove: bool,
    backup: bool,
    down: bool,
    up: bool,
}

impl QueryRequest {
    /// Parses the raw (still percent-encoded) query string.
    pub fn parse(query: &[u8]) -> Result<Self, ApiError> {
        let args = collect_args(query)?;
        let upstream = args
            .upstream
            .clone()
            .ok_or_else(|| ApiError::bad_request("missing_upstream", "the upstream parameter is required"))?;
        validate_name(&upstream)?;
        let format = match args.format.as_deref() {
            None => None,
            Some("json") => Some(Format::Json),
            Some("text") => Some(Format::Text),
            Some(other) => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("format must be json or text, not \"{}\"", shown(other)),
                ))
            }
        };
        let verbose = args.verbose || !args.params.is_empty() || args.down || args.up;
        let action = build_action(&args)?;
        Ok(QueryRequest { upstream, action, verbose, format })
    }
}

fn build_action(args: &RawArgs) -> Result<Action, ApiError> {
    if args.add && args.remove {
        return Err(conflict("add", "remove"));
    }
    if args.down && args.up {
        return Err(conflict("down", "up"));
    }
    let changes = !args.params.is_empty() || args.down || args.up;
    if args.backup && !args.add {
        return Err(ApiError::bad_request(
            "invalid_combination",
            "backup is only accepted with add (a peer cannot move between lists)",
        ));
    }
    let server = match args.server.as_deref() {
        Some(text) => Some(Address::parse(text)?),
        None if args.add || args.remove || changes => {
            let what = if args.add {
                "add"
            } else if args.remove {
                "remove"
            } else {
                "changing a peer"
            };
            return Err(ApiError::bad_request(
                "missing_server",
                format!("the server parameter is required for {what}"),
            ));
        }
        None => None,
    };
    let Some(server) = server else {
        return Ok(Action::List);
    };
    if args.add {
        if args.up {
            return Err(conflict("add", "up"));
        }
        let mut spec = ServerSpec::new(server).with_params(&args.params);
        spec.backup = args.backup;
        spec.down = args.down;
        return Ok(Action::Add(spec));
    }
    if args.remove {
        if changes {
            return Err(ApiError::bad_request(
                "invalid_combination",
                "remove takes no other changes (weight, max_fails, fail_timeout, max_conns, down, up)",
            ));
        }
        return Ok(Action::Remove { server });
    }
    if !changes {
        return Ok(Action::List);
    }
    let down = if args.down {
        Some(true)
    } else if args.up {
        Some(false)
    } else {
        None
    };
    Ok(Action::Update { server, params: args.params, down })
}

fn conflict(a: &str, b: &str) -> ApiError {
    ApiError::bad_request("invalid_combination", format!("{a} and {b} cannot be combined"))
}

/// Checks an upstream or zone name: printable, no spaces, bounded. Letters
/// beyond ASCII pass, as nginx's configuration takes them (`upstream ünï
/// {}`), and as the NGINX Plus API finds such an upstream.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::bad_request("invalid_name", "the upstream name is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("the upstream name is longer than {MAX_NAME_LEN} bytes"),
        ));
    }
    let printable = |c: char| c.is_ascii_graphic() || (!c.is_ascii() && !c.is_control() && !c.is_whitespace());
    if !name.chars().all(printable) || name.contains(['"', '\'', ';', '{', '}', '#', '\\']) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("the upstream name \"{}\" has characters not allowed in a name", shown(name)),
        ));
    }
    Ok(())
}

fn collect_args(query: &[u8]) -> Result<RawArgs, ApiError> {
    let mut args = RawArgs::default();
    let mut seen: Vec<String> = Vec::new();
    for pair in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        // As nginx's `$arg_NAME` reads them (ngx_dynamic_upstream's
        // parameters): names in any case, a value only after `=` (`&down`
        // there is no parameter at all: refused here, it would be a change).
        let Some(i) = pair.iter().position(|&b| b == b'=') else {
            let key = decode(pair)?.to_ascii_lowercase();
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!(
                    "parameter {} has no \"=\": give {}= (a flag) or {}=VALUE",
                    shown(&key),
                    shown(&key),
                    shown(&key)
                ),
            ));
        };
        let key = decode(&pair[..i])?.to_ascii_lowercase();
        let value = decode(&pair[i + 1..])?;
        if seen.contains(&key) {
            return Err(ApiError::bad_request(
                "duplicate_parameter",
                format!("parameter {} is given more than once", shown(&key)),
            ));
        }
        take_arg(&mut args, &key, value)?;
        seen.push(key);
    }
    Ok(args)
}

fn take_arg(args: &mut RawArgs, key: &str, value: String) -> Result<(), ApiError> {
    if let Some(param) = Param::from_name(key) {
        let v = param.parse_value(&value)?;
        param.set(&mut args.params, v);
        return Ok(());
    }
    let flag = match key {
        "upstream" => return set_text(&mut args.upstream, value),
        "server" => return set_text(&mut args.server, value),
        "format" => return set_text(&mut args.format, value),
        "verbose" => &mut args.verbose,
        "add" => &mut args.add,
        "remove" => &mut args.remove,
        "backup" => &mut args.backup,
        "down" => &mut args.down,
        "up" => &mut args.up,
        _ => return Err(ApiError::bad_request("unknown_parameter", format!("unknown parameter {}", shown(key)))),
    };
    // Flags are given bare (`down=`); `1` and `true` are accepted for
    // scripts that send a value. Anything else is ambiguous (`down=0`).
    if !matches!(value.as_str(), "" | "1" | "true") {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("{key} is a flag: give {key}= (or {key}=1, {key}=true) to set it, leave it out otherwise"),
        ));
    }
    *flag = true;
    Ok(())
}

fn set_text(slot: &mut Option<String>, value: String) -> Result<(), ApiError> {
    *slot = Some(value);
    Ok(())
}

/// Percent-decodes one key or value; refuses malformed escapes, invalid
/// UTF-8 and control characters (NUL included).
pub fn decode(raw: &[u8]) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::bad_request("invalid_encoding", format!("query string {why}"));
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hex = raw.get(i + 1..i + 3).ok_or_else(|| bad("has a truncated %-escape"))?;
            let hi = (hex[0] as char).to_digit(16);
            let lo = (hex[1] as char).to_digit(16);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(bad("has an invalid %-escape")),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let text = String::from_utf8(out).map_err(|_| bad("is not valid UTF-8"))?;
    if text.chars().any(char::is_control) {
        return Err(bad("has control characters"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<QueryRequest, ApiError> {
        QueryRequest::parse(q.as_bytes())
    }

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn plain_listing() {
        let r = parse("upstream=zone_for_backends").unwrap();
        assert_eq!(r.upstream, "zone_for_backends");
        assert_eq!(r.action, Action::List);
        assert!(!r.verbose);
        assert!(parse("upstream=b&verbose=").unwrap().verbose);
        // No parameter without "=" (nginx's $arg_verbose would not see it).
        assert_eq!(parse("upstream=b&verbose").unwrap_err().status, 400);
        assert!(parse("UPSTREAM=b&Verbose=").unwrap().verbose, "names in any case, as $arg_NAME reads them");
        assert_eq!(parse("upstream=b&Upstream=c").unwrap_err().status, 400, "given twice");
    }

    #[test]
    fn update_parameters_answers_verbose() {
        let r = parse("upstream=b&server=127.0.0.1:6003&weight=10&max_fails=5&fail_timeout=5").unwrap();
        assert!(r.verbose);
        assert_eq!(
            r.action,
            Action::Update {
                server: addr("127.0.0.1:6003"),
                params: PeerParams { weight: Some(10), max_fails: Some(5), fail_timeout: Some(5), max_conns: None },
                down: None
            }
        );
    }

    #[test]
    fn down_and_up() {
        let r = parse("upstream=b&server=127.0.0.1:1&down=").unwrap();
        assert!(matches!(r.action, Action::Update { down: Some(true), .. }));
        let r = parse("upstream=b&server=127.0.0.1:1&up=").unwrap();
        assert!(matches!(r.action, Action::Update { down: Some(false), .. }));
        assert_eq!(
            parse("upstream=b&server=127.0.0.1:1&down=&up=").unwrap_err().text,
            "down and up cannot be combined"
        );
    }

    #[test]
    fn add_plain_or_verbose() {
        let r = parse("upstream=b&add=&server=127.0.0.1:6004").unwrap();
        assert!(!r.verbose);
        assert_eq!(r.action, Action::Add(ServerSpec::new(addr("127.0.0.1:6004"))));
        let r = parse("upstream=b&add=&server=127.0.0.1:6004&weight=2&down=&backup=").unwrap();
        assert!(r.verbose);
        let Action::Add(spec) = r.action else { panic!() };
        assert!(spec.backup && spec.down && spec.weight == 2);
        assert!(!parse("upstream=b&add=&backup=&server=127.0.0.1:6004").unwrap().verbose);
    }

    #[test]
    fn remove() {
        let r = parse("upstream=b&remove=&server=127.0.0.1:6003").unwrap();
        assert_eq!(r.action, Action::Remove { server: addr("127.0.0.1:6003") });
        assert!(!r.verbose);
        assert_eq!(
            parse("upstream=b&remove=&add=&server=127.0.0.1:1").unwrap_err().text,
            "add and remove cannot be combined"
        );
        assert_eq!(parse("upstream=b&remove=&server=127.0.0.1:1&weight=3").unwrap_err().code, "invalid_combination");
    }

    #[test]
    fn missing_pieces() {
        assert_eq!(parse("").unwrap_err().text, "the upstream parameter is required");
        assert_eq!(parse("upstream=").unwrap_err().text, "the upstream name is empty");
        assert_eq!(
            parse("upstream=b&weight=2").unwrap_err().text,
            "the server parameter is required for changing a peer"
        );
        assert_eq!(parse("upstream=b&add=").unwrap_err().text, "the server parameter is required for add");
        assert_eq!(parse("upstream=b&remove=").unwrap_err().text, "the server parameter is required for remove");
        assert_eq!(parse("upstream=b&server=127.0.0.1:1").unwrap().action, Action::List);
    }

    #[test]
    fn refusals() {
        assert_eq!(parse("upstream=b&foo=1").unwrap_err().code, "unknown_parameter");
        assert_eq!(parse("upstream=b&weight=1&weight=2").unwrap_err().code, "duplicate_parameter");
        assert_eq!(parse("upstream=b&server=127.0.0.1:1&down=0").unwrap_err().code, "invalid_parameter");
        assert_eq!(parse("upstream=b&server=127.0.0.1:1&backup=").unwrap_err().code, "invalid_combination");
        assert_eq!(parse("upstream=b&format=xml").unwrap_err().code, "invalid_parameter");
        assert_eq!(parse("upstream=b&server=example.com&weight=2").unwrap_err().code, "host_name");
        assert_eq!(parse("upstream=b%00").unwrap_err().code, "invalid_encoding");
        assert_eq!(parse("upstream=b%zz").unwrap_err().code, "invalid_encoding");
        assert_eq!(parse("upstream=b%ff").unwrap_err().code, "invalid_encoding");
        assert_eq!(parse("upstream=a;b").unwrap_err().code, "invalid_name");
        // Beyond ASCII: letters pass, spaces and controls do not.
        assert_eq!(parse("upstream=%C3%BCn%C3%AF").unwrap().upstream, "ünï");
        assert_eq!(parse("upstream=a%C2%A0b").unwrap_err().code, "invalid_name");
        assert_eq!(parse("upstream=a%E2%80%A8b").unwrap_err().code, "invalid_name");
        assert!(parse("upstream=a%C2%85b").is_err());
    }

    #[test]
    fn percent_decoding() {
        let r = parse("upstream=b&server=%5B%3A%3A1%5D%3A80&down=").unwrap();
        assert!(matches!(r.action, Action::Update { ref server, .. } if server.to_string() == "[::1]:80"));
        assert_eq!(parse("upstream=b&format=json").unwrap().format, Some(Format::Json));
    }
}

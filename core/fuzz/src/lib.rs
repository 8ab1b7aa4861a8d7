//! The invariants the fuzz targets check, one `check_*` function per target.
//!
//! Each function takes the raw fuzz input, must never panic on its own
//! account, and panics (with a message saying which invariant broke and on
//! what) when the code under test misbehaves. Besides "does not panic", they
//! check that:
//!
//! * every value a parser accepts renders to text that parses back to the
//!   same value (`config_text`, the state files, `Address`'s `Display`, the
//!   query string);
//! * rendered configuration text cannot carry syntax a client smuggled in
//!   (braces, quotes, `#`, control characters, extra `;`);
//! * refusals are well-formed: a 4xx status, a code, one printable line of
//!   bounded length; a state file's error names a line that exists.

use dynamic_upstream_core::dyups::{
    config_text, parse_body, parse_json_body, split_hash_key, KeyPart, UpstreamSpec,
};
use dynamic_upstream_core::peer::{
    DEFAULT_FAIL_TIMEOUT, DEFAULT_MAX_FAILS, DEFAULT_WEIGHT, FAIL_TIMEOUT_RANGE, MAX_CONNS_RANGE, MAX_FAILS_RANGE,
    WEIGHT_RANGE,
};
use dynamic_upstream_core::state::{
    parse_dyups_conf, parse_server_state, render_dyups_conf, render_server_state, DyupsEntry, StateError,
};
use dynamic_upstream_core::{Action, Address, ApiError, Format, Param, QueryRequest, ServerSpec};

/// Longest error text accepted: messages echo at most 64 characters of input
/// (`shown`), so anything near this long echoes input unbounded.
const MAX_ERROR_TEXT: usize = 1024;

/// Shows fuzz input in a panic message.
fn q(text: &str) -> String {
    format!("{text:?}")
}

// ---------------------------------------------------------------- query

/// `QueryRequest::parse`: never panics; an accepted request holds only
/// validated values and its canonical query string parses back to it.
pub fn check_query(data: &[u8]) {
    let request = match QueryRequest::parse(data) {
        Ok(request) => request,
        Err(e) => return check_api_error(&e, &String::from_utf8_lossy(data)),
    };
    let input = String::from_utf8_lossy(data);
    let name = &request.upstream;
    assert!(
        !name.is_empty()
            && name.len() <= dynamic_upstream_core::query::MAX_NAME_LEN
            && name.chars().all(|c| c.is_ascii_graphic())
            && !name.contains(['"', '\'', ';', '{', '}', '#', '\\']),
        "query {}: accepted upstream name {}",
        q(&input),
        q(name)
    );
    match &request.action {
        Action::List => {}
        Action::Update { server, params, down } => {
            check_address_value(server);
            assert!(request.verbose, "query {}: an update must answer verbose", q(&input));
            assert!(!params.is_empty() || down.is_some(), "query {}: an update that changes nothing", q(&input));
            for p in Param::ALL {
                if let Some(v) = p.get(params) {
                    assert!(in_range(p, v), "query {}: {} = {v} out of range", q(&input), p.name());
                }
            }
        }
        Action::Add(spec) => {
            check_server(spec, &input);
            if !request.verbose {
                let plain = ServerSpec { backup: spec.backup, ..ServerSpec::new(spec.address.clone()) };
                assert_eq!(*spec, plain, "query {}: parameters given but not answered verbose", q(&input));
            }
        }
        Action::Remove { server } => check_address_value(server),
    }
    let canonical = render_query(&request);
    match QueryRequest::parse(canonical.as_bytes()) {
        Ok(again) => {
            assert_eq!(again, request, "query {}: canonical form {} parses differently", q(&input), q(&canonical))
        }
        Err(e) => panic!("query {}: canonical form {} is refused: {}", q(&input), q(&canonical), e.text),
    }
}

/// The query string that says exactly what `request` says.
pub fn render_query(request: &QueryRequest) -> String {
    let mut args = vec![format!("upstream={}", percent(&request.upstream))];
    if request.verbose {
        args.push("verbose=".into());
    }
    match request.format {
        None => {}
        Some(Format::Json) => args.push("format=json".into()),
        Some(Format::Text) => args.push("format=text".into()),
    }
    match &request.action {
        Action::List => {}
        Action::Update { server, params, down } => {
            args.push(format!("server={}", percent(&server.to_string())));
            for p in Param::ALL {
                if let Some(v) = p.get(params) {
                    args.push(format!("{}={v}", p.name()));
                }
            }
            match down {
                None => {}
                Some(true) => args.push("down=".into()),
                Some(false) => args.push("up=".into()),
            }
        }
        Action::Add(spec) => {
            args.push("add=".into());
            args.push(format!("server={}", percent(&spec.address.to_string())));
            // Only what differs from nginx's defaults: any parameter makes
            // the answer verbose, and `verbose=` above already says so.
            let defaults = [
                (Param::Weight, spec.weight, DEFAULT_WEIGHT),
                (Param::MaxFails, spec.max_fails, DEFAULT_MAX_FAILS),
                (Param::FailTimeout, spec.fail_timeout, DEFAULT_FAIL_TIMEOUT),
                (Param::MaxConns, spec.max_conns, 0),
            ];
            for (p, value, default) in defaults {
                if value != default {
                    args.push(format!("{}={value}", p.name()));
                }
            }
            if spec.backup {
                args.push("backup=".into());
            }
            if spec.down {
                args.push("down=".into());
            }
        }
        Action::Remove { server } => {
            args.push("remove=".into());
            args.push(format!("server={}", percent(&server.to_string())));
        }
    }
    args.join("&")
}

/// Percent-encodes every byte but ASCII letters and digits.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

// ---------------------------------------------------------------- bodies

/// `parse_body` on UTF-8 input: an accepted body renders (`config_text`)
/// to clean text that parses back to the same upstream, and so do the two
/// state files that hold it.
pub fn check_body(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_body(text) {
        Ok(spec) => check_upstream(&spec, text),
        Err(e) => check_api_error(&e, text),
    }
}

/// `parse_json_body`: as `check_body`, for the JSON form.
pub fn check_json_body(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_json_body(text) {
        Ok(spec) => check_upstream(&spec, text),
        Err(e) => check_api_error(&e, text),
    }
}

/// What must hold of every upstream a body parser accepted from `input`.
pub fn check_upstream(spec: &UpstreamSpec, input: &str) {
    let input = &q(input);
    assert!(!spec.servers.is_empty(), "body {input}: accepted with no server");
    assert!(!spec.servers.iter().all(|s| s.backup), "body {input}: accepted with only backup servers");
    if !spec.balancer.allows_backup() {
        assert!(!spec.servers.iter().any(|s| s.backup), "body {input}: backup with {:?}", spec.balancer);
    }
    for s in &spec.servers {
        check_server(s, input);
    }
    if let dynamic_upstream_core::Balancer::Hash { key, .. } = &spec.balancer {
        check_hash_key(key, input);
    }

    // Round trips first: their failure says what breaks (a state file that
    // cannot be read back), the syntax check below only what looks wrong.
    let text = config_text(spec);
    // The check lines are checked by the health target; a quoted
    // `check_http_send` may hold `;`.
    let check_text = spec.check.as_ref().map(|c| c.config_text()).unwrap_or_default();
    let statements = spec.servers.len() + usize::from(spec.balancer.directive().is_some());
    let lines = statements + check_text.lines().count();
    assert_eq!(text.lines().count(), lines, "body {input}: config_text {} has extra lines", q(&text));
    let semicolons = statements + check_text.matches(';').count();
    assert_eq!(text.matches(';').count(), semicolons, "body {input}: config_text {} has extra ';'", q(&text));
    match parse_body(&text) {
        Ok(again) => assert_eq!(&again, spec, "body {input}: config_text {} parses differently", q(&text)),
        Err(e) => panic!("body {input}: config_text {} is refused: {}", q(&text), e.text),
    }

    // The dyups_upstream_conf file that holds the upstream.
    let entries = vec![DyupsEntry::Upstream("fuzz.example".into(), spec.clone())];
    let file = render_dyups_conf(&entries);
    match parse_dyups_conf(&file) {
        Ok(again) => {
            assert_eq!(again, entries, "body {input}: dyups_upstream_conf {} reads back differently", q(&file))
        }
        Err(e) => panic!("body {input}: dyups_upstream_conf {} is refused: {e}", q(&file)),
    }

    // The dynamic_state_file of a zone upstream with these servers.
    let file = render_server_state(&spec.servers);
    match parse_server_state(&file, false) {
        Ok(again) => assert_eq!(
            again.as_deref(),
            Some(&spec.servers[..]),
            "body {input}: dynamic_state_file {} reads back differently",
            q(&file)
        ),
        Err(e) => panic!("body {input}: dynamic_state_file {} is refused: {e}", q(&file)),
    }

    // The one quoted word config_text may write is check_http_send's
    // (the health target checks its quoting); the rest must be clean.
    let unquoted: String = text.lines().filter(|l| !l.starts_with("check_http_send ")).map(|l| format!("{l}\n")).collect();
    check_config_text(&unquoted, input);
}

/// A hash key the parsers accepted: bounded, no quoting or comment syntax,
/// and split into parts that rebuild an equivalent key.
fn check_hash_key(key: &str, input: &str) {
    assert!(key.len() <= 255, "body {input}: hash key of {} bytes", key.len());
    let parts = match split_hash_key(key) {
        Ok(parts) => parts,
        Err(e) => panic!("body {input}: accepted hash key {} does not split: {}", q(key), e.text),
    };
    let mut rebuilt = String::new();
    for (i, part) in parts.iter().enumerate() {
        match part {
            KeyPart::Text(t) => {
                assert!(!t.is_empty() && !t.contains(['$', '{', '}']), "body {input}: key part {}", q(t));
                assert!(
                    i == 0 || !matches!(parts[i - 1], KeyPart::Text(_)),
                    "body {input}: adjacent text parts in {parts:?}"
                );
                rebuilt.push_str(t);
            }
            KeyPart::Variable(v) => {
                assert!(
                    !v.is_empty() && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "body {input}: key variable {}",
                    q(v)
                );
                rebuilt.push_str(&format!("${{{v}}}"));
            }
        }
    }
    assert_eq!(split_hash_key(&rebuilt).ok(), Some(parts), "body {input}: key {} rebuilt as {}", q(key), q(&rebuilt));
}

/// Rendered configuration: statements, one per line, with none of the
/// syntax that could open or close a block, quote, comment or break a line.
/// Braces are only allowed as nginx writes a variable in a hash key,
/// `${name}` (which the state file reader skips since c890c1d).
fn check_config_text(text: &str, input: &str) {
    let outside_variables = without_braced_variables(&without_ids(text));
    if let Some(c) = outside_variables.chars().find(|&c| "{}\"'#\\".contains(c) || (c.is_control() && c != '\n')) {
        panic!("body {input}: config_text {} contains {c:?}", q(text));
    }
    for line in text.lines() {
        assert!(line.ends_with(';') && !line.starts_with(' '), "body {input}: config_text line {}", q(line));
    }
}

/// `text` with every `${name}` (name: ASCII letters, digits, `_`) removed.
fn without_braced_variables(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let after = &rest[at + 2..];
        let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('}') {
            out.push_str(&rest[..at]);
            rest = &after[name_len + 1..];
        } else {
            out.push_str(&rest[..at + 2]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A server as every parser must leave it: parameters within their ranges.
fn check_server(s: &ServerSpec, input: &str) {
    check_address_value(&s.address);
    for (p, v) in values(s) {
        assert!(in_range(p, v), "input {input}: server {} has {} = {v}", s.address, p.name());
    }
}

fn values(s: &ServerSpec) -> [(Param, u64); 4] {
    [
        (Param::Weight, s.weight),
        (Param::MaxFails, s.max_fails),
        (Param::FailTimeout, s.fail_timeout),
        (Param::MaxConns, s.max_conns),
    ]
}

fn in_range(p: Param, v: u64) -> bool {
    let (min, max) = match p {
        Param::Weight => WEIGHT_RANGE,
        Param::MaxFails => MAX_FAILS_RANGE,
        Param::FailTimeout => FAIL_TIMEOUT_RANGE,
        Param::MaxConns => MAX_CONNS_RANGE,
    };
    (min..=max).contains(&v)
}

/// A server read from a `dynamic_state_file`: what nginx's `server`
/// directive accepts (values up to its limit, unix paths of any character
/// but NUL).
fn check_state_server(s: &ServerSpec, input: &str) {
    if let Address::Unix(path) = &s.address {
        assert!(
            !path.is_empty() && path.len() <= dynamic_upstream_core::address::MAX_UNIX_PATH && !path.contains('\0'),
            "dynamic_state_file {input}: unix path {}",
            q(path)
        );
    } else {
        check_address_value(&s.address);
    }
    for (p, v) in values(s) {
        let min = u64::from(p == Param::Weight);
        assert!((min..=dynamic_upstream_core::peer::CONFIG_MAX).contains(&v), "input {input}: {} = {v}", p.name());
    }
}

// ---------------------------------------------------------------- state files

/// `parse_server_state` and `parse_dyups_conf` on the same UTF-8 input: what
/// they accept renders and reads back the same; an error names a line of
/// the input.
pub fn check_state_files(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let input = &q(text);
    let last_line = text.matches('\n').count() + 1;

    let strict = parse_server_state(text, false);
    // Where the configuration resolves its primaries, the reader only
    // relaxes (backups only, or none): what it takes without, it takes the same.
    if let Ok(Some(servers)) = &strict {
        let relaxed = parse_server_state(text, true);
        assert_eq!(relaxed.ok().flatten().as_deref(), Some(&servers[..]), "dynamic_state_file {input}: read differently");
    }
    match strict {
        Ok(None) => {
            let code = dynamic_upstream_core::dyups::strip_comments(text);
            assert!(code.trim().is_empty(), "dynamic_state_file {input}: statements read as nothing to restore");
        }
        Ok(Some(servers)) => {
            assert!(!servers.is_empty(), "dynamic_state_file {input}: Some(empty)");
            for s in &servers {
                check_state_server(s, input);
            }
            // Quotes and escapes only in quoted unix paths; the round trip
            // below proves they add no statement.
            let file = render_server_state(&servers);
            match parse_server_state(&file, false) {
                Ok(again) => assert_eq!(
                    again.as_deref(),
                    Some(&servers[..]),
                    "dynamic_state_file {input}: rendered as {} reads back differently",
                    q(&file)
                ),
                Err(e) => panic!("dynamic_state_file {input}: rendered as {} is refused: {e}", q(&file)),
            }
        }
        Err(e) => check_state_error(&e, last_line, "dynamic_state_file", input),
    }

    match parse_dyups_conf(text) {
        Ok(entries) => {
            for (i, entry) in entries.iter().enumerate() {
                let name = entry_name(entry);
                assert!(
                    dynamic_upstream_core::dyups::validate_upstream_name(name).is_ok(),
                    "dyups_upstream_conf {input}: accepted name {}",
                    q(name)
                );
                assert!(
                    !entries[..i].iter().any(|e| entry_name(e).eq_ignore_ascii_case(name)),
                    "dyups_upstream_conf {input}: upstream {} twice",
                    q(name)
                );
                if let DyupsEntry::Upstream(_, spec) = entry {
                    for s in &spec.servers {
                        check_server(s, input);
                    }
                }
            }
            let file = render_dyups_conf(&entries);
            check_file_text(&file, input);
            match parse_dyups_conf(&file) {
                Ok(again) => assert_eq!(
                    again,
                    entries,
                    "dyups_upstream_conf {input}: rendered as {} reads back differently",
                    q(&file)
                ),
                Err(e) => panic!("dyups_upstream_conf {input}: rendered as {} is refused: {e}", q(&file)),
            }
        }
        Err(e) => check_state_error(&e, last_line, "dyups_upstream_conf", input),
    }
}

fn entry_name(entry: &DyupsEntry) -> &str {
    match entry {
        DyupsEntry::Upstream(name, _) | DyupsEntry::Deleted(name) => name,
    }
}

/// A rendered state file: only its header line and the server IDs
/// (`; # id=N` ending a line) may hold `#`; no quotes, backslashes or
/// control characters but `\n`.
fn check_file_text(file: &str, input: &str) {
    let body = without_ids(file.split_once('\n').map_or("", |(_, rest)| rest));
    if let Some(c) = body.chars().find(|&c| "\"'#\\".contains(c) || (c.is_control() && c != '\n')) {
        panic!("state file from {input}: rendered as {} contains {c:?}", q(file));
    }
}

/// `text` without the ` # id=N` that ends a server line with an ID.
fn without_ids(text: &str) -> String {
    text.lines()
        .map(|line| match line.rsplit_once(" # id=") {
            Some((statement, id)) if statement.ends_with(';') && id.bytes().all(|b| b.is_ascii_digit()) => statement,
            _ => line,
        })
        .fold(String::new(), |out, line| out + line + "\n")
}

fn check_state_error(e: &StateError, last_line: usize, what: &str, input: &str) {
    assert!(
        (1..=last_line).contains(&e.line),
        "{what} {input}: error on line {} of a {last_line}-line input: {}",
        e.line,
        e.text
    );
    assert!(!e.text.is_empty(), "{what} {input}: empty error text");
    assert!(
        !e.text.chars().any(char::is_control) && e.text.len() <= MAX_ERROR_TEXT,
        "{what} {input}: error text {}",
        q(&e.text)
    );
}

// ---------------------------------------------------------------- addresses

/// `Address::parse` on UTF-8 input: an accepted address prints to its
/// canonical form, which parses back to the same address.
pub fn check_address(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Address::parse(text) {
        Ok(address) => {
            if text.starts_with("unix:") {
                assert!(matches!(address, Address::Unix(_)), "address {}: parsed as {address:?}", q(text));
            }
            check_address_value(&address);
        }
        Err(e) => check_api_error(&e, text),
    }
}

/// A parsed address: its canonical text parses back to it, is canonical
/// itself, and is one word with no config syntax.
pub fn check_address_value(address: &Address) {
    let shown = address.to_string();
    match Address::parse(&shown) {
        Ok(again) => {
            assert_eq!(&again, address, "address {address:?}: canonical form {} parses differently", q(&shown));
            assert_eq!(again.to_string(), shown, "address {address:?}: canonical form {} is not stable", q(&shown));
        }
        Err(e) => panic!("address {address:?}: canonical form {} is refused: {}", q(&shown), e.text),
    }
    if let Some(c) = shown.chars().find(|&c| c.is_whitespace() || c.is_control() || ";{}\"'#\\$".contains(c)) {
        panic!("address {address:?}: canonical form {} contains {c:?}", q(&shown));
    }
    if let Address::Inet(a) = address {
        assert_ne!(a.port(), 0, "address {}: port 0", q(&shown));
    }
}

// ---------------------------------------------------------------- health

/// The health check parsers, on the same input:
/// - as a probe's response: the verdict is the same however the bytes are
///   split into reads (at the place the first byte names), and the parser
///   reads at most `MAX_STATUS_LINE` bytes before deciding;
/// - as a dyups body's check directives: an accepted configuration renders
///   (`config_text`) to text that reads back to the same configuration;
///   refusals are well-formed.
pub fn check_health(data: &[u8]) {
    use dynamic_upstream_core::health::check_conf::{CheckConfBuilder, DEFAULT_EXPECT_ALIVE};
    use dynamic_upstream_core::health::probe::{HttpProbe, Verdict, MAX_STATUS_LINE};

    let whole = HttpProbe::new(DEFAULT_EXPECT_ALIVE).feed(data);
    let at = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut split = HttpProbe::new(DEFAULT_EXPECT_ALIVE);
    let first = split.feed(&data[..at]);
    let second = if first == Verdict::NeedMore { split.feed(&data[at..]) } else { first };
    assert_eq!(second, whole, "probe {}: split at {at}", q(&String::from_utf8_lossy(data)));
    if whole == Verdict::NeedMore {
        assert!(data.len() < MAX_STATUS_LINE as usize, "probe read {} bytes without a verdict", data.len());
    }

    let input = String::from_utf8_lossy(data);
    let parsed = (|| {
        let mut builder = CheckConfBuilder::default();
        for words in dynamic_upstream_core::health::tokens::statements(&input)? {
            builder.apply(&words[0], &words[1..])?;
        }
        builder.finish()
    })();
    match parsed {
        Err(e) => check_api_error(&e, &input),
        Ok(None) => {}
        Ok(Some(conf)) => {
            let text = conf.config_text();
            let mut again = CheckConfBuilder::default();
            for words in dynamic_upstream_core::health::tokens::statements(&text).expect("config_text splits") {
                again
                    .apply(&words[0], &words[1..])
                    .unwrap_or_else(|e| panic!("input {}: {text:?} refused: {e}", q(&input)));
            }
            assert_eq!(again.finish().ok().flatten().as_ref(), Some(&conf), "input {}: {text:?}", q(&input));
        }
    }
}

// ---------------------------------------------------------------- errors

/// A refusal: 4xx (these parsers never fail for the server's sake), a code,
/// one printable line of bounded length.
pub fn check_api_error(e: &ApiError, input: &str) {
    let input = &q(input);
    assert!((400..500).contains(&e.status), "input {input}: refused with status {}", e.status);
    assert!(
        !e.code.is_empty() && e.code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "input {input}: error code {:?}",
        e.code
    );
    assert!(!e.text.is_empty(), "input {input}: empty error text");
    assert!(
        !e.text.chars().any(char::is_control) && e.text.len() <= MAX_ERROR_TEXT,
        "input {input}: error text {}",
        q(&e.text)
    );
}

#[cfg(test)]
mod tests {
    //! Replays the seed corpora through the checks (no libFuzzer needed),
    //! so a seed that stops parsing, or a check that is wrong, shows up in
    //! `cargo test` here.

    use std::path::Path;

    fn replay(target: &str, check: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            n += 1;
        }
        assert!(n > 0, "no seeds in {}", dir.display());
        n
    }

    #[test]
    fn query_seeds() {
        replay("query", super::check_query);
    }

    #[test]
    fn body_seeds() {
        replay("body", super::check_body);
    }

    #[test]
    fn json_body_seeds() {
        replay("json_body", super::check_json_body);
    }

    #[test]
    fn state_files_seeds() {
        replay("state_files", super::check_state_files);
    }

    #[test]
    fn address_seeds() {
        replay("address", super::check_address);
    }

    #[test]
    fn health_seeds() {
        replay("health", super::check_health);
    }

    #[test]
    fn braced_variables_are_skipped() {
        assert_eq!(super::without_braced_variables("hash a${uri}b${x_1}${;"), "hash ab${;");
        assert_eq!(super::without_braced_variables("${}${a-}${a}"), "${}${a-}");
    }

    #[test]
    fn query_canonical_form() {
        let r = dynamic_upstream_core::QueryRequest::parse(b"upstream=b&add=&server=127.0.0.1:6004&weight=2&backup=")
            .unwrap();
        assert_eq!(super::render_query(&r), "upstream=b&verbose=&add=&server=127%2E0%2E0%2E1%3A6004&weight=2&backup=");
    }
}

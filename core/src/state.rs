//! The state files: what the module writes after every accepted change and
//! reads at start.
//!
//! * `dynamic_state_file` (one zone upstream): `server ...;` lines in
//!   nginx's syntax, as the verbose listing writes them.
//! * `dyups_upstream_conf` (upstreams of the REST API): `upstream NAME { ... }`
//!   blocks; an upstream of the configuration that was deleted through the
//!   API is kept as `upstream NAME { deleted; }` so that it stays deleted.
//!
//! Files are only ever produced by the renderers below from validated
//! values, so nothing a client sends can add syntax (`;`, `{`, `}`, quotes,
//! newlines, `#`) to them. `#` starts a comment to the end of the line when
//! reading, as in nginx's configuration.

use std::fmt::Write as _;

use crate::address::{Address, MAX_UNIX_PATH};
use crate::balancer::Balancer;
use crate::dyups::{
    config_text, parse_body, parse_statement, strip_comments, validate_upstream_name, Quotes, UpstreamSpec,
};
use crate::health::check_conf::CheckConfBuilder;
use crate::peer::{checked_total_weight, total_weight_error, Param, ServerSpec};
use crate::render::PeerView;

/// A state file that cannot be used, with the line where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {text}")]
pub struct StateError {
    pub line: usize,
    pub text: String,
}

pub const HEADER: &str = "# Written by nginx-dynamic-upstream after every change through its APIs.\n";

/// Longest name of a state file: its temporary file `.NAME.PID.tmp` must
/// fit in a file name's 255 bytes with any Linux pid (at most 4194304,
/// `PID_MAX_LIMIT`: 7 digits), and so must its lock file `NAME.lock`.
pub const MAX_FILE_NAME: usize = 255 - ".".len() - ".4194304.tmp".len();

/// Why a configured state file path cannot name a state file, if it
/// cannot: it is not UTF-8 (nginx's bytes read as text hold U+FFFD), it
/// names a directory (it ends in `/`, `/.` or `/..`), or its
/// name is too long for the module's temporary file (review 35: both
/// passed `nginx -t`, and then every change answered 500; a name of 243 or
/// 244 bytes worked until the pids grew a digit).
pub fn file_name_problem(path: &str) -> Option<String> {
    if path.contains(char::REPLACEMENT_CHARACTER) {
        // What nginx's bytes became where they were not UTF-8: another path
        // (review 38: the file was never restored).
        return Some("is not UTF-8 text: name it in UTF-8".to_string());
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.is_empty() || name == "." || name == ".." {
        return Some("names a directory: name the file in it".to_string());
    }
    (name.len() > MAX_FILE_NAME).then(|| {
        format!(
            "its file name is {} bytes long: at most {MAX_FILE_NAME} (its temporary file .NAME.PID.tmp must fit in \
             255)",
            name.len()
        )
    })
}

/// The lines of offsets asked in increasing order, each counted from the
/// previous one (a file of many blocks is read in linear time).
struct LineCounter<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter { text, offset: 0, line: 1 }
    }

    /// The 1-based line of byte offset `at`, not before the last one asked.
    fn at(&mut self, at: usize) -> usize {
        let at = at.min(self.text.len()).max(self.offset);
        self.line += self.text[self.offset..at].matches('\n').count();
        self.offset = at;
        self.line
    }
}

/// Reads a `dynamic_state_file`: `server ...;` statements only, read as
/// nginx's `server` directive reads them, so that every server a
/// configuration can hold comes back as it was written: parameters up to
/// nginx's own limits ([`Param::parse_config_value`]), and `unix:` paths of
/// any characters (quoted as in nginx's syntax, see [`config_word`]).
/// A state file holds the upstream's static servers only, never those
/// nginx resolves (`server NAME resolve`, nginx 1.27.3 and later). Where
/// the configuration has such primaries (`resolved_primaries`), the
/// static servers may be none: the module's own file (its header first)
/// with no statement says none, and restores so. Otherwise a file with no
/// statements (empty, or comments) is nothing to restore: None. Whether
/// the servers suit the configuration (a primary among them, see
/// [`check_primaries`]; backups the balancer takes) is the restore's
/// question, not the syntax's: a file the module wrote stays readable
/// after a configuration change it no longer suits (hunt 33).
pub fn parse_server_state(text: &str, resolved_primaries: bool) -> Result<Option<Vec<ServerSpec>>, StateError> {
    let mut servers = Vec::new();
    // Per list (primaries, backups), checked as nginx's balancers add them
    // up (see `peer::MAX_TOTAL_WEIGHT`); the module never writes a file past it.
    let mut totals = [0u64; 2];
    statements(text, |line, words| {
        let error = |text: String| StateError { line, text };
        let Some((directive, args)) = words.split_first() else {
            return Err(error("unexpected \";\"".to_string()));
        };
        if directive != "server" {
            return Err(error(format!(
                "unknown directive \"{}\" (a state file holds only \"server\" lines)",
                crate::address::shown(directive)
            )));
        }
        let server = parse_server_words(args).map_err(error)?;
        let list = usize::from(server.backup);
        totals[list] = checked_total_weight([totals[list], server.weight]).ok_or_else(|| {
            error(total_weight_error(if server.backup { "the backup servers" } else { "the primary servers" }, "total"))
        })?;
        servers.push(server);
        Ok(())
    })?;
    if servers.is_empty() {
        return Ok((resolved_primaries && text.starts_with(HEADER)).then(Vec::new));
    }
    crate::plus::ids::ServerLines::new(text).attach(None, &mut servers);
    Ok(Some(servers))
}

/// A state file's servers need a primary, unless the configuration has
/// primaries nginx resolves (`resolved_primaries`; the file then holds
/// the static backups only).
pub fn check_primaries(servers: &[ServerSpec], resolved_primaries: bool) -> Result<(), String> {
    if resolved_primaries || servers.iter().any(|s| !s.backup) {
        return Ok(());
    }
    Err("every server of the file is a backup, and the configuration has no primary server that nginx resolves: \
         at least one primary is needed"
        .to_string())
}

/// `server ADDRESS [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N]
/// [backup] [down]` (the words after `server`); as in nginx, a parameter
/// given again replaces the earlier one.
fn parse_server_words(words: &[String]) -> Result<ServerSpec, String> {
    let Some((address, params)) = words.split_first() else {
        return Err("\"server\" needs an address".to_string());
    };
    let mut spec = ServerSpec::new(parse_peer_address(address)?);
    for word in params {
        let (name, value) = word.split_once('=').unwrap_or((word, ""));
        match (word.as_str(), Param::from_name(name)) {
            ("backup", _) => spec.backup = true,
            ("down", _) => spec.down = true,
            (_, Some(param)) if word.contains('=') => {
                let v = param.parse_config_value(value)?;
                match param {
                    Param::Weight => spec.weight = v,
                    Param::MaxFails => spec.max_fails = v,
                    Param::FailTimeout => spec.fail_timeout = v,
                    Param::MaxConns => spec.max_conns = v,
                }
            }
            _ => return Err(format!("invalid server parameter \"{}\"", crate::address::shown(word))),
        }
    }
    Ok(spec)
}

/// Peers as the specs that recreate them (their live figures dropped).
/// Fails, naming the peer, for a name a state file cannot hold: a unix
/// path that is not UTF-8 (its copy replaced the bytes with U+FFFD).
pub fn specs_of(peers: &[PeerView]) -> Result<Vec<ServerSpec>, String> {
    peers
        .iter()
        .map(|p| {
            let address = (!p.name.contains(char::REPLACEMENT_CHARACTER))
                .then(|| parse_peer_address(&p.name).ok())
                .flatten()
                .ok_or_else(|| format!("server \"{}\" cannot be written to a state file", p.name.escape_debug()))?;
            let mut spec = ServerSpec::new(address);
            spec.weight = p.weight as u64;
            spec.max_fails = p.max_fails;
            spec.fail_timeout = p.fail_timeout as u64;
            spec.max_conns = p.max_conns;
            spec.backup = p.backup;
            spec.down = p.down;
            spec.id = p.stats.id;
            Ok(spec)
        })
        .collect()
}

/// A peer's address as nginx names it (`ngx_sock_ntop`): what the state
/// files and the configuration can hold. IP addresses as the APIs take
/// them; `unix:` with any path nginx accepts (1 to 107 bytes, relative
/// ones too, any character but NUL), where the APIs are stricter.
pub fn parse_peer_address(text: &str) -> Result<Address, String> {
    match text.strip_prefix("unix:") {
        Some(path) if !path.is_empty() && path.len() <= MAX_UNIX_PATH && !path.contains('\0') => {
            Ok(Address::Unix(path.to_string()))
        }
        Some(_) => Err(format!(
            "server address \"{}\" must be a unix socket path of 1 to {MAX_UNIX_PATH} bytes",
            crate::address::shown(text)
        )),
        None => Address::parse(text).map_err(|e| e.text),
    }
}

/// Hands each statement of a file in nginx's configuration syntax to
/// `statement`, in order, with the line it starts on and its words
/// unquoted (see [`tokens`]); a block (`{`, `}`) is an error.
fn statements(
    text: &str,
    mut statement: impl FnMut(usize, Vec<String>) -> Result<(), StateError>,
) -> Result<(), StateError> {
    tokens(text, false, |token| match token {
        Token::Statement { start_line, words, .. } => statement(start_line, words),
        // Not made without `blocks`.
        Token::Open { line, .. } | Token::Close { line } => Err(StateError { line, text: String::new() }),
    })
}

/// What [`tokens`] reads.
pub(crate) enum Token {
    /// `WORDS;`, from `start_line` to the `;` on `end_line`.
    Statement { start_line: usize, end_line: usize, words: Vec<String> },
    /// `WORDS {` (with `blocks`).
    Open { line: usize, words: Vec<String> },
    /// `}` (with `blocks`).
    Close { line: usize },
}

/// Reads a file in nginx's configuration syntax, handing `token` each
/// statement, in order, its words unquoted (`"..."`, `'...'`, and the
/// escapes `\"`, `\'`, `\\`, `\t`, `\r`, `\n`, as `ngx_conf_read_token`
/// reads them), and with `blocks` each `{` and `}` (else they are errors);
/// `#` at the start of a word comments to the end of the line. An unquoted
/// word ends at whitespace, `;` or `{`, except a `{` right after `$` (or
/// after such a `{`), which stays in it as in `${name}`; `}` inside a word
/// is part of it.
pub(crate) fn tokens(
    text: &str,
    blocks: bool,
    mut token: impl FnMut(Token) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    let unexpected = |c: char, line: usize| StateError {
        line,
        text: format!("unexpected \"{c}\" (a state file holds only \"server\" lines)"),
    };
    let mut words: Vec<String> = Vec::new();
    let mut start_line = 1;
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if is_space(c) => {}
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            ';' => {
                let start_line = if words.is_empty() { line } else { start_line };
                token(Token::Statement { start_line, end_line: line, words: std::mem::take(&mut words) })?
            }
            '{' if blocks => token(Token::Open { line, words: std::mem::take(&mut words) })?,
            '}' if blocks => {
                // `deleted }`: a block's last statement may lack its `;`.
                if !words.is_empty() {
                    token(Token::Statement { start_line, end_line: line, words: std::mem::take(&mut words) })?
                }
                token(Token::Close { line })?
            }
            '{' | '}' => return Err(unexpected(c, line)),
            _ => {
                if words.is_empty() {
                    start_line = line;
                }
                let quote = (c == '"' || c == '\'').then_some(c);
                let mut word = String::new();
                let mut pending = if quote.is_some() { None } else { Some(c) };
                let mut variable = false;
                loop {
                    let Some(c) = pending.take().or_else(|| chars.next()) else {
                        if quote.is_some() {
                            return Err(StateError { line: start_line, text: "missing closing quote".to_string() });
                        }
                        break;
                    };
                    if quote.is_none() && c == '{' && variable {
                        word.push(c);
                        continue;
                    }
                    variable = c == '$';
                    if c == '\\' {
                        match chars.next() {
                            Some(e @ ('"' | '\'' | '\\')) => word.push(e),
                            Some('t') => word.push('\t'),
                            Some('r') => word.push('\r'),
                            Some('n') => word.push('\n'),
                            Some(other) => {
                                line += usize::from(other == '\n');
                                word.push('\\');
                                word.push(other);
                            }
                            None => word.push('\\'),
                        }
                        continue;
                    }
                    if Some(c) == quote {
                        if chars.peek().is_some_and(|&n| !is_space(n) && n != ';') {
                            return Err(StateError { line, text: format!("unexpected text after the closing {c}") });
                        }
                        break;
                    }
                    if quote.is_none() && (is_space(c) || c == ';' || c == '{') {
                        // The delimiter is handled by the outer loop.
                        pending = Some(c);
                        break;
                    }
                    line += usize::from(c == '\n');
                    word.push(c);
                }
                words.push(word);
                match pending {
                    Some('\n') => line += 1,
                    Some(';') => {
                        token(Token::Statement { start_line, end_line: line, words: std::mem::take(&mut words) })?
                    }
                    Some('{') if blocks => token(Token::Open { line, words: std::mem::take(&mut words) })?,
                    Some('{') => return Err(unexpected('{', line)),
                    _ => {}
                }
            }
        }
    }
    if let Some(first) = words.first() {
        return Err(StateError {
            line: start_line,
            text: format!("missing ';' after \"{}\"", crate::address::shown(first)),
        });
    }
    Ok(())
}

/// A word as nginx's configuration syntax must write it: as is unless it
/// is empty or holds whitespace, a control character or one of
/// `; { } " ' # \ $` (no address the APIs accept does, so the dyups
/// file, read without quoting, never gets quotes), otherwise in double
/// quotes with `"`, `\` and line breaks escaped.
pub fn config_word(word: &str) -> std::borrow::Cow<'_, str> {
    let special = |c: char| c.is_whitespace() || c.is_control() || ";{}\"'#\\$".contains(c);
    if !word.is_empty() && !word.chars().any(special) {
        return word.into();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out.into()
}

fn strip_prefix(text: &str) -> String {
    text.strip_prefix("add server failed: ").unwrap_or(text).to_string()
}

/// Writes a `dynamic_state_file`.
pub fn render_server_state(servers: &[ServerSpec]) -> String {
    let spec = UpstreamSpec { balancer: Balancer::RoundRobin, servers: servers.to_vec(), check: None };
    format!("{HEADER}{}", config_text(&spec))
}

/// One upstream of a `dyups_upstream_conf` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DyupsEntry {
    Upstream(String, UpstreamSpec),
    /// An upstream of the configuration deleted through the API.
    Deleted(String),
}

/// Reads a `dyups_upstream_conf` file of `upstream NAME { ... }` blocks.
pub fn parse_dyups_conf(text: &str) -> Result<Vec<DyupsEntry>, StateError> {
    let body = strip_comments(text);
    let ids = crate::plus::ids::ServerLines::new(text);
    let mut entries: Vec<DyupsEntry> = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut lines = LineCounter::new(&body);
    let mut rest = 0;
    loop {
        let skipped = body[rest..].len() - body[rest..].trim_start().len();
        rest += skipped;
        if rest >= body.len() {
            return Ok(entries);
        }
        let line = lines.at(rest);
        let error = |text: String| StateError { line, text };
        let after_keyword = body[rest..]
            .strip_prefix("upstream")
            .filter(|s| s.starts_with(char::is_whitespace))
            .ok_or_else(|| error("expected \"upstream NAME {\"".to_string()))?;
        let open = after_keyword.find('{').ok_or_else(|| error("missing '{' after the upstream name".to_string()))?;
        let name = after_keyword[..open].trim();
        validate_upstream_name(name).map_err(|e| error(e.text))?;
        if !names.insert(name.to_ascii_lowercase()) {
            return Err(error(format!("upstream \"{name}\" is defined twice")));
        }
        let block_start = rest + "upstream".len() + open + 1;
        let close = block_end(&body[block_start..])
            .ok_or_else(|| error(format!("missing '}}' closing upstream \"{name}\"")))?;
        let block = &body[block_start..block_start + close];
        if block.trim().trim_end_matches(';').trim() == "deleted" {
            entries.push(DyupsEntry::Deleted(name.to_string()));
        } else {
            let mut spec = parse_block(block, lines.at(block_start), name)?;
            ids.attach(Some(name), &mut spec.servers);
            entries.push(DyupsEntry::Upstream(name.to_string(), spec));
        }
        rest = block_start + close + 1;
    }
}

/// The offset of the `}` that closes a block, skipping the braces of
/// `${name}` variables in hash keys and quoted words (`check_http_send`).
fn block_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quotes = Quotes::default();
    let mut i = 0;
    while i < bytes.len() {
        let inside = quotes.inside();
        quotes.step(char::from(bytes[i]));
        match bytes[i] {
            _ if inside || quotes.inside() => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => i += text[i..].find('}')? + 1,
            b'}' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// `block` cut after each `;` that is not quoted.
fn split_statements(block: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quotes = Quotes::default();
    let mut start = 0;
    for (i, c) in block.char_indices() {
        let inside = quotes.inside();
        quotes.step(c);
        if c == ';' && !inside {
            out.push(&block[start..=i]);
            start = i + 1;
        }
    }
    out.push(&block[start..]);
    out
}

/// Parses an upstream block's body statement by statement, so that an
/// error names the line of the statement at fault (`first_line` is the
/// line the body starts on).
fn parse_block(block: &str, first_line: usize, name: &str) -> Result<UpstreamSpec, StateError> {
    let error =
        |line: usize, text: &str| StateError { line, text: format!("upstream \"{name}\": {}", strip_prefix(text)) };
    // Each statement's newlines are counted once, from the previous one
    // (counting from the block's start for each was O(N²) for N servers).
    let mut lines = LineCounter::new(block);
    let mut offset = 0;
    for statement in split_statements(block) {
        let start = offset + statement.len() - statement.trim_start().len();
        offset += statement.len();
        let trimmed = statement.trim();
        if trimmed.is_empty() {
            continue;
        }
        let line = first_line + lines.at(start) - 1;
        if !trimmed.ends_with(';') {
            return Err(error(line, &format!("missing ';' after \"{}\"", crate::address::shown(trimmed))));
        }
        let directive = trimmed.split(|c: char| c.is_whitespace() || c == ';').next().unwrap_or("");
        if CheckConfBuilder::handles(directive) {
            // Words may be quoted: the whole body's parse below reads them.
            continue;
        }
        parse_statement(trimmed.trim_end_matches(';')).map_err(|e| error(line, &e.text))?;
    }
    // Whole-body rules (no server, backups the balancer forbids, ...).
    parse_body(block).map_err(|e| error(first_line, &e.text))
}

/// Writes a `dyups_upstream_conf` file.
pub fn render_dyups_conf(entries: &[DyupsEntry]) -> String {
    let mut out = String::from(HEADER);
    for entry in entries {
        out.push_str(&render_dyups_entry(entry));
    }
    out
}

/// One upstream's block of a `dyups_upstream_conf` file: the file is
/// [`HEADER`] and its upstreams' blocks in order.
pub fn render_dyups_entry(entry: &DyupsEntry) -> String {
    let mut out = String::new();
    match entry {
        DyupsEntry::Upstream(name, spec) => {
            let _ = writeln!(out, "upstream {name} {{");
            for line in config_text(spec).lines() {
                let _ = writeln!(out, "    {line}");
            }
            out.push_str("}\n");
        }
        DyupsEntry::Deleted(name) => {
            let _ = writeln!(out, "upstream {name} {{\n    deleted;\n}}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;

    fn server(addr: &str) -> ServerSpec {
        ServerSpec::new(Address::parse(addr).unwrap())
    }

    #[test]
    fn file_name_problems() {
        assert_eq!(file_name_problem("/var/lib/x.state"), None);
        assert_eq!(file_name_problem("x"), None);
        for dir in ["/var/lib/", "/var/lib/.", "/var/lib/..", "..", "."] {
            assert_eq!(file_name_problem(dir).as_deref(), Some("names a directory: name the file in it"), "{dir}");
        }
        assert_eq!(MAX_FILE_NAME, 242);
        assert_eq!(file_name_problem(&format!("/d/{}", "a".repeat(242))), None);
        assert!(file_name_problem(&format!("/d/{}", "a".repeat(243)))
            .unwrap()
            .starts_with("its file name is 243 bytes"));
    }

    #[test]
    fn server_state_round_trips() {
        let mut b = server("127.0.0.1:2");
        b.backup = true;
        b.weight = 3;
        let mut c = server("unix:/tmp/s.sock");
        c.down = true;
        c.max_conns = 9;
        let servers = vec![server("127.0.0.1:1"), b, c, server("[::1]:80")];
        let text = render_server_state(&servers);
        assert!(text.starts_with("# Written by"));
        assert_eq!(parse_server_state(&text, false).unwrap(), Some(servers));
    }

    /// Every value nginx's `server` directive accepts comes back as it
    /// was (issue 11 item 4: `weight=2000000` used to brick the restart).
    #[test]
    fn every_value_nginx_accepts_round_trips() {
        use crate::peer::{CONFIG_MAX, MAX_TOTAL_WEIGHT};
        let mut servers = Vec::new();
        for (i, (weight, max_fails, fail_timeout, max_conns)) in [
            (1, 0, 0, 0),
            (1_000_000, 1_000_000, 31_536_000, 1_000_000),
            (1_000_001, 1_000_001, 31_536_001, 1_000_001),
            (2_000_000, 2_000_000, 2_000_000, 2_000_000),
            (u64::from(u32::MAX) + 1, u64::from(u32::MAX) + 1, u64::from(u32::MAX) + 1, u64::from(u32::MAX) + 1),
            // the weights of a list total at most MAX_TOTAL_WEIGHT
            (
                MAX_TOTAL_WEIGHT - (1 + 1_000_000 + 1_000_001 + 2_000_000 + u64::from(u32::MAX) + 1),
                CONFIG_MAX,
                CONFIG_MAX,
                CONFIG_MAX,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let mut s = server(&format!("127.0.0.1:{}", i + 1));
            (s.weight, s.max_fails, s.fail_timeout, s.max_conns) = (weight, max_fails, fail_timeout, max_conns);
            s.down = i % 2 == 1;
            servers.push(s);
        }
        let text = render_server_state(&servers);
        assert_eq!(parse_server_state(&text, false).unwrap(), Some(servers), "{text}");
        // nginx's own spellings of the same values
        let hand = "server 127.0.0.1:1 weight=0002000000 fail_timeout=1h max_conns=9223372036854775807;";
        let s = &parse_server_state(hand, false).unwrap().unwrap()[0];
        assert_eq!((s.weight, s.max_fails, s.fail_timeout, s.max_conns), (2_000_000, 1, 3600, CONFIG_MAX));
        // A list whose weights total more than nginx's balancers can add up.
        for (text, line, list) in [
            (format!("server 127.0.0.1:1 weight={CONFIG_MAX};\n"), 1, "primary"),
            (format!("server 127.0.0.1:1 weight={MAX_TOTAL_WEIGHT};\nserver 127.0.0.1:2 weight={MAX_TOTAL_WEIGHT} backup;\n# x\nserver 127.0.0.1:3 weight=1 backup;\n"), 4, "backup"),
            (format!("server 127.0.0.1:1 weight={CONFIG_MAX};\nserver 127.0.0.1:2 weight={CONFIG_MAX};\nserver 127.0.0.1:3 weight=2;\n"), 1, "primary"),
        ] {
            let e = parse_server_state(&text, false).unwrap_err();
            assert_eq!((e.line, e.text), (line, total_weight_error(&format!("the {list} servers"), "total")), "{text}");
        }
        let at_limit = format!("server 127.0.0.1:1 weight={};\nserver 127.0.0.1:2 weight=1;\nserver 127.0.0.1:3 weight={MAX_TOTAL_WEIGHT} backup;\n", MAX_TOTAL_WEIGHT - 1);
        assert_eq!(parse_server_state(&at_limit, false).unwrap().unwrap().len(), 3, "each list up to the limit");
        for bad in ["weight=9223372036854775808", "weight=0", "max_fails=-1", "max_conns=1.5", "fail_timeout=1x"] {
            let e = parse_server_state(&format!("# x\nserver 127.0.0.1:1 {bad};\n"), false).unwrap_err();
            assert_eq!(e.line, 2, "{bad}");
            assert!(e.text.ends_with("to 9223372036854775807"), "{bad}: {}", e.text);
        }
    }

    /// Every address nginx can name a peer by comes back as it was, unix
    /// paths with any character included (quoted in the file).
    #[test]
    fn every_peer_address_round_trips() {
        let names = [
            "unix:/tmp/a b.sock",
            "unix:/tmp/q\"uote'and\\back;semi{brace}#hash$dollar",
            "unix:/tmp/tab\tnew\nline\rcr",
            "unix:relative.sock",
            "unix:/ü/ß.sock",
            "[::ffff:1.2.3.4]:80",
            "[::0.0.2.1]:8080",
            "[2001:db8::1]:1",
            "127.0.0.1:65535",
        ];
        let mut long = String::from("unix:/");
        long.push_str(&" ".repeat(MAX_UNIX_PATH - 1));
        let servers: Vec<ServerSpec> = names
            .iter()
            .map(|n| n.to_string())
            .chain([long])
            .map(|n| ServerSpec::new(parse_peer_address(&n).unwrap()))
            .collect();
        let text = render_server_state(&servers);
        assert!(text.contains("server \"unix:/tmp/a b.sock\" weight=1"), "{text}");
        assert_eq!(parse_server_state(&text, false).unwrap(), Some(servers), "{text}");
        assert!(parse_peer_address(&format!("unix:/{}", "a".repeat(MAX_UNIX_PATH))).is_err());
        assert!(parse_peer_address("unix:").is_err());
        assert!(parse_peer_address("unix:/a\0b").is_err());
        assert!(parse_peer_address("localhost:80").is_err());
    }

    #[test]
    fn quoting_follows_nginx() {
        let s =
            parse_server_state("server 'unix:/a \\'b' down;\nserver \"unix:/c\\d\" backup;", false).unwrap().unwrap();
        assert_eq!(s[0].address, Address::Unix("/a 'b".into()));
        assert!(s[0].down);
        assert_eq!(s[1].address, Address::Unix("/c\\d".into()), "an unknown escape keeps its backslash");
        let e = parse_server_state("server 127.0.0.1:1;\nserver \"unix:/a;\n", false).unwrap_err();
        assert_eq!((e.line, e.text.as_str()), (2, "missing closing quote"));
        let e = parse_server_state("server \"unix:/a\"x;", false).unwrap_err();
        assert!(e.text.contains("after the closing"), "{}", e.text);
        let e = parse_server_state("# c\nload_module x.so;\nevents {\n}\n", false).unwrap_err();
        assert_eq!(
            (e.line, e.text.as_str()),
            (2, "unknown directive \"load_module\" (a state file holds only \"server\" lines)")
        );
        let e = parse_server_state("server 127.0.0.1:1;\nupstream x {", false).unwrap_err();
        assert_eq!(e.line, 2, "{}", e.text);
        assert_eq!(
            parse_server_state("server 127.0.0.1:1; # unix:/x\n#server 127.0.0.1:2;", false).unwrap().unwrap().len(),
            1
        );
        // Found by the fuzzer: an empty statement is not "nothing to restore".
        let e = parse_server_state("# only a comment\n;\n", false).unwrap_err();
        assert_eq!((e.line, e.text.as_str()), (2, "unexpected \";\""));
    }

    /// Hand-written files are read as nginx reads `server` lines (item 3 of
    /// the review): a parameter given again replaces the earlier one,
    /// `fail_timeout` numbers of any length, `{` after `$` and `}` inside an
    /// unquoted word are part of it (`ngx_conf_read_token`).
    #[test]
    fn hand_written_files_read_as_nginx_reads_them() {
        let s = &parse_server_state(
            "server 127.0.0.1:9;\nserver 127.0.0.1:1 weight=2 down weight=3 backup backup max_fails=0 max_fails=4;",
            false,
        )
        .unwrap()
        .unwrap()[1];
        assert_eq!((s.weight, s.max_fails, s.backup, s.down), (3, 4, true, true));
        for (param, seconds) in [("1000000000000s", 1_000_000_000_000), ("0000000000001s", 1), ("1h 5", 3_605)] {
            let text = format!("server 127.0.0.1:1 \"fail_timeout={param}\";");
            assert_eq!(parse_server_state(&text, false).unwrap().unwrap()[0].fail_timeout, seconds, "{text}");
        }
        let s = parse_server_state(
            "server unix:/tmp/a${b}c.sock;\nserver unix:/tmp/x}y weight=2;\nserver unix:/${{x;\nserver unix:/#x;",
            false,
        )
        .unwrap()
        .unwrap();
        let paths: Vec<String> = s.iter().map(|s| s.address.to_string()).collect();
        assert_eq!(paths, ["unix:/tmp/a${b}c.sock", "unix:/tmp/x}y", "unix:/${{x", "unix:/#x"]);
        // what nginx refuses too
        for (text, line, error) in [
            ("server unix:/tmp/x{y;", 1, "unexpected \"{\" (a state file holds only \"server\" lines)"),
            ("server 127.0.0.1:1;\n}", 2, "unexpected \"}\" (a state file holds only \"server\" lines)"),
            (
                "server 127.0.0.1:1 fail_timeout=1ms;",
                1,
                "fail_timeout must be an integer from 0 to 9223372036854775807",
            ),
        ] {
            let e = parse_server_state(text, false).unwrap_err();
            assert_eq!((e.line, e.text.as_str()), (line, error), "{text}");
        }
    }

    #[test]
    fn empty_state_means_nothing_to_restore() {
        assert_eq!(parse_server_state("", false).unwrap(), None);
        // Where the configuration's primaries are resolved by nginx, the
        // static servers may be backups only, or none (the module's file).
        let backups = "server 127.0.0.1:1 backup; # id=4\n";
        let s = parse_server_state(backups, true).unwrap().unwrap();
        assert_eq!((s.len(), s[0].backup, s[0].id), (1, true, Some(4)), "a backup keeps its ID");
        assert!(check_primaries(&s, true).is_ok());
        // Without them, the file is read (the module wrote it before a
        // configuration change) but not restored.
        let s = parse_server_state(backups, false).unwrap().unwrap();
        let e = check_primaries(&s, false).unwrap_err();
        assert!(e.starts_with("every server of the file is a backup"), "{e}");
        let mixed = parse_server_state("server 127.0.0.1:1 backup;\nserver 127.0.0.1:2;\n", false).unwrap().unwrap();
        assert!(check_primaries(&mixed, false).is_ok());
        assert_eq!(parse_server_state(HEADER, true).unwrap(), Some(Vec::new()), "the module's file of no server");
        assert_eq!(parse_server_state(HEADER, false).unwrap(), None, "nothing to restore without resolved primaries");
        assert_eq!(parse_server_state("# by hand\n", true).unwrap(), None, "not the module's: nothing to restore");
        assert_eq!(parse_server_state("# only a comment\n\n", false).unwrap(), None);
    }

    #[test]
    fn corrupt_state_names_the_line() {
        let e = parse_server_state("server 127.0.0.1:1;\nserver 127.0.0.1:2 weight=0;\n", false).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.text.contains("weight must be"), "{}", e.text);
        let e = parse_server_state("server 127.0.0.1:1;\n\nleast_conn;\n", false).unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse_server_state("server 127.0.0.1:1;\nserver 127.0.0.1:2", false).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.text.contains("missing ';'"));
    }

    #[test]
    fn dyups_conf_round_trips() {
        let spec = parse_body("hash $uri consistent; server 127.0.0.1:1 weight=2; server 127.0.0.1:2 down;").unwrap();
        let backups = parse_body("least_conn; server 127.0.0.1:3; server 127.0.0.1:4 backup;").unwrap();
        let entries = vec![
            DyupsEntry::Upstream("a.example".into(), spec),
            DyupsEntry::Deleted("host2".into()),
            DyupsEntry::Upstream("b".into(), backups),
        ];
        let text = render_dyups_conf(&entries);
        assert_eq!(parse_dyups_conf(&text).unwrap(), entries);
    }

    #[test]
    fn addresses_the_apis_accept_are_never_quoted() {
        // Found by the fuzzer: a non-ASCII unix path was quoted, and the
        // dyups file (read without quoting) then refused it.
        let spec = parse_body("server unix:/tmp/Õm/=10;").unwrap();
        let entries = vec![DyupsEntry::Upstream("a".into(), spec.clone())];
        let text = render_dyups_conf(&entries);
        assert!(!text.contains('"'), "{text}");
        assert_eq!(parse_dyups_conf(&text).unwrap(), entries);
        assert!(!render_server_state(&spec.servers).contains('"'));
    }

    #[test]
    fn braces_of_hash_key_variables_do_not_end_a_block() {
        // Found by the fuzzer: the block used to end at the `}` of `${uri}`.
        let spec = parse_body("hash $host${uri}x consistent; server 127.0.0.1:1;").unwrap();
        let entries = vec![DyupsEntry::Upstream("a".into(), spec)];
        assert_eq!(parse_dyups_conf(&render_dyups_conf(&entries)).unwrap(), entries);
    }

    #[test]
    fn dyups_conf_accepts_hand_written_files() {
        let text = "# upstreams\nupstream host1 {\n  server 127.0.0.1:8088; # main\n}\n\nupstream host2{server 127.0.0.1:8089;}\n";
        let entries = parse_dyups_conf(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(parse_dyups_conf("").unwrap(), vec![]);
    }

    #[test]
    fn corrupt_dyups_conf_names_the_line() {
        let e = parse_dyups_conf(
            "upstream a {\n    server 127.0.0.1:1;\n}\nupstream b {\n    server 127.0.0.1:2;\n    aaserver x;\n}\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.text.contains("upstream \"b\": unknown directive \"aaserver\""), "{e}");
        let e = parse_dyups_conf("# comment\nupstream a {\n    server 127.0.0.1:1 weight=0;\n}\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = parse_dyups_conf("upstream a {\n server 127.0.0.1:1;\n").unwrap_err();
        assert!(e.text.contains("missing '}'"));
        let e = parse_dyups_conf("server 127.0.0.1:1;").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse_dyups_conf("upstream a/b { server 127.0.0.1:1; }").unwrap_err();
        assert!(e.text.contains("not a valid host name"));
        let e = parse_dyups_conf("upstream a { server 127.0.0.1:1; }\nupstream A { server 127.0.0.1:2; }").unwrap_err();
        assert_eq!(e.line, 2);
    }

    /// The line of an error deep in a block of tens of thousands of
    /// servers (hunt 19 F1: each statement's line was counted from the
    /// block's start), after comments, statements over two lines and two
    /// statements on a line; such a block is read whole.
    #[test]
    fn errors_in_a_long_block_name_their_line() {
        const N: usize = 30_000;
        let server = |i: usize| format!("    server 127.1.{}.{}:80 weight=1; # {i}", i / 256, i % 256);
        let file = |lines: &[String]| {
            format!("# header\nupstream a {{\n    server 127.0.0.1:1;\n}}\nupstream big {{\n{}\n}}\n", lines.join("\n"))
        };
        const FIRST: usize = 6; // the line of `lines[0]`
        let mut lines: Vec<String> = (0..N).map(server).collect();
        lines[100] = "    server 127.2.0.1:80\n        weight=2;".to_string();
        lines[200] = "    server 127.2.0.2:80; server 127.2.0.3:80;".to_string();
        let entries = parse_dyups_conf(&file(&lines)).unwrap();
        let [DyupsEntry::Upstream(_, _), DyupsEntry::Upstream(name, spec)] = &entries[..] else { panic!() };
        assert_eq!((name.as_str(), spec.servers.len()), ("big", N + 1));
        let text = parse_dyups_conf("upstream big {\n    server 127.3.0.1:80 weight=0;\n}\n").unwrap_err().text;
        assert!(text.starts_with("upstream \"big\": "), "{text}");
        // `lines[100]` takes two lines: the ones after it are one further.
        let line_of = |k: usize| FIRST + k + usize::from(k > 100);
        for k in [0, 1, 99, 101, 150, 201, N / 2, N - 1] {
            let mut bad = lines.clone();
            bad[k] = format!("{}\n    server 127.3.0.1:80 weight=0;", bad[k]);
            let e = parse_dyups_conf(&file(&bad)).unwrap_err();
            assert_eq!((e.line, &e.text), (line_of(k) + 1, &text), "{k}");
            // Its first word on one line, the rest on the next.
            let mut bad = lines.clone();
            bad[k] = "    server\n127.3.0.1:80 weight=0;".to_string();
            assert_eq!(parse_dyups_conf(&file(&bad)).unwrap_err().line, line_of(k), "{k}");
            // The second statement of a line.
            let mut bad = lines.clone();
            bad[k] = "    server 127.3.0.2:80; server 127.3.0.1:80 weight=0; # c".to_string();
            let e = parse_dyups_conf(&file(&bad)).unwrap_err();
            assert_eq!((e.line, &e.text), (line_of(k), &text), "{k}");
        }
    }

    #[test]
    fn nothing_hostile_survives_rendering() {
        // Everything rendered comes from validated values; the renderer's
        // output must parse back to exactly the same values.
        let body = "server 127.0.0.1:1 weight=5 max_fails=0 fail_timeout=0 max_conns=1000000;";
        let spec = parse_body(body).unwrap();
        let text = render_dyups_conf(&[DyupsEntry::Upstream("x".into(), spec.clone())]);
        assert_eq!(parse_dyups_conf(&text).unwrap(), vec![DyupsEntry::Upstream("x".into(), spec)]);
        assert!(!text.lines().skip(1).any(|l| l.contains('#') || l.contains('"')));
    }

    #[test]
    fn dyups_conf_keeps_checks() {
        let spec = parse_body(
            "server 127.0.0.1:1; check interval=1000 type=http; \
             check_http_send \"GET /x;y#z}{ HTTP/1.0\\r\\nHost: a\\r\\n\\r\\n\";",
        )
        .unwrap();
        let entries = vec![DyupsEntry::Upstream("x".into(), spec), DyupsEntry::Deleted("y".into())];
        let text = render_dyups_conf(&entries);
        assert_eq!(parse_dyups_conf(&text).unwrap(), entries);
        let bad = "upstream x {\n    server 127.0.0.1:1;\n    check interval=0;\n}\n";
        assert!(parse_dyups_conf(bad).unwrap_err().text.contains("interval in \"check\""));
    }
}

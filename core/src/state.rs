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

use crate::dyups::{
    config_text, parse_body, parse_statement, strip_comments, validate_upstream_name, BalancerSpec, Statement,
    UpstreamSpec,
};
use crate::peer::ServerSpec;

/// A state file that cannot be used, with the line where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {text}")]
pub struct StateError {
    pub line: usize,
    pub text: String,
}

const HEADER: &str = "# Written by nginx-dynamic-upstream after every change through its APIs.\n";

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// Reads a `dynamic_state_file`: `server ...;` statements only. Returns
/// None for a file with no statements (nothing to restore).
pub fn parse_server_state(text: &str) -> Result<Option<Vec<ServerSpec>>, StateError> {
    let body = strip_comments(text);
    if body.trim().is_empty() {
        return Ok(None);
    }
    // Check statement by statement, so an error names its line.
    let mut offset = 0;
    for statement in body.split_inclusive(';') {
        let start = offset + statement.len() - statement.trim_start().len();
        offset += statement.len();
        let trimmed = statement.trim();
        if trimmed.is_empty() {
            continue;
        }
        let error = |text: String| StateError { line: line_of(&body, start), text };
        if !trimmed.ends_with(';') {
            return Err(error(format!("missing ';' after \"{}\"", crate::address::shown(trimmed))));
        }
        match parse_statement(trimmed.trim_end_matches(';')) {
            Ok(Some(Statement::Server(_))) => {}
            Ok(_) => {
                return Err(error(format!("expected a \"server\" line, found \"{}\"", crate::address::shown(trimmed))))
            }
            Err(e) => return Err(error(strip_prefix(&e.text))),
        }
    }
    let spec = parse_body(&body).map_err(|e| StateError { line: 1, text: strip_prefix(&e.text) })?;
    Ok(Some(spec.servers))
}

fn strip_prefix(text: &str) -> String {
    text.strip_prefix("add server failed: ").unwrap_or(text).to_string()
}

/// Writes a `dynamic_state_file`.
pub fn render_server_state(servers: &[ServerSpec]) -> String {
    let spec = UpstreamSpec { balancer: BalancerSpec::RoundRobin, servers: servers.to_vec() };
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
    let mut entries: Vec<DyupsEntry> = Vec::new();
    let mut rest = 0;
    loop {
        let skipped = body[rest..].len() - body[rest..].trim_start().len();
        rest += skipped;
        if rest >= body.len() {
            return Ok(entries);
        }
        let line = line_of(&body, rest);
        let error = |text: String| StateError { line, text };
        let after_keyword = body[rest..]
            .strip_prefix("upstream")
            .filter(|s| s.starts_with(char::is_whitespace))
            .ok_or_else(|| error("expected \"upstream NAME {\"".to_string()))?;
        let open = after_keyword.find('{').ok_or_else(|| error("missing '{' after the upstream name".to_string()))?;
        let name = after_keyword[..open].trim();
        validate_upstream_name(name).map_err(|e| error(e.text))?;
        if entries.iter().any(|e| entry_name(e).eq_ignore_ascii_case(name)) {
            return Err(error(format!("upstream \"{name}\" is defined twice")));
        }
        let block_start = rest + "upstream".len() + open + 1;
        let close = block_end(&body[block_start..])
            .ok_or_else(|| error(format!("missing '}}' closing upstream \"{name}\"")))?;
        let block = &body[block_start..block_start + close];
        if block.trim().trim_end_matches(';').trim() == "deleted" {
            entries.push(DyupsEntry::Deleted(name.to_string()));
        } else {
            let spec = parse_block(block, line_of(&body, block_start), name)?;
            entries.push(DyupsEntry::Upstream(name.to_string(), spec));
        }
        rest = block_start + close + 1;
    }
}

/// The offset of the `}` that closes a block, skipping the braces of
/// `${name}` variables in hash keys.
fn block_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => i += text[i..].find('}')? + 1,
            b'}' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Parses an upstream block's body statement by statement, so that an
/// error names the line of the statement at fault (`first_line` is the
/// line the body starts on).
fn parse_block(block: &str, first_line: usize, name: &str) -> Result<UpstreamSpec, StateError> {
    let error =
        |line: usize, text: &str| StateError { line, text: format!("upstream \"{name}\": {}", strip_prefix(text)) };
    let mut offset = 0;
    for statement in block.split_inclusive(';') {
        let start = offset + statement.len() - statement.trim_start().len();
        offset += statement.len();
        let trimmed = statement.trim();
        if trimmed.is_empty() {
            continue;
        }
        let line = first_line + block[..start].matches('\n').count();
        if !trimmed.ends_with(';') {
            return Err(error(line, &format!("missing ';' after \"{}\"", crate::address::shown(trimmed))));
        }
        parse_statement(trimmed.trim_end_matches(';')).map_err(|e| error(line, &e.text))?;
    }
    // Whole-body rules (no server, backups the balancer forbids, ...).
    parse_body(block).map_err(|e| error(first_line, &e.text))
}

fn entry_name(entry: &DyupsEntry) -> &str {
    match entry {
        DyupsEntry::Upstream(name, _) | DyupsEntry::Deleted(name) => name,
    }
}

/// Writes a `dyups_upstream_conf` file.
pub fn render_dyups_conf(entries: &[DyupsEntry]) -> String {
    let mut out = String::from(HEADER);
    for entry in entries {
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
        assert_eq!(parse_server_state(&text).unwrap(), Some(servers));
    }

    #[test]
    fn empty_state_means_nothing_to_restore() {
        assert_eq!(parse_server_state("").unwrap(), None);
        assert_eq!(parse_server_state("# only a comment\n\n").unwrap(), None);
    }

    #[test]
    fn corrupt_state_names_the_line() {
        let e = parse_server_state("server 127.0.0.1:1;\nserver 127.0.0.1:2 weight=0;\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.text.contains("weight must be"), "{}", e.text);
        let e = parse_server_state("server 127.0.0.1:1;\n\nleast_conn;\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse_server_state("server 127.0.0.1:1;\nserver 127.0.0.1:2").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.text.contains("missing ';'"));
        let e = parse_server_state("server 127.0.0.1:1 backup;\n").unwrap_err();
        assert!(e.text.contains("at least one primary"));
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

    #[test]
    fn nothing_hostile_survives_rendering() {
        // Everything rendered comes from validated values; the renderer's
        // output must parse back to exactly the same values.
        for body in ["server 127.0.0.1:1 weight=5 max_fails=0 fail_timeout=0 max_conns=1000000;"] {
            let spec = parse_body(body).unwrap();
            let text = render_dyups_conf(&[DyupsEntry::Upstream("x".into(), spec.clone())]);
            assert_eq!(parse_dyups_conf(&text).unwrap(), vec![DyupsEntry::Upstream("x".into(), spec)]);
            assert!(!text.lines().skip(1).any(|l| l.contains('#') || l.contains('"')));
        }
    }
}

//! Statements of a flat nginx configuration body (what a dyups POST holds:
//! `server ...; check ...; check_http_send "...";`), split into words the
//! way nginx's `ngx_conf_read_token` splits them, so that a quoted
//! `check_http_send` string may hold `;`, `#` and spaces, and `\r\n` in it
//! means CR LF, as in nginx.conf.

use crate::address::shown;
use crate::error::ApiError;

/// One statement: its words (the directive first), unquoted and unescaped.
pub type Statement = Vec<String>;

/// Most statements a body may hold (a body is at most a few thousand
/// servers; this bounds the work a hostile body causes).
pub const MAX_STATEMENTS: usize = 100_000;

fn unexpected(what: &str) -> ApiError {
    ApiError::bad_request("invalid_body", format!("unexpected {what} in the body"))
}

/// Splits `text` into statements, as nginx's parser does for the inside of
/// an `upstream {}` block without nested blocks:
/// - words are separated by spaces, tabs, CR and LF; `;` ends a statement;
/// - `"..."` and `'...'` quote a whole word (nothing may follow the closing
///   quote but a separator or `;`);
/// - in words and quotes, `\"`, `\'`, `\\` stand for the character and
///   `\t`, `\r`, `\n` for tab, CR, LF; another backslash stays as is;
/// - `#` at the start of a word starts a comment to the end of the line;
/// - `{` ends a word (a block, refused) except right after `$` (`${name}`),
///   and `}` at the start of a word closes a block (refused).
///
/// Other control characters than tab, CR and LF are refused, as is text
/// after the last `;`.
pub fn statements(text: &str) -> Result<Vec<Statement>, ApiError> {
    Ok(marked_statements(text)?.into_iter().map(|(words, _)| words).collect())
}

/// [`statements`], each with whether one of its words was quoted.
pub fn marked_statements(text: &str) -> Result<Vec<(Statement, bool)>, ApiError> {
    if let Some(c) = text.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')) {
        return Err(ApiError::bad_request("invalid_body", format!("control character {c:?} in the body")));
    }
    let mut out = Vec::new();
    let mut words: Statement = Vec::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            ';' if words.is_empty() => return Err(unexpected("\";\"")),
            ';' => {
                if out.len() == MAX_STATEMENTS {
                    return Err(ApiError::bad_request(
                        "invalid_body",
                        format!("more than {MAX_STATEMENTS} statements in the body"),
                    ));
                }
                out.push((std::mem::take(&mut words), std::mem::take(&mut quoted)));
            }
            '{' | '}' => return Err(unexpected(&format!("\"{c}\" (blocks are not allowed here)"))),
            '"' | '\'' => {
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => return Err(unexpected(&format!("end of the body inside a {c}-quoted string"))),
                        Some(q) if q == c => break,
                        Some('\\') => push_escaped(&mut word, chars.next()),
                        Some(other) => word.push(other),
                    }
                }
                match chars.peek() {
                    None | Some(' ' | '\t' | '\r' | '\n' | ';') => {
                        words.push(word);
                        quoted = true;
                    }
                    Some(&next) => {
                        return Err(unexpected(&format!("\"{}\" after a quoted string", shown(&next.to_string()))))
                    }
                }
            }
            first => {
                let mut word = String::new();
                let mut previous = first;
                let mut next = Some(first);
                while let Some(c) = next {
                    match c {
                        '\\' => push_escaped(&mut word, chars.next()),
                        '{' if previous != '$' => return Err(unexpected("\"{\" (blocks are not allowed here)")),
                        c => word.push(c),
                    }
                    previous = c;
                    next = chars.next_if(|&c| !matches!(c, ' ' | '\t' | '\r' | '\n' | ';'));
                }
                words.push(word);
            }
        }
    }
    if !words.is_empty() {
        let last = words.join(" ");
        return Err(ApiError::bad_request("invalid_body", format!("missing ';' after \"{}\"", shown(&last))));
    }
    Ok(out)
}

/// The character after a backslash, as nginx unescapes it.
fn push_escaped(word: &mut String, next: Option<char>) {
    match next {
        Some('t') => word.push('\t'),
        Some('r') => word.push('\r'),
        Some('n') => word.push('\n'),
        Some(c @ ('"' | '\'' | '\\')) => word.push(c),
        Some(c) => {
            word.push('\\');
            word.push(c);
        }
        None => word.push('\\'),
    }
}

/// `text` as one word of nginx's configuration: bare when it needs no
/// quoting, else double-quoted with `"`, `\`, tab, CR and LF escaped.
/// [`statements`] reads it back as `text`.
pub fn quoted(text: &str) -> String {
    let bare = !text.is_empty()
        && !text.starts_with(['#', '}'])
        && !text.chars().any(|c| c.is_whitespace() || c.is_control() || ";{\"'\\".contains(c));
    if bare {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Vec<String>> {
        statements(text).unwrap()
    }

    fn err(text: &str) -> String {
        statements(text).unwrap_err().text
    }

    #[test]
    fn the_tengine_dyups_body() {
        assert_eq!(
            words("server 127.0.0.1:8088;check interval=3000 rise=2 fall=5 timeout=1000 type=http default_down=false;"),
            vec![
                vec!["server", "127.0.0.1:8088"],
                vec!["check", "interval=3000", "rise=2", "fall=5", "timeout=1000", "type=http", "default_down=false"],
            ]
        );
    }

    #[test]
    fn quoted_strings_keep_separators_and_unescape() {
        assert_eq!(
            words("check_http_send \"GET /a;b#c HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n\" ;\n"),
            vec![vec!["check_http_send", "GET /a;b#c HTTP/1.0\r\nHost: x\r\n\r\n"]]
        );
        assert_eq!(words("a 'it\\'s \"q\"' \"\\\\ \\x\";"), vec![vec!["a", "it's \"q\"", "\\ \\x"]]);
        assert_eq!(words("a \"\";"), vec![vec!["a", ""]]);
        // Escapes work outside quotes too, as in nginx; an escaped ";" stays
        // in the word, backslash included.
        assert_eq!(words("a b\\;c\\td;"), vec![vec!["a", "b\\;c\td"]]);
    }

    #[test]
    fn comments_only_at_the_start_of_a_word() {
        assert_eq!(words("# all\nserver 127.0.0.1:1; # main\n"), vec![vec!["server", "127.0.0.1:1"]]);
        assert_eq!(words("a b#c;"), vec![vec!["a", "b#c"]]);
        assert_eq!(words("hash x${arg_id}y;"), vec![vec!["hash", "x${arg_id}y"]]);
    }

    #[test]
    fn refusals() {
        assert_eq!(err("server 127.0.0.1:1"), "missing ';' after \"server 127.0.0.1:1\"");
        assert_eq!(err(";"), "unexpected \";\" in the body");
        assert_eq!(err("a \"open;"), "unexpected end of the body inside a \"-quoted string in the body");
        assert_eq!(err("a \"x\"y;"), "unexpected \"y\" after a quoted string in the body");
        assert_eq!(
            err("upstream x { server 127.0.0.1:1; }"),
            "unexpected \"{\" (blocks are not allowed here) in the body"
        );
        assert_eq!(err("a b{;"), "unexpected \"{\" (blocks are not allowed here) in the body");
        assert_eq!(err("}"), "unexpected \"}\" (blocks are not allowed here) in the body");
        assert_eq!(err("a\x0cb;"), "control character '\\u{c}' in the body");
        assert!(statements(&"a;".repeat(MAX_STATEMENTS + 1)).unwrap_err().text.contains("more than 100000"));
        assert_eq!(words(&"a;".repeat(MAX_STATEMENTS)).len(), MAX_STATEMENTS);
    }

    #[test]
    fn quoted_reads_back() {
        for text in ["plain", "GET / HTTP/1.0\r\n\r\n", "", "a;b", "#x", "}", "q\"\\'", "tab\there", "${x}", "a{b"] {
            let line = format!("d {};", quoted(text));
            assert_eq!(words(&line), vec![vec!["d".to_string(), text.to_string()]], "{line}");
        }
        assert_eq!(quoted("http_2xx"), "http_2xx");
        assert_eq!(quoted("GET / HTTP/1.0\r\n\r\n"), "\"GET / HTTP/1.0\\r\\n\\r\\n\"");
    }
}

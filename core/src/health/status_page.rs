//! `check_status [html|csv|json];`: the status page of
//! nginx_upstream_check_module, with its columns and layout (Index,
//! Upstream, Name, Status, Rise counts, Fall counts, Check type, Check
//! port), its `?format=` and `?status=up|down` arguments, over every checked
//! peer: configured upstreams and run-time (dyups) ones alike.
//!
//! The CSV is byte for byte the C module's. HTML and JSON add, after its
//! columns, the peer's administrative state (`down`: the query API's,
//! dyups' and the state files' flag, which checks never change), the last
//! check's time and its error.

use std::fmt::Write as _;

use crate::error::ApiError;

use super::check_conf::CheckType;
use super::probe::Failure;

/// One checked peer, in the order the page lists them (configured
/// upstreams in configuration order, then run-time ones; primaries, then
/// backups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRow {
    pub upstream: String,
    /// The peer's address, as listings show it.
    pub name: String,
    /// Health: what the checks say (the C module's "status").
    pub down: bool,
    pub rises: u32,
    pub falls: u32,
    pub check_type: CheckType,
    /// `check ... port=N`, 0 when the peer's own port is checked.
    pub port: u16,
    /// Marked down by an administrator (never by a check).
    pub admin_down: bool,
    /// Unix time of the last finished check, 0 before the first.
    pub last_check: i64,
    pub last_error: Option<Failure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    Html,
    Csv,
    Json,
}

impl StatusFormat {
    /// `html`, `csv` or `json` (as the C module: exact, lower case).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "html" => Some(StatusFormat::Html),
            "csv" => Some(StatusFormat::Csv),
            "json" => Some(StatusFormat::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            StatusFormat::Html => "text/html",
            StatusFormat::Csv => "text/plain",
            StatusFormat::Json => "application/json",
        }
    }
}

/// Which peers `?status=` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    All,
    Up,
    Down,
}

impl StatusFilter {
    fn keeps(self, row: &StatusRow) -> bool {
        match self {
            StatusFilter::All => true,
            StatusFilter::Up => !row.down,
            StatusFilter::Down => row.down,
        }
    }
}

/// The arguments of a status page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusQuery {
    /// None: the location's `check_status` format.
    pub format: Option<StatusFormat>,
    pub filter: StatusFilter,
}

impl StatusQuery {
    /// `format=html|csv|json` and `status=up|down` (any case), read as
    /// nginx's `ngx_http_arg` finds them (argument names in any case, the
    /// first of each). Other arguments are ignored, as by the C module; a
    /// bad value of these two is an error (the C module ignored it).
    pub fn parse(args: &str) -> Result<Self, ApiError> {
        let arg = |name: &str| {
            args.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.eq_ignore_ascii_case(name).then_some(value)
            })
        };
        let bad = |name: &str, value: &str, expected: &str| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("{name} must be {expected} (got \"{}\")", crate::address::shown(value)),
            )
        };
        let format = match arg("format") {
            None => None,
            Some(value) => Some(StatusFormat::parse(value).ok_or_else(|| bad("format", value, "html, csv or json"))?),
        };
        let filter = match arg("status").map(str::to_ascii_lowercase).as_deref() {
            None => StatusFilter::All,
            Some("up") => StatusFilter::Up,
            Some("down") => StatusFilter::Down,
            Some(value) => return Err(bad("status", value, "up or down")),
        };
        Ok(Self { format, filter })
    }
}

fn health(down: bool) -> &'static str {
    if down {
        "down"
    } else {
        "up"
    }
}

fn error_text(row: &StatusRow) -> String {
    row.last_error.map(|e| e.to_string()).unwrap_or_default()
}

/// The page: `generation` is the C module's (how many times the
/// configuration was loaded); each row's index is its place in `rows`,
/// whatever the filter keeps.
pub fn render(rows: &[StatusRow], generation: u64, format: StatusFormat, filter: StatusFilter) -> String {
    let kept: Vec<(usize, &StatusRow)> = rows.iter().enumerate().filter(|(_, row)| filter.keeps(row)).collect();
    match format {
        StatusFormat::Html => html(&kept, generation),
        StatusFormat::Csv => csv(&kept),
        StatusFormat::Json => json(&kept, generation),
    }
}

fn csv(rows: &[(usize, &StatusRow)]) -> String {
    let mut out = String::with_capacity(rows.len() * 48);
    for (i, row) in rows {
        let _ = writeln!(
            out,
            "{i},{},{},{},{},{},{},{}",
            row.upstream,
            row.name,
            health(row.down),
            row.rises,
            row.falls,
            row.check_type.name(),
            row.port
        );
    }
    out
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn html(rows: &[(usize, &StatusRow)], generation: u64) -> String {
    let mut out = String::with_capacity(1024 + rows.len() * 400);
    let _ = write!(
        out,
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\n\
         \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\">\n\
         <head>\n  <title>Nginx http upstream check status</title>\n</head>\n<body>\n\
         <h1>Nginx http upstream check status</h1>\n\
         <h2>Check upstream server number: {}, generation: {generation}</h2>\n\
         <table style=\"background-color:white\" cellspacing=\"0\"        cellpadding=\"3\" border=\"1\">\n\
         \x20 <tr bgcolor=\"#C0C0C0\">\n",
        rows.len()
    );
    for th in [
        "Index",
        "Upstream",
        "Name",
        "Status",
        "Rise counts",
        "Fall counts",
        "Check type",
        "Check port",
        "Admin state",
        "Last check",
        "Last error",
    ] {
        let _ = writeln!(out, "    <th>{th}</th>");
    }
    out.push_str("  </tr>\n");
    for (i, row) in rows {
        let _ = writeln!(out, "  <tr{}>", if row.down { " bgcolor=\"#FF0000\"" } else { "" });
        let cells = [
            i.to_string(),
            html_escape(&row.upstream),
            html_escape(&row.name),
            health(row.down).to_string(),
            row.rises.to_string(),
            row.falls.to_string(),
            row.check_type.name().to_string(),
            row.port.to_string(),
            health(row.admin_down).to_string(),
            row.last_check.to_string(),
            html_escape(&error_text(row)),
        ];
        for cell in cells {
            let _ = writeln!(out, "    <td>{cell}</td>");
        }
        out.push_str("  </tr>\n");
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn json(rows: &[(usize, &StatusRow)], generation: u64) -> String {
    let mut out =
        format!("{{\"servers\": {{\n  \"total\": {},\n  \"generation\": {generation},\n  \"server\": [\n", rows.len());
    for (n, (i, row)) in rows.iter().enumerate() {
        let _ = writeln!(
            out,
            "    {{\"index\": {i}, \"upstream\": {}, \"name\": {}, \"status\": \"{}\", \"rise\": {}, \"fall\": {}, \
             \"type\": \"{}\", \"port\": {}, \"down\": {}, \"last_check\": {}, \"last_error\": {}}}{}",
            json_string(&row.upstream),
            json_string(&row.name),
            health(row.down),
            row.rises,
            row.falls,
            row.check_type.name(),
            row.port,
            row.admin_down,
            row.last_check,
            json_string(&error_text(row)),
            if n + 1 == rows.len() { "" } else { "," }
        );
    }
    out.push_str("  ]\n}}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(upstream: &str, name: &str, down: bool) -> StatusRow {
        StatusRow {
            upstream: upstream.into(),
            name: name.into(),
            down,
            rises: if down { 0 } else { 39 },
            falls: if down { 3 } else { 0 },
            check_type: CheckType::Http,
            port: 80,
            admin_down: false,
            last_check: 1_700_000_000,
            last_error: down.then_some(Failure::Timeout),
        }
    }

    fn rows() -> Vec<StatusRow> {
        let mut dynamic = row("dyhost", "unix:/tmp/a<b>&.sock", true);
        dynamic.check_type = CheckType::Tcp;
        dynamic.port = 0;
        dynamic.admin_down = true;
        vec![row("backend", "192.168.0.1:80", false), dynamic]
    }

    #[test]
    fn csv_is_the_c_modules() {
        assert_eq!(
            render(&rows(), 3, StatusFormat::Csv, StatusFilter::All),
            "0,backend,192.168.0.1:80,up,39,0,http,80\n1,dyhost,unix:/tmp/a<b>&.sock,down,0,3,tcp,0\n"
        );
        // Indexes stay those of the whole list.
        assert_eq!(
            render(&rows(), 3, StatusFormat::Csv, StatusFilter::Down),
            "1,dyhost,unix:/tmp/a<b>&.sock,down,0,3,tcp,0\n"
        );
        assert_eq!(render(&[], 1, StatusFormat::Csv, StatusFilter::All), "");
    }

    #[test]
    fn json_has_the_c_modules_layout_and_parses() {
        let text = render(&rows(), 3, StatusFormat::Json, StatusFilter::All);
        assert_eq!(
            text,
            "{\"servers\": {\n  \"total\": 2,\n  \"generation\": 3,\n  \"server\": [\n    \
             {\"index\": 0, \"upstream\": \"backend\", \"name\": \"192.168.0.1:80\", \"status\": \"up\", \"rise\": 39, \
             \"fall\": 0, \"type\": \"http\", \"port\": 80, \"down\": false, \"last_check\": 1700000000, \"last_error\": \"\"},\n    \
             {\"index\": 1, \"upstream\": \"dyhost\", \"name\": \"unix:/tmp/a<b>&.sock\", \"status\": \"down\", \"rise\": 0, \
             \"fall\": 3, \"type\": \"tcp\", \"port\": 0, \"down\": true, \"last_check\": 1700000000, \"last_error\": \"timed out\"}\n  \
             ]\n}}\n"
        );
        // Valid JSON whatever the filter keeps (the C module left a comma
        // when the last peer was filtered out).
        for filter in [StatusFilter::All, StatusFilter::Up, StatusFilter::Down] {
            let v: serde_json::Value = serde_json::from_str(&render(&rows(), 3, StatusFormat::Json, filter)).unwrap();
            let servers = v["servers"]["server"].as_array().unwrap();
            assert_eq!(v["servers"]["total"], servers.len());
        }
        let v: serde_json::Value =
            serde_json::from_str(&render(&[], 1, StatusFormat::Json, StatusFilter::All)).unwrap();
        assert_eq!(v["servers"]["total"], 0);
    }

    #[test]
    fn html_has_the_c_modules_columns_and_escapes() {
        let text = render(&rows(), 3, StatusFormat::Html, StatusFilter::Up);
        assert!(text.starts_with(
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\n\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n\
             <html xmlns=\"http://www.w3.org/1999/xhtml\">\n<head>\n  <title>Nginx http upstream check status</title>\n</head>\n\
             <body>\n<h1>Nginx http upstream check status</h1>\n<h2>Check upstream server number: 1, generation: 3</h2>\n"
        ));
        assert!(text.contains(
            "  <tr bgcolor=\"#C0C0C0\">\n    <th>Index</th>\n    <th>Upstream</th>\n    <th>Name</th>\n    <th>Status</th>\n    \
             <th>Rise counts</th>\n    <th>Fall counts</th>\n    <th>Check type</th>\n    <th>Check port</th>\n"
        ));
        assert!(text.contains(
            "  <tr>\n    <td>0</td>\n    <td>backend</td>\n    <td>192.168.0.1:80</td>\n    <td>up</td>\n    <td>39</td>\n    \
             <td>0</td>\n    <td>http</td>\n    <td>80</td>\n    <td>up</td>\n    <td>1700000000</td>\n    <td></td>\n  </tr>\n"
        ));
        // The C module's two string literals: " " then "       ".
        assert!(text.contains(&format!(
            "<table style=\"background-color:white\" cellspacing=\"0\"{}cellpadding=\"3\" border=\"1\">\n",
            " ".repeat(8)
        )));
        assert!(text.ends_with("</table>\n</body>\n</html>\n"));
        let down = render(&rows(), 3, StatusFormat::Html, StatusFilter::Down);
        assert!(down.contains("  <tr bgcolor=\"#FF0000\">\n    <td>1</td>\n    <td>dyhost</td>\n    <td>unix:/tmp/a&lt;b&gt;&amp;.sock</td>\n"));
        assert!(down.contains("    <td>down</td>\n    <td>1700000000</td>\n    <td>timed out</td>\n"));
    }

    #[test]
    fn query_arguments() {
        let q = |args: &str| StatusQuery::parse(args);
        assert_eq!(q("").unwrap(), StatusQuery { format: None, filter: StatusFilter::All });
        assert_eq!(
            q("format=csv&status=DOWN").unwrap(),
            StatusQuery { format: Some(StatusFormat::Csv), filter: StatusFilter::Down }
        );
        assert_eq!(
            q("x=1&STATUS=up&format=json&format=html").unwrap(),
            StatusQuery { format: Some(StatusFormat::Json), filter: StatusFilter::Up }
        );
        assert_eq!(q("format").unwrap().format, None);
        assert_eq!(q("format=JSON").unwrap_err().text, "format must be html, csv or json (got \"JSON\")");
        assert_eq!(q("status=sideways").unwrap_err().text, "status must be up or down (got \"sideways\")");
        assert_eq!(q("status=").unwrap_err().status, 400);
        assert_eq!(StatusFormat::Json.content_type(), "application/json");
        assert_eq!(StatusFormat::parse("csv"), Some(StatusFormat::Csv));
    }
}

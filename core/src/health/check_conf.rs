//! The health check directives of an upstream, as nginx_upstream_check_module
//! (and Tengine) spell them, with its defaults:
//!
//! ```nginx
//! check interval=3000 rise=2 fall=5 timeout=1000 [default_down=true|false] [type=tcp|http] [port=N];
//! check_http_send "GET / HTTP/1.0\r\n\r\n";
//! check_http_expect_alive http_2xx http_3xx;
//! check_keepalive_requests 1;
//! ```
//!
//! The same parser serves `upstream {}` blocks (nginx hands each directive's
//! words over, unquoted) and dyups bodies (split by [`super::tokens`]).
//! Everything is validated before anything is kept: [`CheckConfBuilder`]
//! collects one upstream's directives and [`CheckConfBuilder::finish`]
//! gives the whole [`CheckConf`] or one error.

use std::fmt::Write as _;

use crate::address::shown;
use crate::error::ApiError;

use super::tokens::quoted;

/// nginx_upstream_check_module's defaults for `check` without a parameter.
pub const DEFAULT_INTERVAL_MS: u32 = 30_000;
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 5;
pub const DEFAULT_TIMEOUT_MS: u32 = 1_000;
pub const DEFAULT_DOWN: bool = true;
pub const DEFAULT_SEND: &str = "GET / HTTP/1.0\r\n\r\n";
pub const DEFAULT_EXPECT_ALIVE: StatusClasses = StatusClasses(StatusClasses::HTTP_2XX | StatusClasses::HTTP_3XX);
pub const DEFAULT_KEEPALIVE_REQUESTS: u32 = 1;

/// `interval` and `timeout`, in milliseconds: at most a day, which keeps
/// every deadline within the half of nginx's 32-bit millisecond clock that
/// a wrapping comparison can order (see [`super::probe::Lease`]).
pub const MS_RANGE: (u64, u64) = (1, 86_400_000);
/// `rise` and `fall`.
pub const COUNT_RANGE: (u64, u64) = (1, 1_000_000);
/// Longest `check_http_send` request.
pub const MAX_SEND_LEN: usize = 4096;

/// The directives this module reads, in an upstream or a dyups body.
pub const DIRECTIVES: [&str; 4] = ["check", "check_http_send", "check_http_expect_alive", "check_keepalive_requests"];

/// The kinds of checks of nginx_upstream_check_module this module runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckType {
    /// Connect, then peek one byte: up if a byte or nothing yet (EAGAIN).
    Tcp,
    /// Send `check_http_send`, read the status line, match its class.
    Http,
}

impl CheckType {
    pub fn name(self) -> &'static str {
        match self {
            CheckType::Tcp => "tcp",
            CheckType::Http => "http",
        }
    }
}

/// A set of status classes (`check_http_expect_alive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusClasses(u8);

impl StatusClasses {
    const HTTP_2XX: u8 = 1;
    const HTTP_3XX: u8 = 2;
    const HTTP_4XX: u8 = 4;
    const HTTP_5XX: u8 = 8;
    const NAMES: [(&'static str, u8); 4] = [
        ("http_2xx", Self::HTTP_2XX),
        ("http_3xx", Self::HTTP_3XX),
        ("http_4xx", Self::HTTP_4XX),
        ("http_5xx", Self::HTTP_5XX),
    ];

    /// Whether a response with this status code means "alive" (codes
    /// outside 200-599 never do).
    pub fn contains(self, code: u16) -> bool {
        let bit = match code {
            200..=299 => Self::HTTP_2XX,
            300..=399 => Self::HTTP_3XX,
            400..=499 => Self::HTTP_4XX,
            500..=599 => Self::HTTP_5XX,
            _ => return false,
        };
        self.0 & bit != 0
    }

    /// The directive's words for this set, in order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES.into_iter().filter(move |(_, bit)| self.0 & bit != 0).map(|(name, _)| name)
    }
}

/// The checks of one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConf {
    pub interval_ms: u32,
    pub timeout_ms: u32,
    /// Consecutive successes that bring a down peer up.
    pub rise: u32,
    /// Consecutive failures that take an up peer down.
    pub fall: u32,
    /// Whether a peer starts down until its first `rise` successes.
    pub default_down: bool,
    pub check_type: CheckType,
    /// The port probes connect to; 0: the peer's own.
    pub port: u16,
    /// The request of `type=http` (unused by `tcp`).
    pub send: String,
    pub expect_alive: StatusClasses,
    pub keepalive_requests: u32,
}

impl CheckConf {
    /// The directives as nginx's configuration writes them, one per line
    /// (what `dyups_upstream_conf` keeps); `check_http_send` and
    /// `check_http_expect_alive` only where they differ from the defaults.
    /// [`CheckConfBuilder`] reads them back to the same value.
    pub fn config_text(&self) -> String {
        let mut out = format!(
            "check interval={} rise={} fall={} timeout={} default_down={} type={}",
            self.interval_ms,
            self.rise,
            self.fall,
            self.timeout_ms,
            self.default_down,
            self.check_type.name()
        );
        if self.port != 0 {
            let _ = write!(out, " port={}", self.port);
        }
        out.push_str(";\n");
        if self.send != DEFAULT_SEND {
            let _ = writeln!(out, "check_http_send {};", quoted(&self.send));
        }
        if self.expect_alive != DEFAULT_EXPECT_ALIVE {
            let _ =
                writeln!(out, "check_http_expect_alive {};", self.expect_alive.names().collect::<Vec<_>>().join(" "));
        }
        out
    }
}

impl CheckConf {
    /// Reads back [`CheckConf::config_text`] (or any text of check
    /// directives only); None for an empty text.
    pub fn from_config_text(text: &str) -> Result<Option<CheckConf>, ApiError> {
        let mut builder = CheckConfBuilder::default();
        for words in super::tokens::statements(text)? {
            builder.apply(&words[0], &words[1..])?;
        }
        builder.finish()
    }
}

fn invalid(text: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_check", text)
}

fn wrong_args(directive: &str) -> ApiError {
    invalid(format!("invalid number of arguments in \"{directive}\""))
}

/// The parameters of a `check` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CheckLine {
    interval_ms: u32,
    timeout_ms: u32,
    rise: u32,
    fall: u32,
    default_down: bool,
    check_type: CheckType,
    port: u16,
}

/// Collects the check directives of one upstream; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct CheckConfBuilder {
    check: Option<CheckLine>,
    send: Option<String>,
    expect_alive: Option<StatusClasses>,
    keepalive_requests: Option<u32>,
}

impl CheckConfBuilder {
    /// Whether `directive` is one of the check directives.
    pub fn handles(directive: &str) -> bool {
        DIRECTIVES.contains(&directive)
    }

    /// Reads one directive (`directive` is one of [`DIRECTIVES`], `args` its
    /// words after the name, unquoted). Each directive may be given once.
    pub fn apply<S: AsRef<str>>(&mut self, directive: &str, args: &[S]) -> Result<(), ApiError> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let given_twice = || invalid(format!("\"{directive}\" is given more than once"));
        match directive {
            "check" if self.check.is_some() => return Err(given_twice()),
            "check" => self.check = Some(parse_check(&args)?),
            "check_http_send" if self.send.is_some() => return Err(given_twice()),
            "check_http_send" => match args[..] {
                [request] => self.send = Some(parse_send(request)?),
                _ => return Err(wrong_args(directive)),
            },
            "check_http_expect_alive" if self.expect_alive.is_some() => return Err(given_twice()),
            "check_http_expect_alive" => self.expect_alive = Some(parse_expect_alive(&args)?),
            "check_keepalive_requests" if self.keepalive_requests.is_some() => return Err(given_twice()),
            "check_keepalive_requests" => match args[..] {
                [n] => self.keepalive_requests = Some(parse_keepalive_requests(n)?),
                _ => return Err(wrong_args(directive)),
            },
            _ => return Err(invalid(format!("unknown directive \"{}\"", shown(directive)))),
        }
        Ok(())
    }

    /// The upstream's checks: None without `check` (and without any other
    /// check directive, which would have no effect: an error).
    pub fn finish(self) -> Result<Option<CheckConf>, ApiError> {
        let Some(line) = self.check else {
            let orphan = [
                ("check_http_send", self.send.is_some()),
                ("check_http_expect_alive", self.expect_alive.is_some()),
                ("check_keepalive_requests", self.keepalive_requests.is_some()),
            ]
            .into_iter()
            .find(|(_, given)| *given);
            return match orphan {
                Some((name, _)) => {
                    Err(invalid(format!("\"{name}\" has no effect without \"check\" in the same upstream")))
                }
                None => Ok(None),
            };
        };
        Ok(Some(CheckConf {
            interval_ms: line.interval_ms,
            timeout_ms: line.timeout_ms,
            rise: line.rise,
            fall: line.fall,
            default_down: line.default_down,
            check_type: line.check_type,
            port: line.port,
            send: self.send.unwrap_or_else(|| DEFAULT_SEND.to_string()),
            expect_alive: self.expect_alive.unwrap_or(DEFAULT_EXPECT_ALIVE),
            keepalive_requests: self.keepalive_requests.unwrap_or(DEFAULT_KEEPALIVE_REQUESTS),
        }))
    }
}

const CHECK_KEYS: &str = "interval=, rise=, fall=, timeout=, default_down=, type=, port=";

fn parse_check(args: &[&str]) -> Result<CheckLine, ApiError> {
    if args.is_empty() {
        return Err(wrong_args("check"));
    }
    let mut line = CheckLine {
        interval_ms: DEFAULT_INTERVAL_MS,
        timeout_ms: DEFAULT_TIMEOUT_MS,
        rise: DEFAULT_RISE,
        fall: DEFAULT_FALL,
        default_down: DEFAULT_DOWN,
        check_type: CheckType::Tcp,
        port: 0,
    };
    let mut seen: Vec<&str> = Vec::new();
    for &arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(if CHECK_KEYS.split(", ").any(|k| k.strip_suffix('=') == Some(arg)) {
                invalid(format!("parameter \"{arg}\" of \"check\" needs a value ({arg}=...)"))
            } else {
                invalid(format!("invalid parameter \"{}\" in \"check\" (expected {CHECK_KEYS})", shown(arg)))
            });
        };
        if seen.contains(&key) {
            return Err(invalid(format!("parameter \"{}\" is given twice in \"check\"", shown(key))));
        }
        seen.push(key);
        let label = format!("{key} in \"check\"");
        let ms = || number(value, &label, MS_RANGE, "a number of milliseconds");
        let count = || number(value, &label, COUNT_RANGE, "an integer");
        match key {
            "interval" => line.interval_ms = ms()?,
            "timeout" => line.timeout_ms = ms()?,
            "rise" => line.rise = count()?,
            "fall" => line.fall = count()?,
            "default_down" => line.default_down = parse_bool(value)?,
            "type" => line.check_type = parse_type(value)?,
            "port" => line.port = number(value, &label, (1, u16::MAX.into()), "an integer")?,
            _ => {
                return Err(invalid(format!(
                    "invalid parameter \"{}\" in \"check\" (expected {CHECK_KEYS})",
                    shown(arg)
                )))
            }
        }
    }
    Ok(line)
}

/// A decimal integer within `range`, digits only (no sign, no unit), as
/// nginx's `ngx_atoi` reads them.
fn number<T: TryFrom<u64>>(value: &str, label: &str, range: (u64, u64), kind: &str) -> Result<T, ApiError> {
    let parsed = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 is out of range too.
        value.parse::<u64>().ok().filter(|n| (range.0..=range.1).contains(n)).and_then(|n| T::try_from(n).ok())
    } else {
        None
    };
    parsed.ok_or_else(|| {
        invalid(format!("{label} must be {kind} from {} to {} (got \"{}\")", range.0, range.1, shown(value)))
    })
}

fn parse_bool(value: &str) -> Result<bool, ApiError> {
    // nginx_upstream_check_module compares without case.
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(format!("default_down in \"check\" must be true or false (got \"{}\")", shown(value)))),
    }
}

fn parse_type(value: &str) -> Result<CheckType, ApiError> {
    match value {
        "tcp" => Ok(CheckType::Tcp),
        "http" => Ok(CheckType::Http),
        "ssl_hello" | "mysql" | "ajp" | "fastcgi" => {
            Err(invalid(format!("check type \"{value}\" is not supported (only tcp and http are)")))
        }
        _ => Err(invalid(format!("invalid check type \"{}\" (tcp or http)", shown(value)))),
    }
}

/// A request to send: printable ASCII, tabs and line ends only; a request
/// line `METHOD TARGET HTTP/x.y`; and the empty line that ends the headers
/// (without it the backend waits for more, and every check times out).
fn parse_send(request: &str) -> Result<String, ApiError> {
    let fail = |why: &str| invalid(format!("\"check_http_send\" {why}"));
    if request.len() > MAX_SEND_LEN {
        return Err(fail(&format!("is longer than {MAX_SEND_LEN} bytes")));
    }
    if !request.bytes().all(|b| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
        return Err(fail("may hold only printable ASCII, tabs, CR and LF (write them \\t, \\r, \\n)"));
    }
    let first_line = request.split('\n').next().unwrap_or("").trim_end_matches('\r');
    let words: Vec<&str> = first_line.split(' ').collect();
    let request_line_ok = matches!(words[..], [method, target, version]
        if !method.is_empty() && !target.is_empty() && version.starts_with("HTTP/1."));
    if !request_line_ok {
        return Err(fail(&format!(
            "must start with a request line \"METHOD /path HTTP/1.x\" (got \"{}\")",
            shown(first_line)
        )));
    }
    if !(request.contains("\n\r\n") || request.contains("\n\n")) {
        return Err(fail("must end its headers with an empty line (\\r\\n\\r\\n)"));
    }
    Ok(request.to_string())
}

fn parse_expect_alive(args: &[&str]) -> Result<StatusClasses, ApiError> {
    if args.is_empty() {
        return Err(wrong_args("check_http_expect_alive"));
    }
    let mut bits = 0;
    for &arg in args {
        // Case-insensitive, and a class given twice is harmless, as in
        // nginx_upstream_check_module.
        let bit = StatusClasses::NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(arg)).map(|(_, bit)| *bit);
        bits |= bit.ok_or_else(|| {
            invalid(format!(
                "invalid value \"{}\" in \"check_http_expect_alive\" (http_2xx, http_3xx, http_4xx or http_5xx)",
                shown(arg)
            ))
        })?;
    }
    Ok(StatusClasses(bits))
}

fn parse_keepalive_requests(value: &str) -> Result<u32, ApiError> {
    let n: u32 = number(value, "\"check_keepalive_requests\"", COUNT_RANGE, "an integer")?;
    if n != 1 {
        return Err(invalid(format!(
            "\"check_keepalive_requests {n}\" is not supported: each check opens its own connection (only 1, the default)"
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::super::tokens::statements;
    use super::*;

    /// The check directives of a body (other statements skipped).
    fn parse(body: &str) -> Result<Option<CheckConf>, ApiError> {
        let mut builder = CheckConfBuilder::default();
        for words in statements(body)? {
            if CheckConfBuilder::handles(&words[0]) {
                builder.apply(&words[0], &words[1..])?;
            }
        }
        builder.finish()
    }

    fn conf(body: &str) -> CheckConf {
        parse(body).unwrap().unwrap()
    }

    fn err(body: &str) -> String {
        let e = parse(body).unwrap_err();
        assert_eq!(e.status, 400, "{body}");
        assert!(!e.text.contains('\n') && e.text.len() < 300, "{}", e.text);
        e.text
    }

    #[test]
    fn defaults_are_the_c_modules() {
        let c = conf("check interval=30000;");
        assert_eq!((c.interval_ms, c.rise, c.fall, c.timeout_ms), (30_000, 2, 5, 1_000));
        assert!(c.default_down);
        assert_eq!((c.check_type, c.port), (CheckType::Tcp, 0));
        assert_eq!(c.send, "GET / HTTP/1.0\r\n\r\n");
        assert_eq!(c.expect_alive.names().collect::<Vec<_>>(), ["http_2xx", "http_3xx"]);
        assert_eq!(c.keepalive_requests, 1);
        // Any single parameter keeps the others' defaults.
        assert_eq!(conf("check type=http;").interval_ms, 30_000);
        assert_eq!(parse("server 127.0.0.1:1;").unwrap(), None);
    }

    #[test]
    fn the_tengine_dyups_bodies() {
        let c =
            conf("server 127.0.0.1:8088;check interval=3000 rise=2 fall=5 timeout=1000 type=http default_down=false;");
        assert_eq!((c.interval_ms, c.rise, c.fall, c.timeout_ms, c.default_down), (3000, 2, 5, 1000, false));
        assert_eq!(c.check_type, CheckType::Http);
        let c =
            conf("server 127.0.0.1:8088;check interval=1000 rise=2 fall=5 timeout=1000 type=http default_down=true;");
        assert!(c.default_down);
        assert_eq!(conf("check interval=1 default_down=FALSE port=8081;").port, 8081);
    }

    #[test]
    fn http_send_and_expect() {
        let c = conf(
            "check type=http;\ncheck_http_send \"HEAD /health HTTP/1.1\\r\\nHost: a;b\\r\\nConnection: close\\r\\n\\r\\n\";\n\
             check_http_expect_alive HTTP_2xx http_4xx http_2xx;",
        );
        assert_eq!(c.send, "HEAD /health HTTP/1.1\r\nHost: a;b\r\nConnection: close\r\n\r\n");
        assert!(c.expect_alive.contains(204) && c.expect_alive.contains(404));
        assert!(!c.expect_alive.contains(302) && !c.expect_alive.contains(500) && !c.expect_alive.contains(600));
        assert!(!c.expect_alive.contains(199) && !c.expect_alive.contains(0));
        // LF-only line ends and a body after the headers are requests too.
        assert_eq!(conf("check type=http; check_http_send 'GET / HTTP/1.0\\n\\n';").send, "GET / HTTP/1.0\n\n");
        let post = "POST /h HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(conf(&format!("check type=http; check_http_send {};", quoted(post))).send, post);
        // tcp checks ignore them, as the C module does.
        assert_eq!(conf("check type=tcp; check_http_expect_alive http_5xx;").check_type, CheckType::Tcp);
        assert_eq!(conf("check interval=1000; check_keepalive_requests 1;").keepalive_requests, 1);
    }

    #[test]
    fn hostile_check_lines() {
        for (body, text) in [
            ("check;", "invalid number of arguments in \"check\""),
            ("check interval;", "parameter \"interval\" of \"check\" needs a value (interval=...)"),
            (
                "check interval=1000 colour=red;",
                "invalid parameter \"colour=red\" in \"check\" (expected interval=, rise=, fall=, timeout=, default_down=, type=, port=)",
            ),
            ("check 3000;", "invalid parameter \"3000\" in \"check\" (expected interval=, rise=, fall=, timeout=, default_down=, type=, port=)"),
            ("check =5;", "invalid parameter \"=5\" in \"check\" (expected interval=, rise=, fall=, timeout=, default_down=, type=, port=)"),
            ("check interval=1000 interval=2000;", "parameter \"interval\" is given twice in \"check\""),
            ("check interval=0;", "interval in \"check\" must be a number of milliseconds from 1 to 86400000 (got \"0\")"),
            ("check interval=3s;", "interval in \"check\" must be a number of milliseconds from 1 to 86400000 (got \"3s\")"),
            ("check interval=-1;", "interval in \"check\" must be a number of milliseconds from 1 to 86400000 (got \"-1\")"),
            ("check interval=+5;", "interval in \"check\" must be a number of milliseconds from 1 to 86400000 (got \"+5\")"),
            ("check interval=;", "interval in \"check\" must be a number of milliseconds from 1 to 86400000 (got \"\")"),
            ("check interval=86400001;", "interval in \"check\" must be a number of milliseconds from 1 to 86400000 (got \"86400001\")"),
            (
                "check timeout=99999999999999999999999;",
                "timeout in \"check\" must be a number of milliseconds from 1 to 86400000 (got \"99999999999999999999999\")",
            ),
            ("check rise=0;", "rise in \"check\" must be an integer from 1 to 1000000 (got \"0\")"),
            ("check fall=1000001;", "fall in \"check\" must be an integer from 1 to 1000000 (got \"1000001\")"),
            ("check fall=٣;", "fall in \"check\" must be an integer from 1 to 1000000 (got \"٣\")"),
            ("check port=0;", "port in \"check\" must be an integer from 1 to 65535 (got \"0\")"),
            ("check port=65536;", "port in \"check\" must be an integer from 1 to 65535 (got \"65536\")"),
            ("check default_down=yes;", "default_down in \"check\" must be true or false (got \"yes\")"),
            ("check type=ssl_hello;", "check type \"ssl_hello\" is not supported (only tcp and http are)"),
            ("check type=mysql;", "check type \"mysql\" is not supported (only tcp and http are)"),
            ("check type=HTTP;", "invalid check type \"HTTP\" (tcp or http)"),
            ("check type=;", "invalid check type \"\" (tcp or http)"),
            ("check interval=1; check interval=2;", "\"check\" is given more than once"),
        ] {
            assert_eq!(err(body), text, "{body}");
        }
        let long = format!("check interval={};", "9".repeat(10_000));
        assert!(err(&long).ends_with("9999...\")"), "{}", err(&long));
    }

    #[test]
    fn hostile_send_expect_keepalive() {
        for (body, text) in [
            ("check type=http; check_http_send;", "invalid number of arguments in \"check_http_send\""),
            ("check type=http; check_http_send a b;", "invalid number of arguments in \"check_http_send\""),
            (
                "check type=http; check_http_send \"\";",
                "\"check_http_send\" must start with a request line \"METHOD /path HTTP/1.x\" (got \"\")",
            ),
            (
                "check type=http; check_http_send \"GET /\\r\\n\\r\\n\";",
                "\"check_http_send\" must start with a request line \"METHOD /path HTTP/1.x\" (got \"GET /\")",
            ),
            (
                "check type=http; check_http_send \"GET / HTTP/2\\r\\n\\r\\n\";",
                "\"check_http_send\" must start with a request line \"METHOD /path HTTP/1.x\" (got \"GET / HTTP/2\")",
            ),
            (
                "check type=http; check_http_send \"GET / HTTP/1.0\";",
                "\"check_http_send\" must end its headers with an empty line (\\r\\n\\r\\n)",
            ),
            (
                "check type=http; check_http_send \"GET / HTTP/1.0\\r\\nHost: ü\\r\\n\\r\\n\";",
                "\"check_http_send\" may hold only printable ASCII, tabs, CR and LF (write them \\t, \\r, \\n)",
            ),
            ("check; check_http_send x;", "invalid number of arguments in \"check\""),
            (
                "check type=http; check_http_send \"GET / HTTP/1.0\\r\\n\\r\\n\"; check_http_send \"GET / HTTP/1.0\\r\\n\\r\\n\";",
                "\"check_http_send\" is given more than once",
            ),
            ("check type=http; check_http_expect_alive;", "invalid number of arguments in \"check_http_expect_alive\""),
            (
                "check type=http; check_http_expect_alive http_2xx http_6xx;",
                "invalid value \"http_6xx\" in \"check_http_expect_alive\" (http_2xx, http_3xx, http_4xx or http_5xx)",
            ),
            (
                "check type=http; check_http_expect_alive http_2xx; check_http_expect_alive http_3xx;",
                "\"check_http_expect_alive\" is given more than once",
            ),
            ("check interval=1; check_keepalive_requests 0;", "\"check_keepalive_requests\" must be an integer from 1 to 1000000 (got \"0\")"),
            ("check interval=1; check_keepalive_requests 1 2;", "invalid number of arguments in \"check_keepalive_requests\""),
            (
                "check interval=1; check_keepalive_requests 100;",
                "\"check_keepalive_requests 100\" is not supported: each check opens its own connection (only 1, the default)",
            ),
            ("check_http_send \"GET / HTTP/1.0\\r\\n\\r\\n\";", "\"check_http_send\" has no effect without \"check\" in the same upstream"),
            ("check_http_expect_alive http_2xx;", "\"check_http_expect_alive\" has no effect without \"check\" in the same upstream"),
            ("check_keepalive_requests 1;", "\"check_keepalive_requests\" has no effect without \"check\" in the same upstream"),
        ] {
            assert_eq!(err(body), text, "{body}");
        }
        let huge = format!("GET /{} HTTP/1.0\r\n\r\n", "a".repeat(MAX_SEND_LEN));
        assert_eq!(
            err(&format!("check type=http; check_http_send {};", quoted(&huge))),
            "\"check_http_send\" is longer than 4096 bytes"
        );
        assert!(!CheckConfBuilder::handles("checks") && CheckConfBuilder::handles("check_http_send"));
        assert_eq!(
            CheckConfBuilder::default().apply("server", &["127.0.0.1:1"]).unwrap_err().text,
            "unknown directive \"server\""
        );
    }

    #[test]
    fn config_text_reads_back() {
        for body in [
            "check interval=3000;",
            "check interval=1000 rise=1 fall=1 timeout=86400000 default_down=false type=http port=8080;\
             check_http_send \"HEAD / HTTP/1.1\\r\\nHost: \\\"x\\\"\\r\\n\\r\\n\"; check_http_expect_alive http_5xx http_2xx;",
            "check type=http; check_http_expect_alive http_2xx http_3xx;",
        ] {
            let c = conf(body);
            let text = c.config_text();
            assert_eq!(conf(&text), c, "{text}");
            assert_eq!(conf(&text).config_text(), text);
            assert_eq!(CheckConf::from_config_text(&text).unwrap().unwrap().config_text(), text);
        }
        assert_eq!(
            conf("check interval=3000;").config_text(),
            "check interval=3000 rise=2 fall=5 timeout=1000 default_down=true type=tcp;\n"
        );
        assert_eq!(
            conf("check type=http port=81; check_http_send 'HEAD / HTTP/1.0\\r\\n\\r\\n'; check_http_expect_alive http_2xx;")
                .config_text(),
            "check interval=30000 rise=2 fall=5 timeout=1000 default_down=true type=http port=81;\n\
             check_http_send \"HEAD / HTTP/1.0\\r\\n\\r\\n\";\ncheck_http_expect_alive http_2xx;\n"
        );
    }
}

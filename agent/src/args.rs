//! The command line.

use std::time::Duration;

pub const USAGE: &str = "\
usage: ndu-sync --etcd http://H:P[,http://H:P...] --prefix PREFIX --api URL --dyups URL
                [--resync DURATION] [--check DURATION] [--max-delete PERCENT]

Keeps one nginx's upstreams equal to the documents under PREFIX/upstreams/ in etcd.
  --etcd URLS        etcd v3 endpoints (plain http), comma-separated
  --prefix PREFIX    key prefix: each key PREFIX/upstreams/NAME holds one upstream
  --api URL          base URL of the nginx's `dynamic_upstream_api write=on` location
                     (e.g. http://127.0.0.1:8088/api)
  --dyups URL        base URL of its `dyups_interface` server, whose paths are absolute
                     (e.g. http://127.0.0.1:8081)
  --resync DURATION  full resync (default 60s, 0: never): a new etcd connection reads the
                     prefix again (a stalled watch cannot hide a change longer than this), then
                     nginx's upstreams are compared with the documents and what differs is sent
  --check DURATION   how often nginx is asked whether it restarted or reloaded (default 1s)
  --max-delete PERCENT  a read or watch answer that deletes more than PERCENT of the upstreams
                     (and more than one) is not applied: they stay, logged (default 50, 100: no limit)
DURATION: 500ms, 10s, 5m, 1h (at most 24h).";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub etcd: Vec<String>,
    pub prefix: String,
    pub api: String,
    pub dyups: String,
    /// None: no periodic resync.
    pub resync: Option<Duration>,
    pub check: Duration,
    pub max_delete: u8,
}

/// The longest duration a flag takes: timers far beyond it would overflow.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Config, String> {
    let mut etcd = None;
    let mut prefix = None;
    let mut api = None;
    let mut dyups = None;
    let mut resync = Some(Duration::from_secs(60));
    let mut check = Duration::from_secs(1);
    let mut max_delete = 50;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--etcd" => {
                etcd = Some(value()?.split(',').map(|u| http_url("--etcd", u.trim())).collect::<Result<_, _>>()?)
            }
            "--prefix" => prefix = Some(value()?.trim_end_matches('/').to_string()),
            "--api" => api = Some(http_url("--api", value()?)?),
            "--dyups" => dyups = Some(http_url("--dyups", value()?)?),
            "--resync" => resync = Some(duration("--resync", value()?)?).filter(|d| !d.is_zero()),
            "--check" => {
                check = duration("--check", value()?)?;
                if check.is_zero() {
                    return Err("--check must be more than 0".into());
                }
            }
            "--max-delete" => {
                let text = value()?;
                max_delete = text
                    .parse()
                    .ok()
                    .filter(|p| *p <= 100)
                    .ok_or_else(|| format!("--max-delete: \"{text}\" is not a percentage (0 to 100)"))?;
            }
            other => return Err(format!("unknown argument \"{other}\"")),
        }
    }
    Ok(Config {
        etcd: required(etcd, "--etcd")?,
        prefix: required(prefix, "--prefix")?,
        api: required(api, "--api")?,
        dyups: required(dyups, "--dyups")?,
        resync,
        check,
        max_delete,
    })
}

fn required<T>(value: Option<T>, flag: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("{flag} is required"))
}

/// `http://HOST:PORT[/path]`, kept without a trailing `/`.
fn http_url(flag: &str, url: &str) -> Result<String, String> {
    match url.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(url.trim_end_matches('/').to_string()),
        _ => Err(format!("{flag}: \"{url}\" is not an http://HOST:PORT URL")),
    }
}

/// `500ms`, or seconds in nginx's time syntax (`10`, `10s`, `5m`, `1h`).
fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    let parsed = match text.strip_suffix("ms") {
        Some(ms) if !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()) => {
            ms.parse().ok().map(Duration::from_millis)
        }
        _ => dynamic_upstream_core::peer::parse_seconds(text).map(Duration::from_secs),
    };
    match parsed {
        Some(d) if d <= MAX_DURATION => Ok(d),
        Some(_) => Err(format!("{flag}: \"{text}\" is longer than 24h")),
        None => Err(format!("{flag}: \"{text}\" is not a duration (500ms, 10s, 5m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    const BASE: &str = "--etcd http://127.0.0.1:2379,http://10.0.0.2:2379/ --prefix /fleet/ \
                        --api http://127.0.0.1:8088/api/ --dyups http://127.0.0.1:8081";

    #[test]
    fn flags() {
        let c = parse(&args(BASE)).unwrap();
        assert_eq!(c.etcd, ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]);
        assert_eq!(c.prefix, "/fleet");
        assert_eq!(c.api, "http://127.0.0.1:8088/api");
        assert_eq!(c.dyups, "http://127.0.0.1:8081");
        assert_eq!(c.resync, Some(Duration::from_secs(60)));
        assert_eq!(c.check, Duration::from_secs(1));
        let c = parse(&args(&format!("{BASE} --resync 5m --check 200ms"))).unwrap();
        assert_eq!((c.resync, c.check), (Some(Duration::from_secs(300)), Duration::from_millis(200)));
        assert_eq!(parse(&args(&format!("{BASE} --resync 0"))).unwrap().resync, None);
        assert_eq!(c.max_delete, 50);
        assert_eq!(parse(&args(&format!("{BASE} --max-delete 100"))).unwrap().max_delete, 100);
        assert_eq!(parse(&args(&format!("{BASE} --resync 24h"))).unwrap().resync, Some(MAX_DURATION));
    }

    #[test]
    fn errors() {
        for (line, error) in [
            ("--prefix /p --api http://a --dyups http://b", "--etcd is required"),
            (&format!("{BASE} --resync"), "--resync needs a value"),
            (&format!("{BASE} --resync soon"), "--resync: \"soon\" is not a duration (500ms, 10s, 5m)"),
            (&format!("{BASE} --check 0ms"), "--check must be more than 0"),
            // Once a panic: "overflow when adding duration to instant".
            (&format!("{BASE} --resync 500000000000y"), "--resync: \"500000000000y\" is longer than 24h"),
            (&format!("{BASE} --check 86401"), "--check: \"86401\" is longer than 24h"),
            (&format!("{BASE} --max-delete 101"), "--max-delete: \"101\" is not a percentage (0 to 100)"),
            (&format!("{BASE} --tls"), "unknown argument \"--tls\""),
            ("--etcd https://127.0.0.1:2379", "--etcd: \"https://127.0.0.1:2379\" is not an http://HOST:PORT URL"),
        ] {
            assert_eq!(parse(&args(line)).unwrap_err(), error, "{line}");
        }
    }
}

//! The agent's decisions, free of I/O: which key names which upstream, what
//! to send nginx for it, whether nginx still holds what was sent, whether
//! nginx restarted, and how long to wait before trying again.

use std::time::Duration;

use dynamic_upstream_core::dyups::{validate_upstream_name, UpstreamSpec};
use dynamic_upstream_core::ServerSpec;
use serde::Deserialize;

use crate::document;

/// The prefix of every key the agent reads: `PREFIX/upstreams/`.
pub fn watched_prefix(prefix: &str) -> String {
    format!("{}/upstreams/", prefix.trim_end_matches('/'))
}

/// The upstream a key names: `NAME` of `PREFIX/upstreams/NAME`, a name
/// nginx can route by (letters, digits, `.`, `-`, `_`).
pub fn upstream_name<'k>(watched: &str, key: &'k str) -> Result<&'k str, String> {
    let name = key.strip_prefix(watched).unwrap_or(key);
    validate_upstream_name(name).map_err(|e| e.text)?;
    Ok(name)
}

/// What the agent sends nginx for one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `PUT {api}/9/http/upstreams/NAME/servers` with this JSON array: a
    /// configuration (zone) upstream gets the declarative replace.
    PutServers(String),
    /// `POST {dyups}/upstream/NAME` with this body: creates or replaces a
    /// run-time upstream.
    PostDyups(String),
    /// `DELETE {dyups}/upstream/NAME`: the key of a run-time upstream is gone.
    DeleteDyups,
    /// The key of a configuration upstream is gone: its servers stay as last
    /// applied until nginx reloads, which gives it its configured servers
    /// back (the agent cannot know them: a state file or an earlier agent
    /// may have changed them before it started).
    Leave,
}

/// The action for an upstream: `desired` is its document (None: no key),
/// `configuration` whether nginx's configuration declares it with a zone.
pub fn action(configuration: bool, desired: Option<&UpstreamSpec>) -> Action {
    match (configuration, desired) {
        (true, Some(spec)) => Action::PutServers(document::plus_servers(spec)),
        (false, Some(spec)) => Action::PostDyups(document::dyups_body(spec)),
        (false, None) => Action::DeleteDyups,
        (true, None) => Action::Leave,
    }
}

/// What an answer of nginx to an action means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// nginx holds the document (a DELETE's 404: it had no such upstream).
    Applied,
    /// nginx refused the document and changed nothing: logged, not retried
    /// until the key changes or a resync.
    Refused,
    /// nginx could not take it now (busy lock, reload in progress, error):
    /// tried again after a delay.
    Retry,
}

pub fn outcome(action: &Action, status: u16) -> Outcome {
    match status {
        200 => Outcome::Applied,
        404 if *action == Action::DeleteDyups => Outcome::Applied,
        // 507: the zone is full, which only the operator can fix.
        409 | 500..=506 | 508..=599 => Outcome::Retry,
        _ => Outcome::Refused,
    }
}

/// Whether nginx's peers (from `GET {dyups}/detail`) are exactly the
/// document's servers, in any order (nginx lists the primaries, then the
/// backups). The balancer is not shown by dyups and so not compared.
pub fn holds(spec: &UpstreamSpec, peers: &[ServerSpec]) -> bool {
    let sorted = |servers: &[ServerSpec]| {
        let mut servers = servers.to_vec();
        servers.sort_by_key(|s| s.address.to_string());
        servers
    };
    sorted(&spec.servers) == sorted(peers)
}

/// Who answers on the nginx side: (`ppid`, `generation`, `load_timestamp`)
/// of `GET {api}/9/nginx` change when nginx restarts or reloads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BootId {
    pub ppid: u64,
    pub generation: u64,
    pub load_timestamp: String,
}

/// What the agent last saw of nginx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NginxSeen {
    /// Not asked yet.
    Unknown,
    /// No answer (stopped, restarting).
    Down,
    /// Answering; the boot id where the Plus API location is there.
    Up(Option<BootId>),
}

/// Whether nginx lost what the agent applied since it last looked: it was
/// down and answers again (restarted), or its boot id moved (restarted or
/// reloaded).
pub fn nginx_restarted(before: &NginxSeen, now: &NginxSeen) -> bool {
    match (before, now) {
        (NginxSeen::Down, NginxSeen::Up(_)) => true,
        (NginxSeen::Up(a), NginxSeen::Up(b)) => a != b,
        _ => false,
    }
}

/// Delays between attempts: doubling from `first` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { first, max, next: first }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(self.max);
        delay
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(doc: &str) -> UpstreamSpec {
        document::parse(doc.as_bytes()).unwrap()
    }

    #[test]
    fn keys_name_upstreams() {
        let watched = watched_prefix("/fleet/");
        assert_eq!(watched, "/fleet/upstreams/");
        assert_eq!(upstream_name(&watched, "/fleet/upstreams/app.example"), Ok("app.example"));
        assert_eq!(
            upstream_name(&watched, "/fleet/upstreams/a/b").unwrap_err(),
            "upstream name \"a/b\" is not a valid host name (letters, digits, '.', '-', '_', at most 255 bytes)"
        );
        assert!(upstream_name(&watched, "/fleet/upstreams/").is_err());
        assert!(upstream_name(&watched, "/fleet/upstreams/a\nb").is_err());
    }

    #[test]
    fn the_action_depends_on_the_kind_of_upstream() {
        let s = spec(r#"{"servers": [{"server": "10.0.0.1:81", "weight": 2}], "balancer": "least_conn"}"#);
        assert_eq!(
            action(false, Some(&s)),
            Action::PostDyups("least_conn;\nserver 10.0.0.1:81 weight=2 max_fails=1 fail_timeout=10;\n".into())
        );
        assert_eq!(
            action(true, Some(&s)),
            Action::PutServers(
                r#"[{"backup":false,"down":false,"fail_timeout":"10s","max_conns":0,"max_fails":1,"server":"10.0.0.1:81","weight":2}]"#
                    .into()
            )
        );
        assert_eq!(action(false, None), Action::DeleteDyups);
        assert_eq!(action(true, None), Action::Leave);
    }

    #[test]
    fn answers() {
        let post = Action::PostDyups(String::new());
        assert_eq!(outcome(&post, 200), Outcome::Applied);
        assert_eq!(outcome(&post, 400), Outcome::Refused);
        assert_eq!(outcome(&post, 404), Outcome::Refused);
        assert_eq!(outcome(&Action::DeleteDyups, 404), Outcome::Applied);
        assert_eq!(outcome(&post, 507), Outcome::Refused);
        for busy in [409, 500, 502, 503] {
            assert_eq!(outcome(&post, busy), Outcome::Retry, "{busy}");
        }
    }

    fn peer(name: &str, weight: u64, backup: bool) -> ServerSpec {
        let mut s = ServerSpec::new(dynamic_upstream_core::Address::parse(name).unwrap());
        (s.weight, s.backup) = (weight, backup);
        s
    }

    #[test]
    fn holds_compares_every_parameter_in_any_order() {
        let s =
            spec(r#"{"servers": [{"server": "10.0.0.2", "backup": true}, {"server": "10.0.0.1:81", "weight": 2}]}"#);
        assert!(holds(&s, &[peer("10.0.0.1:81", 2, false), peer("10.0.0.2:80", 1, true)]));
        assert!(!holds(&s, &[peer("10.0.0.1:81", 3, false), peer("10.0.0.2:80", 1, true)]));
        assert!(!holds(&s, &[peer("10.0.0.1:81", 2, false)]));
        assert!(!holds(&s, &[peer("10.0.0.1:81", 2, false), peer("10.0.0.2:80", 1, false)]));
        let mut down = peer("10.0.0.1:81", 2, false);
        down.down = true;
        assert!(!holds(&s, &[down, peer("10.0.0.2:80", 1, true)]));
    }

    #[test]
    fn a_restart_or_reload_is_seen() {
        let boot = |generation| {
            NginxSeen::Up(Some(BootId { ppid: 7, generation, load_timestamp: "2026-12-02T10:00:00.000Z".into() }))
        };
        assert!(!nginx_restarted(&NginxSeen::Unknown, &boot(0)));
        assert!(!nginx_restarted(&boot(0), &boot(0)));
        assert!(nginx_restarted(&boot(0), &boot(1)));
        assert!(nginx_restarted(&NginxSeen::Down, &boot(0)));
        assert!(!nginx_restarted(&boot(0), &NginxSeen::Down));
        // Without the Plus API location: only a stop is seen.
        assert!(!nginx_restarted(&NginxSeen::Up(None), &NginxSeen::Up(None)));
        assert!(nginx_restarted(&NginxSeen::Down, &NginxSeen::Up(None)));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let delays: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}

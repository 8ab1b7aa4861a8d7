//! The agent's decisions, free of I/O: which key names which upstream, what
//! to send nginx for it, whether nginx still holds what was sent, whether
//! nginx restarted, and how long to wait before trying again.

use std::collections::{BTreeMap, BTreeSet};
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
    /// nginx holds it but could not write its state file (500
    /// `persist_failed`: "the change is in effect"): logged, not retried.
    Unsaved,
    /// nginx refused the document and changed nothing: logged, not retried
    /// until the key changes or a resync.
    Refused,
    /// nginx could not take it now (busy lock, reload in progress, error):
    /// tried again after a delay of its own; other upstreams go on.
    Retry,
}

/// `code` is the `error.code` of the answer's JSON body, if any.
pub fn outcome(action: &Action, status: u16, code: Option<&str>) -> Outcome {
    match status {
        200 => Outcome::Applied,
        404 if *action == Action::DeleteDyups => Outcome::Applied,
        500 if code == Some("persist_failed") => Outcome::Unsaved,
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

/// Whether nginx restarted or reloaded: its boot id moved since the last
/// one read (a failed read is no news, and the first read is no change).
pub fn nginx_restarted(known: Option<&BootId>, now: &BootId) -> bool {
    known.is_some_and(|known| known != now)
}

/// The upstreams nginx lists by name (`GET {dyups}/list`) that it no longer
/// has of those `desired`: restarted without them (no Plus API, no boot id).
pub fn missing<'a>(desired: impl Iterator<Item = &'a String>, listed: &BTreeSet<String>) -> Vec<String> {
    desired.filter(|name| !listed.contains(*name)).cloned().collect()
}

/// The run-time upstreams to delete because they have no key: only after a
/// read of etcd succeeded (`read`), and only those the agent owns (it
/// created them, or saw their key deleted), never one made by hand or by
/// another agent.
pub fn prunable(
    read: bool,
    run_time: &BTreeSet<String>,
    owned: &BTreeSet<String>,
    keys: &BTreeMap<String, i64>,
) -> Vec<String> {
    if !read {
        return Vec::new();
    }
    run_time.iter().filter(|name| owned.contains(*name) && !keys.contains_key(*name)).cloned().collect()
}

/// Whether one read or watch answer deletes too many of the `holding`
/// upstreams at once to be applied: more than one, and more than
/// `max_percent` of them (an emptied or wrong etcd, a mistyped range delete).
pub fn too_many_deletes(deleting: usize, holding: usize, max_percent: u8) -> bool {
    deleting > 1 && deleting * 100 > holding * usize::from(max_percent)
}

/// How long a new watch must live without failing before the delays
/// between reconnections start again from the first (a watch that each time
/// fails at once must not make the agent hammer etcd).
pub const HEALTHY: Duration = Duration::from_secs(10);

/// Whether a watch that ended proved healthy: it delivered a change, or it
/// lived `HEALTHY`.
pub fn watch_was_healthy(lived: Duration, delivered: bool) -> bool {
    delivered || lived >= HEALTHY
}

/// Delays between attempts: doubling from `first` up to `max`, each drawn
/// between half the delay and the whole (agents that lost etcd together do
/// not come back in step).
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

    /// The delay before the next attempt; `random` picks where in its
    /// upper half.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(self.max);
        let half = delay / 2;
        half + Duration::from_nanos(random % (half.as_nanos() as u64 + 1))
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
        assert_eq!(outcome(&post, 200, None), Outcome::Applied);
        assert_eq!(outcome(&post, 400, Some("invalid_body")), Outcome::Refused);
        assert_eq!(outcome(&post, 404, None), Outcome::Refused);
        assert_eq!(outcome(&Action::DeleteDyups, 404, None), Outcome::Applied);
        assert_eq!(outcome(&post, 507, None), Outcome::Refused);
        // "the change is in effect and the next change writes the file again"
        assert_eq!(outcome(&post, 500, Some("persist_failed")), Outcome::Unsaved);
        assert_eq!(outcome(&Action::DeleteDyups, 500, Some("persist_failed")), Outcome::Unsaved);
        for busy in [409, 500, 502, 503] {
            assert_eq!(outcome(&post, busy, None), Outcome::Retry, "{busy}");
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
    fn a_restart_or_reload_is_a_new_boot_id_only() {
        let boot = |ppid, generation| BootId { ppid, generation, load_timestamp: "2026-12-02T10:00:00.000Z".into() };
        // The first answer, and a failed read in between (None stays the
        // last known id: the caller keeps it), are no restart.
        assert!(!nginx_restarted(None, &boot(7, 0)));
        assert!(!nginx_restarted(Some(&boot(7, 0)), &boot(7, 0)));
        assert!(nginx_restarted(Some(&boot(7, 0)), &boot(7, 1)));
        // A restart as fast as a check: a new master.
        assert!(nginx_restarted(Some(&boot(7, 0)), &boot(8, 0)));
        let mut later = boot(7, 0);
        later.load_timestamp = "2026-12-02T10:00:01.000Z".into();
        assert!(nginx_restarted(Some(&boot(7, 0)), &later));
    }

    #[test]
    fn without_the_plus_api_the_missing_upstreams_are_sent_again() {
        let desired: Vec<String> = ["a", "b", "c"].map(String::from).into();
        let listed = BTreeSet::from(["backends", "b"].map(String::from));
        assert_eq!(missing(desired.iter(), &listed), ["a", "c"]);
        assert!(missing(desired.iter(), &desired.iter().cloned().collect()).is_empty());
    }

    #[test]
    fn only_owned_upstreams_without_a_key_are_pruned_after_a_read() {
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        let run_time = set(&["a", "b", "by-hand", "gone"]);
        let owned = set(&["a", "b", "gone"]);
        let keys = BTreeMap::from([("a".to_string(), 5), ("b".to_string(), 6)]);
        assert_eq!(prunable(true, &run_time, &owned, &keys), ["gone"]);
        // etcd not read yet (down at start): nothing, whatever else holds.
        assert!(prunable(false, &run_time, &owned, &BTreeMap::new()).is_empty());
        // A new agent (owns nothing) on an empty or mistyped prefix.
        assert!(prunable(true, &run_time, &BTreeSet::new(), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_mass_delete_is_held() {
        assert!(!too_many_deletes(1, 1, 50));
        assert!(!too_many_deletes(1, 2, 0));
        assert!(!too_many_deletes(2, 4, 50));
        assert!(too_many_deletes(3, 4, 50));
        assert!(too_many_deletes(1000, 1000, 99));
        assert!(!too_many_deletes(1000, 1000, 100));
        assert!(!too_many_deletes(0, 0, 0));
    }

    #[test]
    fn a_watch_is_healthy_after_a_change_or_ten_seconds() {
        assert!(!watch_was_healthy(Duration::from_millis(50), false));
        assert!(watch_was_healthy(Duration::from_millis(50), true));
        assert!(watch_was_healthy(HEALTHY, false));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        // The smallest draw is half the delay.
        let delays: Vec<u128> = (0..5).map(|_| b.next_delay(0).as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 250, 250]);
        for random in [1, 12_345_678, 250_000_000, u64::MAX] {
            let d = b.next_delay(random);
            assert!(d >= Duration::from_millis(250) && d <= Duration::from_millis(500), "{d:?}");
        }
        assert_eq!(b.next_delay(250_000_000), Duration::from_millis(500));
        b.reset();
        assert_eq!(b.next_delay(0), Duration::from_millis(50));
    }
}

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

/// The upstream name as nginx compares it: nginx's upstream names (and
/// `$host`) ignore ASCII case, so `App` and `app` name one upstream. Every
/// map of the agent is keyed by this form, and it is what is sent to nginx.
pub fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// A key's value as the agent identifies it: its revision and a hash of its
/// bytes. The revision alone is not enough: etcd restored from a snapshot
/// (or rebuilt) gives its next writes the revisions of the lost history
/// again, with other values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub revision: i64,
    pub digest: u64,
}

impl Version {
    pub fn of(revision: i64, value: &[u8]) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hasher::write(&mut hasher, value);
        Self { revision, digest: std::hash::Hasher::finish(&hasher) }
    }
}

/// The keys of each upstream name (folded): nginx has one upstream for
/// `App` and `app`, so only one key may hold it: the first in key order
/// (byte order, upper case first), which every agent of a fleet picks the
/// same whatever order it saw the keys in. The others are refused until it
/// is deleted; the next in key order then holds the upstream.
#[derive(Debug, Default)]
pub struct Names {
    keys: BTreeMap<String, BTreeSet<String>>,
}

/// What adding a key (its name as spelled) did.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// It holds the upstream; `displaced`: the key that held it so far
    /// (later in key order), now refused.
    Holds { displaced: Option<String> },
    /// Another key, first in key order, holds the upstream.
    Refused { holder: String },
}

/// What removing a key did.
#[derive(Debug, PartialEq, Eq)]
pub enum Removed {
    /// It was not there.
    Unknown,
    /// It was a refused duplicate: nothing changes.
    Duplicate,
    /// It held the upstream and was its only key: the upstream has no key.
    Last,
    /// It held the upstream: this key, next in key order, holds it now.
    Next(String),
}

impl Names {
    pub fn add(&mut self, spelled: &str) -> Added {
        let spellings = self.keys.entry(fold(spelled)).or_default();
        let before = spellings.first().cloned();
        spellings.insert(spelled.to_string());
        match before {
            Some(holder) if *holder < *spelled => Added::Refused { holder },
            Some(holder) if holder != spelled => Added::Holds { displaced: Some(holder) },
            _ => Added::Holds { displaced: None },
        }
    }

    pub fn remove(&mut self, spelled: &str) -> Removed {
        let name = fold(spelled);
        let Some(spellings) = self.keys.get_mut(&name) else { return Removed::Unknown };
        let held = spellings.first().is_some_and(|h| h == spelled);
        if !spellings.remove(spelled) {
            return Removed::Unknown;
        }
        match spellings.first() {
            _ if !held => Removed::Duplicate,
            Some(next) => Removed::Next(next.clone()),
            None => {
                self.keys.remove(&name);
                Removed::Last
            }
        }
    }

    /// The key (name as spelled) that holds the upstream `name` (folded).
    pub fn holder(&self, name: &str) -> Option<&String> {
        self.keys.get(name).and_then(|s| s.first())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.keys.contains_key(name)
    }

    /// The upstream names (folded) that have a key, with the key holding each.
    pub fn holders(&self) -> impl Iterator<Item = (&String, &String)> {
        self.keys.iter().filter_map(|(name, s)| Some((name, s.first()?)))
    }
}

/// What a read of etcd says of its history, against what the agent took in
/// before (`seen`: the newest revision; `cluster`: the cluster id of the
/// last read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// The same history, at `seen` or later (or the first read).
    Continues,
    /// A read below a revision already seen: etcd restored from a snapshot
    /// or rebuilt (a live etcd's revision never goes back, and the read is
    /// linearizable).
    WentBack { from: i64, to: i64 },
    /// Another cluster id: another cluster, or one restored from a snapshot
    /// (which gives its members new ids).
    OtherCluster { from: u64, to: u64 },
}

pub fn history(seen: i64, cluster: Option<u64>, revision: i64, read_cluster: u64) -> History {
    match cluster {
        Some(from) if from != read_cluster => History::OtherCluster { from, to: read_cluster },
        _ if revision < seen => History::WentBack { from: seen, to: revision },
        _ => History::Continues,
    }
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
/// `configuration` whether nginx's configuration declares it with a zone,
/// `zoneless` whether it declares it without one (dyups replaces it, and
/// deleting it would leave its traffic without an upstream until nginx
/// restarts: its key's deletion leaves it, hunt 30 F2).
pub fn action(configuration: bool, zoneless: bool, desired: Option<&UpstreamSpec>) -> Action {
    match (configuration, desired) {
        (true, Some(spec)) => Action::PutServers(document::plus_servers(spec)),
        (false, Some(spec)) => Action::PostDyups(document::dyups_body(spec)),
        (false, None) if !zoneless => Action::DeleteDyups,
        (_, None) => Action::Leave,
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
    /// A PUT's 404: the configuration upstream is gone (deleted through
    /// dyups): the agent's idea of nginx's upstreams is stale. It learns
    /// them again and sends the upstream again (hunt 30 F6: filed as
    /// refused, never sent again).
    Stale,
}

/// The `409`s that no retry gets past: only another configuration does
/// (nginx reloaded or restarted), as for a refused document (hunt 42: a
/// consistent-hash upstream's PUT was sent again and logged every few
/// seconds for good). In the Plus API's spelling and in dyups'.
const LASTING_CONFLICTS: [&str; 5] =
    ["BalancerFixedAtStart", "balancer_fixed_at_start", "ServerResolved", "server_resolved", "upstream_resolves"];

/// `code` is the `error.code` of the answer's JSON body, if any.
pub fn outcome(action: &Action, status: u16, code: Option<&str>) -> Outcome {
    match status {
        200 => Outcome::Applied,
        404 if *action == Action::DeleteDyups => Outcome::Applied,
        404 if matches!(action, Action::PutServers(_)) => Outcome::Stale,
        500 if code == Some("persist_failed") => Outcome::Unsaved,
        409 if code.is_some_and(|c| LASTING_CONFLICTS.contains(&c)) => Outcome::Refused,
        // 412: the upstream changed between the agent's read of its
        // revision and its PUT, POST or DELETE (another client, or the
        // agent's own request nginx took late): read it again.
        // 507: the zone is full, which only the operator can fix.
        409 | 412 | 500..=506 | 508..=599 => Outcome::Retry,
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

/// The upstreams nginx lists by name (`GET {dyups}/list`, folded) that it no
/// longer has of those `desired` (folded name, revision of its document):
/// restarted without them (no Plus API, no boot id). A document nginx
/// refused at that revision (`refused`) is not listed and is not missing:
/// nginx would refuse it again.
pub fn missing<'a>(
    desired: impl Iterator<Item = (&'a String, i64)>,
    listed: &BTreeSet<String>,
    refused: &BTreeMap<String, i64>,
) -> Vec<(String, i64)> {
    desired
        .filter(|(name, revision)| !listed.contains(*name) && refused.get(*name) != Some(revision))
        .map(|(name, revision)| (name.clone(), revision))
        .collect()
}

/// The run-time upstreams to delete because they have no key: only after a
/// read of etcd succeeded (`read`), and only those the agent owns (it
/// created them, or saw their key deleted), never one made by hand or by
/// another agent, nor one of the configuration without a zone (`zoneless`:
/// dyups replaced it; see [`action`]).
pub fn prunable(
    read: bool,
    run_time: &BTreeSet<String>,
    owned: &BTreeSet<String>,
    zoneless: &BTreeSet<String>,
    keys: &Names,
) -> Vec<String> {
    if !read {
        return Vec::new();
    }
    run_time
        .iter()
        .filter(|name| owned.contains(*name) && !zoneless.contains(*name) && !keys.contains(name))
        .cloned()
        .collect()
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
            action(false, false, Some(&s)),
            Action::PostDyups("least_conn;\nserver 10.0.0.1:81 weight=2 max_fails=1 fail_timeout=10;\n".into())
        );
        assert_eq!(
            action(true, false, Some(&s)),
            Action::PutServers(
                r#"[{"backup":false,"down":false,"fail_timeout":"10s","max_conns":0,"max_fails":1,"server":"10.0.0.1:81","weight":2}]"#
                    .into()
            )
        );
        assert_eq!(action(false, false, None), Action::DeleteDyups);
        assert_eq!(action(true, false, None), Action::Leave);
        // A configuration upstream without a zone: dyups replaces it, and
        // its key's deletion leaves it (hunt 30 F2).
        assert_eq!(action(false, true, Some(&s)), action(false, false, Some(&s)));
        assert_eq!(action(false, true, None), Action::Leave);
    }

    #[test]
    fn answers() {
        let post = Action::PostDyups(String::new());
        assert_eq!(outcome(&post, 200, None), Outcome::Applied);
        assert_eq!(outcome(&post, 400, Some("invalid_body")), Outcome::Refused);
        assert_eq!(outcome(&post, 404, None), Outcome::Refused);
        assert_eq!(outcome(&Action::DeleteDyups, 404, None), Outcome::Applied);
        let put = Action::PutServers(String::new());
        assert_eq!(outcome(&put, 404, None), Outcome::Stale);
        assert_eq!(outcome(&put, 400, None), Outcome::Refused);
        assert_eq!(outcome(&post, 507, None), Outcome::Refused);
        // "the change is in effect and the next change writes the file again"
        assert_eq!(outcome(&post, 500, Some("persist_failed")), Outcome::Unsaved);
        assert_eq!(outcome(&Action::DeleteDyups, 500, Some("persist_failed")), Outcome::Unsaved);
        for busy in [409, 412, 500, 502, 503] {
            assert_eq!(outcome(&post, busy, None), Outcome::Retry, "{busy}");
        }
        for changed in [&post, &Action::DeleteDyups, &put] {
            assert_eq!(outcome(changed, 412, Some("upstream_revision_mismatch")), Outcome::Retry);
        }
        for busy in ["locked", "Busy", "busy", "ManagedByDyups", "UpstreamChanged"] {
            assert_eq!(outcome(&put, 409, Some(busy)), Outcome::Retry, "{busy}");
        }
        for lasting in LASTING_CONFLICTS {
            assert_eq!(outcome(&put, 409, Some(lasting)), Outcome::Refused, "{lasting}");
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
        let desired: Vec<(String, i64)> = [("a", 3), ("b", 4), ("c", 5)].map(|(n, r)| (n.to_string(), r)).into();
        let desired = || desired.iter().map(|(n, r)| (n, *r));
        let listed = BTreeSet::from(["backends", "b"].map(String::from));
        let none = BTreeMap::new();
        assert_eq!(missing(desired(), &listed, &none), [("a".to_string(), 3), ("c".to_string(), 5)]);
        assert!(missing(desired(), &desired().map(|(n, _)| n.clone()).collect(), &none).is_empty());
        // A document nginx refused at that revision is not listed: it is
        // not sent again at every check (hunt 21 F2: 580 refusals in 10 s).
        let refused = BTreeMap::from([("a".to_string(), 3), ("c".to_string(), 4)]);
        assert_eq!(missing(desired(), &listed, &refused), [("c".to_string(), 5)]);
    }

    #[test]
    fn only_owned_upstreams_without_a_key_are_pruned_after_a_read() {
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        let run_time = set(&["a", "b", "by-hand", "gone"]);
        let owned = set(&["a", "b", "gone"]);
        let mut keys = Names::default();
        keys.add("a");
        keys.add("B");
        let none = BTreeSet::new();
        assert_eq!(prunable(true, &run_time, &owned, &none, &keys), ["gone"]);
        // A configuration upstream without a zone that dyups replaced.
        assert!(prunable(true, &run_time, &owned, &set(&["gone"]), &keys).is_empty());
        // etcd not read yet (down at start): nothing, whatever else holds.
        assert!(prunable(false, &run_time, &owned, &none, &Names::default()).is_empty());
        // A new agent (owns nothing) on an empty or mistyped prefix.
        assert!(prunable(true, &run_time, &BTreeSet::new(), &none, &Names::default()).is_empty());
    }

    #[test]
    fn names_ignore_case_as_nginx_does() {
        assert_eq!(fold("Backend.Example_1-A"), "backend.example_1-a");
        assert_eq!(fold("app"), "app");
    }

    #[test]
    fn one_key_per_upstream_the_first_in_key_order() {
        let mut names = Names::default();
        assert_eq!(names.add("app"), Added::Holds { displaced: None });
        // A new value of the same key.
        assert_eq!(names.add("app"), Added::Holds { displaced: None });
        // "App" comes first in key order (upper case first): it holds the
        // upstream, "app" is refused from now on.
        assert_eq!(names.add("App"), Added::Holds { displaced: Some("app".into()) });
        assert_eq!(names.add("app"), Added::Refused { holder: "App".into() });
        assert_eq!(names.add("aPP"), Added::Refused { holder: "App".into() });
        assert_eq!(names.holder("app").map(String::as_str), Some("App"));
        assert_eq!(names.holders().collect::<Vec<_>>(), [(&"app".to_string(), &"App".to_string())]);
        assert!(names.contains("app") && !names.contains("App"));
        // Seen in another order (another agent, a restart): the same holder.
        let mut other = Names::default();
        for key in ["aPP", "app", "App"] {
            other.add(key);
        }
        assert_eq!(other.holder("app"), names.holder("app"));
        // A refused key deleted changes nothing; the holder deleted, the
        // next in key order holds it; the last deleted, nothing does.
        assert_eq!(names.remove("aPP"), Removed::Duplicate);
        assert_eq!(names.remove("App"), Removed::Next("app".into()));
        assert_eq!(names.remove("App"), Removed::Unknown);
        assert_eq!(names.remove("app"), Removed::Last);
        assert!(!names.contains("app") && names.holders().next().is_none());
        assert_eq!(names.remove("app"), Removed::Unknown);
    }

    #[test]
    fn a_value_is_its_revision_and_its_bytes() {
        let (a, b) = (br#"{"servers":[{"server":"10.0.0.1"}]}"#, br#"{"servers":[{"server":"10.0.0.2"}]}"#);
        assert_eq!(Version::of(5, a), Version::of(5, a));
        // etcd restored: the same revision again, another value.
        assert_ne!(Version::of(5, a), Version::of(5, b));
        assert_ne!(Version::of(5, a), Version::of(6, a));
    }

    #[test]
    fn etcd_history_going_back() {
        // The first read, and reads at or after what was seen.
        assert_eq!(history(0, None, 7, 11), History::Continues);
        assert_eq!(history(7, Some(11), 7, 11), History::Continues);
        assert_eq!(history(7, Some(11), 9, 11), History::Continues);
        // Restored from a snapshot taken at revision 3.
        assert_eq!(history(7, Some(11), 3, 11), History::WentBack { from: 7, to: 3 });
        // Another cluster (or one restored with new ids), at any revision.
        assert_eq!(history(7, Some(11), 9, 12), History::OtherCluster { from: 11, to: 12 });
        assert_eq!(history(7, Some(11), 3, 12), History::OtherCluster { from: 11, to: 12 });
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

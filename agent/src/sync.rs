//! The agent's loop: etcd's changes in, nginx's API calls out.
//!
//! The desired state is the last good document of every key. A change is
//! sent to nginx at once; what nginx could not take (down, busy) is sent
//! again with backoff. nginx is asked every `--check` whether it restarted
//! or reloaded (then everything is sent again), and every `--resync`
//! compared with the desired state (what differs is sent again).

use std::collections::BTreeMap;
use std::time::Duration;

use dynamic_upstream_core::dyups::UpstreamSpec;
use tokio::time::{interval, sleep_until, Instant, Interval, MissedTickBehavior};

use crate::args::Config;
use crate::document;
use crate::nginx::{Inventory, Nginx};
use crate::plan::{self, Action, Backoff, NginxSeen, Outcome};
use crate::store::{self, Entry, Session, Snapshot};

/// Why an upstream is sent to nginx again: the etcd revision of its key (or
/// of its deletion), and what made the agent send it when it is not a new
/// change.
#[derive(Debug, Clone, Copy)]
struct Why {
    revision: i64,
    note: Option<&'static str>,
}

struct Engine {
    nginx: Nginx,
    watched: String,
    /// The last good document of each key, with its revision.
    desired: BTreeMap<String, (i64, UpstreamSpec)>,
    /// Every name that has a key, good or not, with the key's revision: the
    /// agent never deletes a run-time upstream whose key holds a bad document.
    keys: BTreeMap<String, i64>,
    /// The latest etcd revision read.
    revision: i64,
    /// What is still to send to nginx.
    pending: BTreeMap<String, Why>,
    /// The revision nginx refused, per upstream: the resync does not send
    /// it again (nginx would refuse it again).
    refused: BTreeMap<String, i64>,
    /// The kinds of nginx's upstreams; None until learned (again).
    inventory: Option<Inventory>,
    /// Whether nginx has the Plus API location, which tells run-time
    /// upstreams apart: only then are run-time upstreams without a key
    /// deleted.
    plus_api: bool,
    /// Run-time upstreams without a key are looked for at the next send.
    prune: bool,
    seen: NginxSeen,
    backoff: Backoff,
    retry_at: Option<Instant>,
}

pub async fn run(config: Config) {
    let watched = plan::watched_prefix(&config.prefix);
    let mut engine = Engine {
        nginx: Nginx::new(&config.api, &config.dyups),
        watched: watched.clone(),
        desired: BTreeMap::new(),
        keys: BTreeMap::new(),
        revision: 0,
        pending: BTreeMap::new(),
        refused: BTreeMap::new(),
        inventory: None,
        plus_api: false,
        prune: false,
        seen: NginxSeen::Unknown,
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
        retry_at: None,
    };
    let mut session: Option<Session> = None;
    let mut etcd_backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut connect_at = Instant::now();
    let mut check = interval(config.check);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut resync = config.resync.map(|every| {
        let mut i = tokio::time::interval_at(Instant::now() + every, every);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    log!("watching {watched} on {}; nginx at {} and {}", config.etcd.join(","), config.api, config.dyups);
    loop {
        // A time far enough away to stand for "never".
        let never = Instant::now() + Duration::from_secs(86400);
        tokio::select! {
            changes = next_changes(&mut session) => match changes {
                Ok(entries) => {
                    for entry in entries {
                        engine.change(entry);
                    }
                    engine.flush().await;
                }
                Err(e) => {
                    session = None;
                    connect_at = Instant::now() + etcd_backoff.next_delay();
                    log!("etcd: {e}: nginx keeps what it has; reconnecting");
                }
            },
            _ = sleep_until(connect_at), if session.is_none() => match store::open(&config.etcd, &watched).await {
                Ok((opened, snapshot)) => {
                    etcd_backoff.reset();
                    session = Some(opened);
                    engine.load(snapshot);
                    engine.flush().await;
                }
                Err(e) => {
                    let delay = etcd_backoff.next_delay();
                    connect_at = Instant::now() + delay;
                    log!("etcd: {e}: nginx keeps what it has; next try in {delay:?}");
                }
            },
            _ = check.tick() => engine.check().await,
            _ = next_tick(&mut resync) => engine.resync().await,
            _ = sleep_until(engine.retry_at.unwrap_or(never)), if engine.retry_at.is_some() => engine.flush().await,
        }
    }
}

async fn next_changes(session: &mut Option<Session>) -> Result<Vec<Entry>, String> {
    match session {
        Some(s) => s.changes().await,
        None => std::future::pending().await,
    }
}

async fn next_tick(every: &mut Option<Interval>) {
    match every {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Engine {
    /// A key's new value or deletion. A value already seen (same revision,
    /// as a re-read after reconnecting finds most keys) changes nothing.
    fn change(&mut self, entry: Entry) {
        let name = match plan::upstream_name(&self.watched, &entry.key) {
            Ok(name) => name.to_string(),
            Err(reason) => {
                log!("refused revision {} of key \"{}\": {reason}", entry.revision, printable(&entry.key));
                return;
            }
        };
        let why = Why { revision: entry.revision, note: None };
        self.revision = self.revision.max(entry.revision);
        let Some(value) = entry.value else {
            self.keys.remove(&name);
            self.desired.remove(&name);
            self.pending.insert(name, why);
            return;
        };
        if self.keys.insert(name.clone(), entry.revision) == Some(entry.revision) {
            return;
        }
        match document::parse(&value) {
            Err(reason) => {
                let kept = match self.desired.get(&name) {
                    Some((revision, _)) => format!("upstream keeps revision {revision}"),
                    None => "nothing applied".to_string(),
                };
                log!("refused revision {} of upstream \"{name}\": {}; {kept}", entry.revision, printable(&reason));
            }
            Ok(spec) => {
                self.desired.insert(name.clone(), (entry.revision, spec));
                self.pending.insert(name, why);
            }
        }
    }

    /// Everything etcd holds, read at (re)connection: what changed since
    /// the last read is sent, and keys deleted meanwhile are deletions.
    fn load(&mut self, snapshot: Snapshot) {
        log!(
            "etcd: read {} keys at revision {}; watching from {}",
            snapshot.entries.len(),
            snapshot.revision,
            snapshot.revision + 1
        );
        self.revision = self.revision.max(snapshot.revision);
        let read: std::collections::BTreeSet<String> = snapshot.entries.iter().map(|e| e.key.clone()).collect();
        for entry in snapshot.entries {
            self.change(entry);
        }
        let gone: Vec<String> =
            self.keys.keys().map(|name| format!("{}{name}", self.watched)).filter(|key| !read.contains(key)).collect();
        for key in gone {
            self.change(Entry { key, value: None, revision: snapshot.revision });
        }
        // Keys deleted while no agent ran leave run-time upstreams behind.
        self.prune = true;
    }

    /// Asks nginx whether it restarted or reloaded since the last look.
    async fn check(&mut self) {
        let now = self.nginx.seen().await;
        if plan::nginx_restarted(&self.seen, &now) {
            log!("nginx restarted or reloaded: sending all {} upstreams again", self.desired.len());
            self.send_all("nginx restarted");
        }
        self.seen = now;
        if !self.pending.is_empty() && self.retry_at.is_none() {
            self.flush().await;
        }
    }

    /// Sends every desired upstream again, and deletes run-time upstreams
    /// without a key.
    fn send_all(&mut self, note: &'static str) {
        for (name, (revision, _)) in &self.desired {
            self.pending.insert(name.clone(), Why { revision: *revision, note: Some(note) });
        }
        self.inventory = None;
        self.prune = true;
        self.retry_at = None;
    }

    /// Compares nginx with the desired state and sends what differs.
    async fn resync(&mut self) {
        self.inventory = None;
        self.prune = true;
        let peers = match self.nginx.dyups_peers().await {
            Ok(peers) => peers,
            Err(e) => return log!("resync: {e}"),
        };
        if let Err(e) = self.learn_inventory().await {
            return log!("resync: {e}");
        }
        for (name, (revision, spec)) in &self.desired {
            let differs = if self.is_configuration(name) {
                // A PUT of the same servers changes nothing and says so.
                true
            } else {
                !peers.get(name).is_some_and(|p| plan::holds(spec, p))
            };
            if differs && self.refused.get(name) != Some(revision) {
                self.pending.entry(name.clone()).or_insert(Why { revision: *revision, note: Some("resync") });
            }
        }
        self.flush().await;
    }

    fn is_configuration(&self, name: &str) -> bool {
        self.inventory.as_ref().is_some_and(|i| i.configuration.contains(name))
    }

    async fn learn_inventory(&mut self) -> Result<(), String> {
        if self.inventory.is_some() {
            return Ok(());
        }
        let inventory = self.nginx.inventory().await?;
        self.plus_api = inventory.is_some();
        self.inventory = Some(inventory.unwrap_or_default());
        Ok(())
    }

    /// Sends what is pending; on a failure to reach nginx, tries again later.
    async fn flush(&mut self) {
        if let Err(e) = self.learn_inventory().await {
            return self.later(&e);
        }
        if std::mem::take(&mut self.prune) && self.plus_api {
            let run_time = self.inventory.as_ref().map(|i| i.run_time.clone()).unwrap_or_default();
            for name in run_time.into_iter().filter(|n| !self.keys.contains_key(n)) {
                self.pending.entry(name).or_insert(Why { revision: self.revision, note: Some("no key") });
            }
        }
        while let Some((name, why)) = self.pending.first_key_value().map(|(n, w)| (n.clone(), *w)) {
            let configuration = self.is_configuration(&name);
            let spec = self.desired.get(&name).map(|(_, spec)| spec);
            let action = plan::action(configuration, spec);
            let kind = if configuration { "configuration" } else { "run-time" };
            let note = why.note.map(|n| format!(", {n}")).unwrap_or_default();
            match self.nginx.apply(&name, &action).await {
                None => {
                    log!(
                        "applied revision {} to upstream \"{name}\" ({kind}{note}): key deleted, its servers stay until nginx reloads",
                        why.revision
                    );
                }
                Some(Err(e)) => return self.later(&e),
                Some(Ok(answer)) => match plan::outcome(&action, answer.status) {
                    Outcome::Applied => {
                        let what = match (&action, spec) {
                            (Action::DeleteDyups, _) if answer.status == 404 => {
                                "deleted (it did not exist)".to_string()
                            }
                            (Action::DeleteDyups, _) => "deleted".to_string(),
                            (_, Some(spec)) if answer.changed == Some(false) => {
                                format!("{} (unchanged)", document::summary(spec, !configuration))
                            }
                            (_, Some(spec)) => document::summary(spec, !configuration),
                            (_, None) => String::new(),
                        };
                        // A resync's PUT that changed nothing is not a change.
                        self.refused.remove(&name);
                        if !(why.note == Some("resync") && answer.changed == Some(false)) {
                            log!("applied revision {} to upstream \"{name}\" ({kind}{note}): {what}", why.revision);
                        }
                    }
                    Outcome::Refused => {
                        self.refused.insert(name.clone(), why.revision);
                        log!(
                            "nginx refused revision {} of upstream \"{name}\" ({kind}): {} {}; it keeps what it had",
                            why.revision,
                            answer.status,
                            printable(&answer.reason())
                        );
                    }
                    Outcome::Retry => {
                        return self.later(&format!("{} {}", answer.status, printable(&answer.reason())));
                    }
                },
            }
            self.pending.remove(&name);
        }
        self.backoff.reset();
        self.retry_at = None;
    }

    fn later(&mut self, error: &str) {
        let delay = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + delay);
        log!("nginx: {error}: {} upstreams to send, next try in {delay:?}", self.pending.len());
    }
}

fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    dynamic_upstream_core::render::printable(text)
}

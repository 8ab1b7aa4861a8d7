//! The agent's loop: etcd's changes in, nginx's API calls out.
//!
//! The desired state is the last good document of every key. A change is
//! sent to nginx at once. An upstream nginx answers with an error (busy,
//! 5xx) is sent again after a delay of its own while the others go on;
//! when nginx does not answer at all, everything waits. Every `--check`
//! nginx is asked whether it restarted or reloaded (its boot id through the
//! Plus API; without it, whether upstreams are missing from its list), and
//! every `--resync` etcd is read again over a new connection and nginx is
//! compared with the documents. nginx's full listings, which take a while
//! with thousands of upstreams, are read beside the loop: changes from etcd
//! go on being sent meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::time::Duration;

use dynamic_upstream_core::dyups::UpstreamSpec;
use dynamic_upstream_core::ServerSpec;
use tokio::time::{interval, sleep_until, Instant, Interval, MissedTickBehavior};

use crate::args::Config;
use crate::document;
use crate::nginx::{Inventory, Nginx};
use crate::plan::{self, Action, Added, Backoff, BootId, History, Names, Outcome, Removed, Version};
use crate::store::{self, Entry, Session, Snapshot};

/// Why an upstream is sent to nginx again: the etcd revision of its key (or
/// of its deletion), and what made the agent send it when it is not a new
/// change.
#[derive(Debug, Clone, Copy)]
struct Why {
    revision: i64,
    note: Option<&'static str>,
}

/// What the agent holds of one key: the version of its value, and its last
/// good document with that document's revision.
struct Held {
    version: Version,
    good: Option<(i64, UpstreamSpec)>,
}

/// Every map below but `held` and `bad_keys` is keyed by the upstream name
/// folded to lower case, as nginx compares names (hunt 21 F1: a key
/// `Backend` took over and then deleted the configuration upstream
/// `backend`).
struct Engine {
    nginx: Nginx,
    watched: String,
    dyups: String,
    max_delete: u8,
    /// Every key that names an upstream, good or not, by its name as
    /// spelled: the agent never deletes a run-time upstream whose key holds
    /// a bad document.
    held: BTreeMap<String, Held>,
    /// The keys of each upstream name: one holds it (the first in key
    /// order), the others are refused. The desired state is the last good
    /// document of each holder.
    names: Names,
    /// Keys that name no upstream, with the revision logged (once); a
    /// deleted one is forgotten.
    bad_keys: BTreeMap<String, i64>,
    /// The id of the etcd cluster of the last read.
    cluster: Option<u64>,
    /// The revision of the last read of the whole prefix; 0 before the
    /// first: nothing is deleted before etcd has been read.
    read_revision: i64,
    /// The newest revision taken in, from a read or a watch: a watch
    /// delivers in revision order, so what a new watch delivers again up to
    /// it was taken in already.
    seen_revision: i64,
    /// What is still to send to nginx.
    pending: BTreeMap<String, Why>,
    /// Upstreams nginx answered with an error: each waits its own delay.
    delayed: BTreeMap<String, (Backoff, Instant)>,
    /// The revision nginx refused, per upstream: the resync does not send
    /// it again (nginx would refuse it again).
    refused: BTreeMap<String, i64>,
    /// The run-time upstreams this agent may delete: it created them, or
    /// saw their key deleted. Others (made by hand, by another agent, before
    /// it started) are never deleted.
    owned: BTreeSet<String>,
    /// Run-time upstreams without a key left alone, logged once each.
    not_owned: BTreeSet<String>,
    /// The kinds of nginx's upstreams; None until learned (again).
    inventory: Option<Inventory>,
    /// Upstreams of the configuration without a zone of their own, as seen
    /// (Plus API): dyups replaces them, and their key's deletion leaves
    /// them. Kept (a name may be the agent's own since: its key deleted)
    /// until the Plus API lists it with a zone of its own, given at a
    /// restart (hunt 42: kept for the agent's life, it was still replaced
    /// through dyups, its zone and checks gone).
    zoneless: BTreeSet<String>,
    /// The upstream and revision whose PUT got a 404 (Outcome::Stale): a
    /// second 404 for it, once the kinds are learned again, is a refusal.
    stale: Option<(String, i64)>,
    /// Whether nginx has the Plus API location (boot id, kinds of upstreams).
    plus_api: bool,
    /// Owned run-time upstreams without a key are looked for at the next send.
    prune: bool,
    /// nginx's last boot id read (Plus API).
    boot: Option<BootId>,
    /// While nginx does not answer.
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// A comparison with nginx asked for (why), started when none runs.
    reconcile_wanted: Option<&'static str>,
    /// Upstreams sent, or changed in etcd, since the running comparison's
    /// reads started: what those reads show of them may be older than
    /// what nginx has, so the comparison leaves them alone.
    touched: BTreeSet<String>,
}

/// nginx's listings a comparison reads: its upstreams by kind (Plus API)
/// and the run-time upstreams' servers.
type Listings = (Result<Option<Inventory>, String>, Result<HashMap<String, Vec<ServerSpec>>, String>);

/// Work under way beside the loop, polled by its select: what it is for,
/// and the future that does it.
struct Underway<W, T> {
    what: W,
    future: Pin<Box<dyn Future<Output = T>>>,
}

/// What `slot`'s work gives, once done (never, without work).
async fn finished<W, T>(slot: &mut Option<Underway<W, T>>) -> T {
    match slot {
        Some(work) => work.future.as_mut().await,
        None => std::future::pending().await,
    }
}

/// A connection with its read, or why there is none.
type Opened = Result<(Session, Snapshot), String>;

/// A new etcd connection and read; `what`: whether it is a resync's (made
/// while the current watch goes on).
type Opening = Underway<bool, Opened>;

fn open(config: &Config, prefix: &str, resync: bool) -> Opening {
    let (endpoints, prefix) = (config.etcd.clone(), prefix.to_string());
    Underway { what: resync, future: Box::pin(async move { store::open(&endpoints, &prefix).await }) }
}

/// A comparison's reads; `what`: why it was asked for.
type Reading = Underway<&'static str, Listings>;

/// Delays before sending again to nginx, or reconnecting to etcd.
fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}

/// A number that differs at each call, for the backoff's jitter.
fn random() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now())
}

pub async fn run(config: Config) {
    let watched = plan::watched_prefix(&config.prefix);
    let mut engine = Engine {
        nginx: Nginx::new(&config.api, &config.dyups),
        watched: watched.clone(),
        dyups: config.dyups.clone(),
        max_delete: config.max_delete,
        held: BTreeMap::new(),
        names: Names::default(),
        bad_keys: BTreeMap::new(),
        cluster: None,
        read_revision: 0,
        seen_revision: 0,
        pending: BTreeMap::new(),
        delayed: BTreeMap::new(),
        refused: BTreeMap::new(),
        owned: BTreeSet::new(),
        not_owned: BTreeSet::new(),
        inventory: None,
        zoneless: BTreeSet::new(),
        stale: None,
        plus_api: false,
        prune: false,
        boot: None,
        backoff: retry_backoff(),
        retry_at: None,
        reconcile_wanted: None,
        touched: BTreeSet::new(),
    };
    let mut reading: Option<Reading> = None;
    let mut session: Option<Session> = None;
    // A new connection and read under way: at start, after a failure, or a
    // resync's while the current watch goes on (see Engine::resynced).
    let mut opening: Option<Opening> = None;
    // When the watch was opened, and whether it delivered a change since.
    let (mut opened_at, mut delivered) = (Instant::now(), false);
    let mut etcd_backoff = retry_backoff();
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
                    if !delivered {
                        delivered = true;
                        etcd_backoff.reset();
                    }
                    engine.watched(entries);
                    engine.flush().await;
                }
                Err(e) => {
                    session = None;
                    // A resync's read under way is now the reconnection's:
                    // taken in whatever its revision (etcd may have come
                    // back restored, its revisions below those seen).
                    if let Some(opening) = opening.as_mut() {
                        opening.what = false;
                    }
                    if plan::watch_was_healthy(opened_at.elapsed(), delivered) {
                        etcd_backoff.reset();
                    }
                    let delay = etcd_backoff.next_delay(random());
                    connect_at = Instant::now() + delay;
                    log!("etcd: {e}: nginx keeps what it has; next try in {delay:?}");
                }
            },
            _ = sleep_until(connect_at), if session.is_none() && opening.is_none() => {
                opening = Some(open(&config, &watched, false));
            }
            _ = check.tick() => engine.check().await,
            _ = next_tick(&mut resync) => {
                // A new connection and read: a watch that stalled without
                // failing (a member cut off from etcd's leader) is replaced.
                // The current one goes on meanwhile.
                if session.is_some() && opening.is_none() {
                    opening = Some(open(&config, &watched, true));
                }
                engine.reconcile_wanted.get_or_insert("resync");
            }
            opened = finished(&mut opening) => {
                let resync = opening.take().is_some_and(|o| o.what);
                match opened {
                    Ok((opened, snapshot)) => {
                        // A resync's new watch replaces the current one here.
                        session = Some(opened);
                        (opened_at, delivered) = (Instant::now(), false);
                        if resync {
                            engine.resynced(snapshot);
                        } else {
                            engine.load(snapshot);
                        }
                        engine.flush().await;
                    }
                    // A resync's connection or read failed (one hung member
                    // of several): no news, as a failed read of nginx. The
                    // current watch goes on, and the next resync tries again
                    // (hunt 30 F3: dropping it left the agent without a
                    // watch through several reconnections); a watch that
                    // stalled still ends by the HTTP/2 pings.
                    Err(e) if resync && session.is_some() => {
                        log!("etcd: resync: {e}: the current watch goes on; next try at the next resync");
                    }
                    Err(e) => {
                        session = None;
                        let delay = etcd_backoff.next_delay(random());
                        connect_at = Instant::now() + delay;
                        log!("etcd: {e}: nginx keeps what it has; next try in {delay:?}");
                    }
                }
            }
            listings = finished(&mut reading) => {
                let note = reading.take().map_or("resync", |r| r.what);
                engine.reconcile(note, listings).await;
            }
            _ = sleep_until(engine.retry_at.unwrap_or(never)), if engine.retry_at.is_some() => engine.flush().await,
        }
        if reading.is_none() {
            reading = engine.start_reconcile();
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
    /// The changes of one watch answer or read. One that would delete more
    /// than `--max-delete` percent of the upstreams is not applied: etcd
    /// emptied or restored from an old backup, a mistyped range delete.
    fn batch(&mut self, mut entries: Vec<Entry>) {
        let deleting: BTreeSet<String> = entries
            .iter()
            .filter(|e| e.value.is_none())
            .filter_map(|e| plan::upstream_name(&self.watched, &e.key).ok())
            .filter(|spelled| self.held.contains_key(*spelled))
            .map(String::from)
            .collect();
        if plan::too_many_deletes(deleting.len(), self.held.len(), self.max_delete) {
            let revision = entries.iter().map(|e| e.revision).max().unwrap_or_default();
            log!(
                "held the deletion of {} of the {} upstreams at revision {revision} (more than --max-delete {}%): \
                 nginx keeps them and this agent no longer manages them; if this was meant, delete them with \
                 DELETE {}/upstream/NAME",
                deleting.len(),
                self.held.len(),
                self.max_delete,
                self.dyups
            );
            for spelled in &deleting {
                let name = plan::fold(spelled);
                self.held.remove(spelled);
                match self.names.remove(spelled) {
                    Removed::Last => {
                        self.forget(&name);
                        self.owned.remove(&name);
                        self.pending.remove(&name);
                    }
                    Removed::Next(next) => self.hand_over(&name, &next, revision),
                    Removed::Duplicate | Removed::Unknown => {}
                }
            }
            let watched = &self.watched;
            entries.retain(|e| {
                e.value.is_some() || !plan::upstream_name(watched, &e.key).is_ok_and(|n| deleting.contains(n))
            });
        }
        for entry in entries {
            self.change(entry);
        }
    }

    /// A key's new value or deletion. A value already seen (same revision
    /// and same bytes, as a re-read finds most keys) changes nothing; the
    /// revision alone does not identify a value (etcd restored from a
    /// snapshot reuses revisions, hunt 21 F3).
    fn change(&mut self, entry: Entry) {
        let spelled = match plan::upstream_name(&self.watched, &entry.key) {
            Ok(spelled) => spelled.to_string(),
            // A key naming no upstream deleted: forgotten (bad_keys grew
            // with every such key ever put), nothing to log or apply.
            Err(_) if entry.value.is_none() => {
                self.bad_keys.remove(&entry.key);
                return;
            }
            Err(reason) => {
                if self.bad_keys.insert(entry.key.clone(), entry.revision) != Some(entry.revision) {
                    log!("refused revision {} of key \"{}\": {reason}", entry.revision, printable(&entry.key));
                }
                return;
            }
        };
        let name = plan::fold(&spelled);
        let why = Why { revision: entry.revision, note: None };
        let Some(value) = entry.value else {
            self.held.remove(&spelled);
            match self.names.remove(&spelled) {
                // A refused key (another spelling holds the upstream).
                Removed::Duplicate => {}
                Removed::Unknown if self.names.contains(&name) => {}
                Removed::Next(next) => self.hand_over(&name, &next, entry.revision),
                Removed::Last | Removed::Unknown => {
                    self.forget(&name);
                    // Its key was there: the upstream is the agent's to delete.
                    self.owned.insert(name.clone());
                    self.touched.insert(name.clone());
                    self.pending.insert(name, why);
                }
            }
            return;
        };
        let version = Version::of(entry.revision, &value);
        if self.held.get(&spelled).is_some_and(|h| h.version == version) {
            return;
        }
        let kept = match self.desired(&name) {
            Some((revision, _)) => format!("upstream keeps revision {revision}"),
            None => "nothing applied".to_string(),
        };
        let previous = self.held.remove(&spelled).and_then(|h| h.good);
        let (good, reason) = match document::parse(&value) {
            Ok(spec) => (Some((entry.revision, spec)), None),
            Err(reason) => (previous, Some(reason)),
        };
        self.held.insert(spelled.clone(), Held { version, good });
        match self.names.add(&spelled) {
            Added::Refused { holder } => {
                return log!(
                    "refused revision {} of key \"{}\": upstream \"{name}\" has the key \"{}{holder}\", first in key \
                     order (nginx's upstream names ignore case: one key per upstream)",
                    entry.revision,
                    printable(&entry.key),
                    self.watched
                );
            }
            Added::Holds { displaced: Some(before) } => log!(
                "refused key \"{}{before}\" from revision {} on: upstream \"{name}\" has the key \"{}\", first in key \
                 order (nginx's upstream names ignore case: one key per upstream)",
                self.watched,
                entry.revision,
                printable(&entry.key)
            ),
            Added::Holds { displaced: None } => {}
        }
        if let Some(reason) = reason {
            return log!("refused revision {} of upstream \"{name}\": {}; {kept}", entry.revision, printable(&reason));
        }
        // A new document is sent at once, whatever failed before.
        self.refused.remove(&name);
        self.delayed.remove(&name);
        self.touched.insert(name.clone());
        self.pending.insert(name, why);
    }

    /// The key that held upstream `name` is gone at `revision`: `next`,
    /// another spelling of it, holds it now and its document is sent.
    fn hand_over(&mut self, name: &str, next: &str, revision: i64) {
        let Some(&(good, _)) = self.held.get(next).and_then(|h| h.good.as_ref()) else {
            return log!(
                "key \"{}{next}\" holds upstream \"{name}\" from revision {revision} on (the key before it in key order \
                 is gone); it has no good document: the upstream keeps what it has",
                self.watched
            );
        };
        log!(
            "key \"{}{next}\" holds upstream \"{name}\" from revision {revision} on (the key before it in key order is \
             gone): sending its revision {good}",
            self.watched
        );
        self.refused.remove(name);
        self.delayed.remove(name);
        self.touched.insert(name.to_string());
        self.pending.insert(name.to_string(), Why { revision: good, note: Some("next key in key order") });
    }

    /// The desired state of upstream `name`: the last good document of the
    /// key that holds it, with its revision.
    fn desired(&self, name: &str) -> Option<&(i64, UpstreamSpec)> {
        self.held.get(self.names.holder(name)?)?.good.as_ref()
    }

    /// Every upstream's desired state.
    fn documents(&self) -> impl Iterator<Item = (&String, &(i64, UpstreamSpec))> {
        self.names.holders().filter_map(|(name, key)| Some((name, self.held.get(key)?.good.as_ref()?)))
    }

    /// Drops what the agent knows of an upstream whose key is gone.
    fn forget(&mut self, name: &str) {
        self.refused.remove(name);
        self.delayed.remove(name);
    }

    /// Changes a watch delivered; those up to the newest revision taken in
    /// were (a resync's new watch delivers again what the old one did
    /// after the new read).
    fn watched(&mut self, mut entries: Vec<Entry>) {
        entries.retain(|e| e.revision > self.seen_revision);
        if let Some(newest) = entries.iter().map(|e| e.revision).max() {
            self.seen_revision = newest;
            self.batch(entries);
        }
    }

    /// A resync's read, made while the old watch went on. If that watch
    /// delivered a revision newer than the read, from the same cluster, it
    /// was live and has delivered every change up to it (a watch delivers
    /// in revision order): the read, older, would only take keys back to
    /// older revisions, and is not taken in. Otherwise it is taken in as at
    /// a connection (what a stalled watch missed is sent; another cluster's
    /// history is another history).
    fn resynced(&mut self, snapshot: Snapshot) {
        if snapshot.revision < self.seen_revision && self.cluster == Some(snapshot.cluster) {
            log!(
                "etcd: resync read {} keys at revision {}; the watch had delivered up to revision {}: nothing missed",
                snapshot.entries.len(),
                snapshot.revision,
                self.seen_revision
            );
            self.read_revision = self.read_revision.max(snapshot.revision);
            return;
        }
        self.load(snapshot);
    }

    /// Everything etcd holds, read at (re)connection: what changed since
    /// the last read is sent, and keys deleted meanwhile are deletions. A
    /// read whose history went back (below a revision already seen, or
    /// another cluster id) takes every key as new.
    fn load(&mut self, snapshot: Snapshot) {
        log!(
            "etcd: read {} keys at revision {}; watching from {}",
            snapshot.entries.len(),
            snapshot.revision,
            snapshot.revision + 1
        );
        match plan::history(self.seen_revision, self.cluster, snapshot.revision, snapshot.cluster) {
            History::Continues => {}
            History::WentBack { from, to } => {
                log!(
                    "etcd's revision went back from {from} to {to} (restored from a snapshot, or rebuilt?): every key of \
                     this read is taken as new"
                );
                self.renew();
            }
            History::OtherCluster { from, to } => {
                log!(
                    "etcd's cluster id changed from {from:x} to {to:x} (another cluster, or one restored from a \
                     snapshot?): every key of this read is taken as new"
                );
                self.renew();
            }
        }
        self.cluster = Some(snapshot.cluster);
        let read: BTreeSet<String> = snapshot.entries.iter().map(|e| e.key.clone()).collect();
        let gone: Vec<Entry> = self
            .held
            .keys()
            .map(|spelled| format!("{}{spelled}", self.watched))
            .filter(|key| !read.contains(key))
            .map(|key| Entry { key, value: None, revision: snapshot.revision })
            .collect();
        let mut entries = snapshot.entries;
        entries.extend(gone);
        self.batch(entries);
        self.read_revision = snapshot.revision;
        self.seen_revision = snapshot.revision;
        // Keys deleted while etcd was out of reach.
        self.prune = true;
    }

    /// etcd's history went back: no value held is identified by what the
    /// agent saw before (the revisions are reused), so the next read's are
    /// all new (etcd's revisions start at 1: none is 0), and what was
    /// refused or logged at a revision may be another value now.
    fn renew(&mut self) {
        for held in self.held.values_mut() {
            held.version.revision = 0;
        }
        self.refused.clear();
        self.bad_keys.clear();
    }

    /// Asks nginx whether it restarted or reloaded since the last look; a
    /// failed question is no news.
    async fn check(&mut self) {
        if self.learn_inventory().await.is_err() {
            return;
        }
        if self.plus_api {
            let Ok(boot) = self.nginx.boot_id().await else { return };
            let restarted = plan::nginx_restarted(self.boot.as_ref(), &boot);
            self.boot = Some(boot);
            if restarted {
                self.nginx.new_connections();
                log!(
                    "nginx restarted or reloaded (new boot id): comparing it with the {} documents",
                    self.documents().count()
                );
                // What nginx refused may fit now (a bigger zone, a new
                // variable): the comparison sends it again; the kinds of
                // its upstreams may have changed (a zone given).
                self.refused.clear();
                self.inventory = None;
                self.reconcile_wanted = Some("nginx restarted or reloaded");
                return;
            }
        } else {
            // No boot id: a restarted nginx is one that lacks upstreams it
            // had taken (not those it refused: hunt 21 F2, each was sent
            // again at every check).
            let Ok(listed) = self.nginx.dyups_names().await else { return };
            let documents: Vec<(String, i64)> = self.documents().map(|(name, (r, _))| (name.clone(), *r)).collect();
            let missing = plan::missing(documents.iter().map(|(name, r)| (name, *r)), &listed, &self.refused);
            if missing.is_empty() {
                return self.flush_pending().await;
            }
            // Restarted: what it refused may fit now (a bigger zone).
            let refused: Vec<(String, i64)> = std::mem::take(&mut self.refused)
                .into_iter()
                .filter(|(name, revision)| self.desired(name).is_some_and(|(r, _)| r == revision))
                .collect();
            let also = match refused.len() {
                0 => String::new(),
                n => format!(", and the {n} it refused"),
            };
            log!(
                "nginx lacks {} of the {} upstreams (restarted?): sending them again{also}",
                missing.len(),
                documents.len()
            );
            for (name, revision) in missing {
                self.pending.entry(name).or_insert(Why { revision, note: Some("missing in nginx") });
            }
            for (name, revision) in refused {
                self.pending.entry(name).or_insert(Why { revision, note: Some("refused before nginx restarted") });
            }
        }
        self.flush_pending().await;
    }

    async fn flush_pending(&mut self) {
        if !self.pending.is_empty() && self.retry_at.is_none() {
            self.flush().await;
        }
    }

    /// Starts the reads of the comparison asked for, if one is.
    fn start_reconcile(&mut self) -> Option<Reading> {
        let note = self.reconcile_wanted.take()?;
        self.touched.clear();
        let nginx = self.nginx.clone();
        // One after the other: a listing keeps an nginx worker busy while it
        // renders, and the others are left to the changes and the traffic.
        let future = Box::pin(async move { (nginx.inventory().await, nginx.dyups_peers().await) });
        Some(Underway { what: note, future })
    }

    /// Compares nginx's `listings` with the desired state and sends what
    /// differs (a reload keeps the run-time upstreams: those that still
    /// hold their document are not sent again). Upstreams sent or changed
    /// since the listings were read are left to what sent them.
    async fn reconcile(&mut self, note: &'static str, (inventory, peers): Listings) {
        self.prune = true;
        match inventory {
            Ok(inventory) => self.take_inventory(inventory),
            Err(e) => {
                self.inventory = None;
                return log!("{note}: {e}");
            }
        }
        let peers = match peers {
            Ok(peers) => peers,
            Err(e) => return log!("{note}: {e}"),
        };
        let differing: Vec<(String, i64)> = self
            .documents()
            .filter(|(name, _)| !self.touched.contains(*name))
            .filter(|(name, (revision, spec))| {
                let differs = if self.is_configuration(name) {
                    // A PUT of the same servers changes nothing and says so.
                    true
                } else {
                    !peers.get(*name).is_some_and(|p| plan::holds(spec, p))
                };
                // What nginx refused is sent again: with the Plus API once
                // it restarted or reloaded (a new boot id clears `refused`);
                // without it, at every resync (a reload that made room is
                // not seen otherwise), never at every check.
                differs && (!self.plus_api || self.refused.get(*name) != Some(revision))
            })
            .map(|(name, (revision, _))| (name.clone(), *revision))
            .collect();
        for (name, revision) in differing {
            self.pending.entry(name).or_insert(Why { revision, note: Some(note) });
        }
        self.flush().await;
    }

    /// A configuration upstream with a zone (PUT). One without a zone is
    /// not, even once dyups replaced it and the Plus API lists it.
    fn is_configuration(&self, name: &str) -> bool {
        !self.zoneless.contains(name) && self.inventory.as_ref().is_some_and(|i| i.configuration.contains(name))
    }

    async fn learn_inventory(&mut self) -> Result<(), String> {
        if self.inventory.is_some() {
            return Ok(());
        }
        let inventory = self.nginx.inventory().await?;
        self.take_inventory(inventory);
        Ok(())
    }

    /// nginx's upstreams by kind, as read (None: no Plus API location).
    fn take_inventory(&mut self, inventory: Option<Inventory>) {
        self.plus_api = inventory.is_some();
        // Not one the agent created or deleted (a run-time upstream deleted
        // between the two reads of the listing).
        for name in inventory.iter().flat_map(|i| &i.zoneless) {
            if !self.owned.contains(name) {
                self.zoneless.insert(name.clone());
            }
        }
        if let Some(inventory) = &inventory {
            self.zoneless.retain(|name| !inventory.configuration.contains(name));
        }
        self.inventory = Some(inventory.unwrap_or_default());
    }

    /// Queues the deletion of the owned run-time upstreams without a key.
    async fn prune(&mut self) -> Result<(), String> {
        let run_time = match &self.inventory {
            Some(inventory) if self.plus_api => inventory.run_time.clone(),
            _ => self.nginx.dyups_names().await?,
        };
        for name in plan::prunable(self.read_revision > 0, &run_time, &self.owned, &self.zoneless, &self.names) {
            let why = Why { revision: self.read_revision, note: Some("no key at the last read") };
            self.pending.entry(name).or_insert(why);
        }
        if self.plus_api && self.read_revision > 0 {
            for name in run_time.iter().filter(|n| !self.names.contains(n) && !self.owned.contains(*n)) {
                if self.not_owned.insert(name.clone()) {
                    log!("run-time upstream \"{name}\" has no key and this agent did not create it: left as it is");
                }
            }
        }
        Ok(())
    }

    /// Sends what is pending and due; an upstream nginx answers with an
    /// error waits its own delay, and nginx not answering stops the round.
    async fn flush(&mut self) {
        if let Err(e) = self.learn_inventory().await {
            return self.later(&e);
        }
        if std::mem::take(&mut self.prune) {
            if let Err(e) = self.prune().await {
                self.prune = true;
                return self.later(&e);
            }
        }
        let now = Instant::now();
        let due: Vec<(String, Why)> = self
            .pending
            .iter()
            .filter(|(name, _)| !matches!(self.delayed.get(*name), Some((_, at)) if *at > now))
            .map(|(name, why)| (name.clone(), *why))
            .collect();
        for (name, why) in due {
            let configuration = self.is_configuration(&name);
            let spec = self.desired(&name).map(|(_, spec)| spec.clone());
            let spec = spec.as_ref();
            let zoneless = self.plus_api && self.zoneless.contains(&name);
            let action = plan::action(configuration, zoneless, spec);
            let kind = match (configuration, zoneless) {
                (true, _) => "configuration",
                (false, true) => "configuration, without a zone",
                (false, false) => "run-time",
            };
            let note = why.note.map(|n| format!(", {n}")).unwrap_or_default();
            self.touched.insert(name.clone());
            match self.nginx.apply(&name, &action).await {
                // dyups' copy of a zone-less one outlives a reload.
                None => {
                    let until = if zoneless { "restarts" } else { "reloads" };
                    log!(
                        "applied revision {} to upstream \"{name}\" ({kind}{note}): key deleted, its servers stay until nginx {until}",
                        why.revision
                    );
                }
                Some(Err(e)) => return self.later(&e),
                Some(Ok(answer)) => match plan::outcome(&action, answer.status, answer.code().as_deref()) {
                    outcome @ (Outcome::Applied | Outcome::Unsaved) => {
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
                        let unsaved = match outcome {
                            Outcome::Unsaved => format!("; nginx: {}", printable(&answer.reason())),
                            _ => String::new(),
                        };
                        self.refused.remove(&name);
                        if !configuration {
                            // Still the agent's once deleted: a late request
                            // (a stalled worker) that makes it again is
                            // undone at the next resync (review 55).
                            self.owned.insert(name.clone());
                        }
                        if action == Action::DeleteDyups {
                            // No longer listed (the inventory is read again
                            // only at a resync's comparison): not deleted
                            // again at every read meanwhile, "deleted (it did
                            // not exist)" (hunt 30 F4).
                            if let Some(inventory) = &mut self.inventory {
                                inventory.run_time.remove(&name);
                            }
                        }
                        // A PUT sent again that changed nothing is no change.
                        if !(why.note.is_some() && answer.changed == Some(false)) {
                            log!(
                                "applied revision {} to upstream \"{name}\" ({kind}{note}): {what}{unsaved}",
                                why.revision
                            );
                        }
                    }
                    Outcome::Stale if self.stale.as_ref() != Some(&(name.clone(), why.revision)) => {
                        self.stale = Some((name.clone(), why.revision));
                        // Nothing else is sent with the stale kinds (a
                        // configuration upstream taken for a run-time one
                        // would be replaced through dyups).
                        self.inventory = None;
                        return self.later(&format!(
                            "{} {} for revision {} of upstream \"{name}\" (configuration): its upstreams are read again",
                            answer.status,
                            printable(&answer.reason()),
                            why.revision
                        ));
                    }
                    Outcome::Refused | Outcome::Stale => {
                        self.refused.insert(name.clone(), why.revision);
                        log!(
                            "nginx refused revision {} of upstream \"{name}\" ({kind}): {} {}; it keeps what it had",
                            why.revision,
                            answer.status,
                            printable(&answer.reason())
                        );
                    }
                    Outcome::Retry => {
                        let (backoff, at) = self.delayed.entry(name.clone()).or_insert_with(|| (retry_backoff(), now));
                        let delay = backoff.next_delay(random());
                        *at = Instant::now() + delay;
                        log!(
                            "nginx: {} {} for revision {} of upstream \"{name}\": next try in {delay:?}; the others go on",
                            answer.status,
                            printable(&answer.reason()),
                            why.revision
                        );
                        continue;
                    }
                },
            }
            self.pending.remove(&name);
            self.delayed.remove(&name);
        }
        self.backoff.reset();
        self.retry_at = self.pending.keys().filter_map(|name| self.delayed.get(name).map(|(_, at)| *at)).min();
    }

    fn later(&mut self, error: &str) {
        let delay = self.backoff.next_delay(random());
        self.retry_at = Some(Instant::now() + delay);
        log!("nginx: {error}: {} upstreams to send, next try in {delay:?}", self.pending.len());
    }
}

fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    dynamic_upstream_core::render::printable(text)
}

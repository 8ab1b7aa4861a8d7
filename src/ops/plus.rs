//! The upstreams the NGINX Plus API and its metrics serve, read and
//! changed: every configuration upstream with a zone, and every upstream
//! the dyups registry holds (created at run time, or a configuration
//! upstream the REST API replaced). A run-time upstream's changes are
//! whole new server lists for [`crate::ops::dyups::update_upstream_spec`]
//! (keeping its balancer), made only if nothing changed it meanwhile.

use std::collections::{HashMap, HashSet};

use dynamic_upstream_core::dyups::{finish, UpstreamSpec};
use dynamic_upstream_core::health::check_conf::CheckConf;
use dynamic_upstream_core::plus::view::UpstreamStatus;
use dynamic_upstream_core::plus::PlusError;
use dynamic_upstream_core::state::specs_of;
use dynamic_upstream_core::{PeerView, ServerSpec};

use crate::dyups::registry::{revision_mismatch, Dyups, ReadSection, RecordView, ZONE_NAME};
use crate::dyups::worker::is_front;
use crate::nginx::peer_list::Pick;
use crate::nginx::upstreams::{Running, Upstream};
use crate::ops::change_log::Requester;
use crate::ops::cycles::runtime_revision;
use crate::ops::dyups::{config_upstream, update_upstream_spec};
use crate::ops::state_files::managed_by_dyups;
use crate::zone::health::{show_health, HealthListing, HealthZone};
use crate::zone::upstream::ZoneUpstream;

/// Conditional run-time upstream changes lost to another change are
/// planned again at most this often.
const TRIES: usize = 8;

/// An upstream the API serves: one of the configuration with a zone, or
/// one the registry holds (its servers are the registry's).
pub enum Target<'r> {
    Zone(ZoneUpstream<'r>),
    Runtime { name: String, runtime: bool },
}

/// An upstream with its servers and revision, copied out.
pub struct Listed {
    pub name: String,
    zone: String,
    runtime: bool,
    /// Its health checks, if any.
    pub check: Option<CheckConf>,
    zombies: u64,
    pub revision: u64,
    pub peers: Vec<PeerView>,
}

impl Listed {
    pub fn status(&self) -> UpstreamStatus<'_> {
        UpstreamStatus {
            name: &self.name,
            zone: &self.zone,
            runtime: self.runtime,
            zombies: self.zombies,
            peers: &self.peers,
        }
    }
}

impl Target<'_> {
    /// Its servers and revision. The revision is read first, so that it is
    /// never newer than the servers (a conditional change made with it
    /// fails rather than overwrite a change its sender did not see).
    pub fn listed(&self) -> Listed {
        self.listed_with(true, None)
    }

    /// As [`Target::listed`]; without `peers`, no servers (nor their
    /// health, checks and revision) are gathered: a listing of names and
    /// kinds (`?fields=` without `peers`) stays cheap with thousands. The
    /// health comes from `health`, the copy of an answer about many
    /// upstreams, if given.
    pub fn listed_with(&self, peers: bool, health: Option<&HealthListing>) -> Listed {
        self.listed_picked(peers, health, Pick::All)
    }

    /// The one server the single-server answers are about (`pick`: by ID
    /// or name), with what [`Target::listed`] gives: not a copy of every
    /// server to find it (hunt 35).
    pub fn listed_one(&self, pick: Pick<'_>) -> Listed {
        self.listed_picked(true, None, pick)
    }

    fn listed_picked(&self, peers: bool, health: Option<&HealthListing>, pick: Pick<'_>) -> Listed {
        match self {
            Target::Zone(zone) => {
                if zone.zombies() > 0 {
                    // Removed peers whose last request ended are no zombies:
                    // freed before they are counted (hunt 26; the lists'
                    // write locks only while there are some).
                    zone.reap();
                }
                let (revision, check, servers) = if peers {
                    zone.give_ids();
                    let revision = zone.counters().revision();
                    (revision, zone.check().cloned(), zone.peers_with_health_picked(health, pick))
                } else {
                    (0, None, Vec::new())
                };
                Listed {
                    name: zone.name(),
                    zone: zone.zone_name(),
                    runtime: false,
                    check,
                    zombies: zone.zombies(),
                    revision,
                    peers: servers,
                }
            }
            Target::Runtime { name, runtime } => {
                let record = Dyups::get().filter(|_| peers).and_then(|dyups| {
                    let section = ReadSection::new(&dyups);
                    dyups
                        .record(&section, name)
                        .filter(|r| !r.deleted && r.has_list())
                        .map(|r| (runtime_revision(r.version), r.check(), r.peers()))
                });
                let (revision, check, mut peers) = record.unwrap_or_default();
                // A registry list is copied whole (it is never edited: no
                // lock), then picked.
                peers.retain(|p| pick.takes_view(p));
                show_health(health, HealthZone::running(), name, true, check.is_some(), &mut peers);
                Listed {
                    name: name.clone(),
                    zone: ZONE_NAME.into(),
                    runtime: *runtime,
                    check,
                    zombies: 0,
                    revision,
                    peers,
                }
            }
        }
    }
}

/// The upstream called `name`, as the API sees it.
pub fn find<'r>(running: &Running<'r>, name: &str) -> Result<Target<'r>, PlusError> {
    let not_found = || PlusError::upstream_not_found(name);
    let dyups = Dyups::get();
    let section = dyups.as_ref().map(ReadSection::new);
    let record = dyups.as_ref().zip(section.as_ref()).and_then(|(dyups, section)| dyups.record(section, name));
    match (record, config_upstream(running, name)) {
        (Some(r), _) if r.deleted || !r.has_list() => Err(not_found()),
        (Some(r), config) => {
            let runtime = config.is_none();
            Ok(Target::Runtime { name: config.map_or(r.name, |(config_name, _)| config_name), runtime })
        }
        (None, Some((_, upstream))) if is_front(upstream) => Err(not_found()),
        (None, Some((_, upstream))) => Ok(Target::Zone(ZoneUpstream::of_running(upstream, managed_by_dyups)?)),
        (None, None) => Err(not_found()),
    }
}

/// Every upstream the API serves: the configuration's with a zone (or as
/// the REST API replaced them), in order, then those created at run time.
pub fn all_upstreams() -> Vec<Listed> {
    all_upstreams_with(true)
}

/// As [`all_upstreams`]; without `peers`, see [`Target::listed_with`].
pub fn all_upstreams_with(peers: bool) -> Vec<Listed> {
    Upstream::with_running(|running| all_upstreams_of(running, peers))
}

fn all_upstreams_of(running: &Running<'_>, peers: bool) -> Vec<Listed> {
    let dyups = Dyups::get();
    let section = dyups.as_ref().map(ReadSection::new);
    let records = dyups.as_ref().zip(section.as_ref()).map(|(d, s)| d.records(s).1).unwrap_or_default();
    let by_name: HashMap<String, &RecordView> = records.iter().map(|r| (r.name.to_ascii_lowercase(), r)).collect();
    let mut targets = Vec::new();
    let mut in_config = HashSet::new();
    for &upstream in running.upstreams() {
        let name = upstream.name();
        let key = name.to_ascii_lowercase();
        match by_name.get(&key) {
            Some(r) if r.deleted || !r.has_list() => {}
            Some(_) => targets.push(Target::Runtime { name, runtime: false }),
            None if is_front(upstream) => {}
            None => {
                if let Ok(zone) = ZoneUpstream::of_running(upstream, managed_by_dyups) {
                    targets.push(Target::Zone(zone));
                }
            }
        }
        in_config.insert(key);
    }
    for r in &records {
        if !r.deleted && r.has_list() && !in_config.contains(&r.name.to_ascii_lowercase()) {
            targets.push(Target::Runtime { name: r.name.clone(), runtime: true });
        }
    }
    // One copy of the health zone for the whole answer.
    let health = HealthListing::new(HealthZone::running());
    targets.iter().map(|t| t.listed_with(peers, Some(&health))).collect()
}

/// Changes a run-time upstream's server list with `edit` (which answers
/// whether it changed anything), keeping its balancer; with `if_match`,
/// only from that revision (412 otherwise), else planned again when
/// another change came first.
pub fn change_runtime(
    name: &str,
    origin: &Requester,
    trylock: bool,
    if_match: Option<u64>,
    mut edit: impl FnMut(&mut Vec<ServerSpec>) -> Result<bool, PlusError>,
) -> Result<(), PlusError> {
    let dyups = Dyups::get().ok_or_else(|| PlusError::upstream_not_found(name))?;
    for _ in 0..TRIES {
        let (version, balancer, check, peers) = {
            let section = ReadSection::new(&dyups);
            let record = dyups.record(&section, name).filter(|r| !r.deleted && r.has_list());
            let record = record.ok_or_else(|| PlusError::upstream_not_found(name))?;
            let (check, peers) = (record.check(), record.peers());
            (record.version, record.balancer, check, peers)
        };
        if if_match.is_some_and(|wanted| wanted != runtime_revision(version)) {
            return Err(revision_mismatch(name).into());
        }
        let mut servers = specs_of(&peers).map_err(|e| PlusError::new(500, "Internal", e))?;
        if !edit(&mut servers)? {
            return Ok(());
        }
        let spec: UpstreamSpec = finish(balancer, servers, check)?;
        match update_upstream_spec(name, &spec, trylock, version, origin) {
            Err(e) if e.status == 412 && if_match.is_none() => continue,
            result => return result.map_err(PlusError::from),
        }
    }
    Err(PlusError::new(409, "Busy", format!("upstream \"{name}\" kept changing; try again")))
}

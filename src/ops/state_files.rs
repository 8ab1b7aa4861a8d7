//! Keeping every accepted change across reload, restart and crash.
//!
//! * While the configuration is read ([`validate`]), every state file is
//!   parsed and checked: a corrupt one fails the configuration with an
//!   `[emerg]` naming file and line, so a reload is refused cleanly and the
//!   running nginx carries on.
//! * At start ([`load_at_start`], the master's init_module, before workers
//!   fork) the master starts a new cycle epoch in the module's zone, then
//!   reads each `dynamic_state_file` under its file lock and makes its
//!   servers the upstream's, and, when the module's zone is fresh (a
//!   restart), loads `dyups_upstream_conf` into the registry. nginx treats
//!   a failing init_module as fatal even on reload (the master exits), so
//!   nothing here fails: a file that cannot be applied (it changed since
//!   the check, or the zone is too small) is logged at `[error]` and the
//!   configuration's servers stay.
//! * A change ([`ChangeGuard`]) takes the file's lock first; a worker whose
//!   cycle a reload has replaced refuses zone-upstream changes with 503
//!   (they would land in a zone that is going away). Because the master
//!   bumps the epoch before it reads the file under the same lock, every
//!   change answered 200 is in the file the new cycle reads.
//! * A binary upgrade (USR2) runs a second nginx, with its own shared
//!   memory, on the same files. So that no change lands in the instance
//!   that is going away, each master writes its claim (its pid and start
//!   time) into every state file's lock file at each cycle's start, under
//!   the lock; a worker that finds another master's claim there refuses
//!   changes with 503: a newer nginx has read the file and would never see
//!   them. A reload keeps the master, and so the claim (the workers it
//!   replaces refuse zone-upstream changes for their own reason; their
//!   dyups changes reach the new workers through the kept registry). After
//!   a rollback (the new master quits) the old one's workers refuse until
//!   it is reloaded, which reads the zone upstreams' files again and claims
//!   them; the dyups file it cannot read into a registry it keeps: changes
//!   of run-time upstreams are refused until a restart. `nginx -t` claims
//!   nothing.
//! * After the change the whole state is written (atomically, see
//!   [`crate::nginx::atomic_file`]). If that fails the change stays in effect, the API
//!   answers 500 naming the file and the error, and the next change writes
//!   the file again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use dynamic_upstream_core::state::{
    file_name_problem, parse_dyups_conf, parse_server_state, render_server_state, DyupsEntry,
};
use dynamic_upstream_core::ApiError;
use ngx::ffi::{NGX_LOG_ERR, NGX_LOG_NOTICE, NGX_LOG_WARN};

use crate::dyups::registry::{Continues, Dyups, ReadSection};
use crate::dyups::worker::is_front;
use crate::nginx::atomic_file::{self as persist, FileLock};
use crate::nginx::conf::MainConf;
use crate::nginx::log::log;
use crate::nginx::module_hooks::Cycle;
use crate::nginx::module_hooks::InitModule;
use crate::nginx::process::{self, signalling, testing_configuration};
use crate::nginx::upstreams::Upstream;
use crate::ops::cycles::cycle_version_floor;
use crate::ops::dyups_conf;
use crate::zone::upstream::{has_bookkeeping, mark_state_not_restored, set_state_path, state_file_of, ZoneUpstream};

/// `dyups_upstream_conf`, resolved (set by the master for each cycle).
static DYUPS_FILE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The claims this cycle's master wrote at start: its token, and the
/// state files it wrote it for (see the module comment).
static CLAIMS: Mutex<Option<Claims>> = Mutex::new(None);

/// This master's token (workers inherit it): its pid and the time it was
/// first needed (nanoseconds since the epoch), which no other master
/// writes. Numbers, not a string: a process-global heap block is never
/// freed (valgrind counted it lost in every process).
static TOKEN: std::sync::OnceLock<(u32, u128)> = std::sync::OnceLock::new();

struct Claims {
    token: String,
    /// The files this cycle claimed.
    paths: Vec<PathBuf>,
    /// The files another nginx claimed that this cycle could not take
    /// back (the dyups file of a registry a reload kept).
    foreign: Vec<PathBuf>,
}

impl Claims {
    fn new() -> Claims {
        let (pid, nanos) = TOKEN.get_or_init(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            (std::process::id(), now.as_nanos())
        });
        Claims { token: format!("{pid} {nanos}"), paths: Vec::new(), foreign: Vec::new() }
    }

    /// Claims the state file whose lock `lock` is.
    fn claim(&mut self, lock: &FileLock, directive: &str, path: &Path) {
        match lock.claim(&self.token) {
            Ok(()) => self.paths.push(path.to_path_buf()),
            Err(e) => log_error(&format!(
                "{directive} \"{}\": cannot write its lock file: {e}; during a binary upgrade the old nginx's \
                 workers may change the file unseen by the new one",
                path.display()
            )),
        }
    }

    /// Claims the state file at `path` (taking its lock for that).
    fn claim_path(&mut self, directive: &str, path: &Path) {
        if let Some(lock) = lock_at_start(directive, path) {
            self.claim(&lock, directive, path);
        }
    }

    /// A reload moved `dyups_upstream_conf` away from `old`: its lock says
    /// where to, so that the old workers refuse changes they would write
    /// there (see [`check_claim`]).
    fn leave_moved_note(&mut self, old: &Path, new: &Path) {
        if let Some(lock) = lock_at_start("dyups_upstream_conf", old) {
            let _ = lock.claim(&format!("{MOVED_TO}{}", new.display()));
        }
    }

    /// Claims the dyups file of a registry this cycle keeps (a reload): the
    /// registry holds what the file does unless another nginx claimed the
    /// file since (a binary upgrade, rolled back): its workers may have
    /// changed it, and only a restart loads it into a registry.
    fn claim_kept(&mut self, path: &Path) {
        const DIRECTIVE: &str = "dyups_upstream_conf";
        let Some(lock) = lock_at_start(DIRECTIVE, path) else { return };
        match lock.claimed() {
            // An empty claim names no nginx (the lock file was deleted, or
            // a claim cut short): this one claims it again.
            Ok(theirs) if !theirs.is_empty() && theirs != self.token => {
                self.foreign.push(path.to_path_buf());
                log_error(&format!(
                    "{DIRECTIVE} \"{}\": another nginx claimed it since the run-time upstreams were loaded (a \
                     binary upgrade rolled back?); their changes are refused until a restart loads the file",
                    path.display()
                ));
            }
            _ => self.claim(&lock, DIRECTIVE, path),
        }
    }
}

/// Set by the master when a reload kept the registry but names a
/// `dyups_upstream_conf` that lags it; the first worker writes it.
static DYUPS_FILE_BEHIND: AtomicBool = AtomicBool::new(false);

/// init_process: the first worker writes the registry into a
/// `dyups_upstream_conf` that lags it (a reload moved the file, or named it
/// again after a cycle without one), so that a restart loads what runs.
/// A write that fails is logged; the next change writes the file again.
pub fn write_dyups_if_behind() {
    // Workers only (the cache manager and loader run init_process too, with
    // nginx's worker index 0).
    if !DYUPS_FILE_BEHIND.load(Relaxed) || !process::in_running_process() || process::worker_index() != 0 {
        return;
    }
    // The file's lock (the guard) held while it is written.
    let written = ChangeGuard::for_dyups(false).and_then(|_guard| save_dyups());
    if written.is_ok() {
        let path = dyups_file().map(|p| p.display().to_string()).unwrap_or_default();
        log(
            NGX_LOG_NOTICE,
            &format!("dynamic upstream: dyups_upstream_conf \"{path}\": the run-time upstreams are written"),
        );
    }
}

/// The claim a moved dyups file's lock holds: this, then the new path.
const MOVED_TO: &str = "moved to ";

/// How long a process waits for a state file's lock: writers hold it for a
/// change and its write (milliseconds; an fsync on a busy disk may take
/// longer). Past it, a holder is taken to be stuck.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// A state file's lock, taken at start; an error is logged.
fn lock_at_start(directive: &str, path: &Path) -> Option<FileLock> {
    FileLock::exclusive(path, LOCK_WAIT).inspect_err(|e| log_error(&lock_failure(directive, path, e))).ok()
}

/// Why `directive`'s file `path` could not be locked.
fn lock_failure(directive: &str, path: &Path, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::WouldBlock {
        return held_too_long(directive, path);
    }
    format!("{directive} \"{}\": cannot lock: {e}", path.display())
}

/// `directive`'s file `path` whose lock another process kept past
/// [`LOCK_WAIT`], for nginx's log at start and reload.
fn held_too_long(directive: &str, path: &Path) -> String {
    let shown = path.display();
    format!(
        "{directive} \"{shown}\": its lock \"{shown}.lock\" stayed held for {} s by {} (a change stuck there?): end \
         that process (kill -9), then reload nginx",
        LOCK_WAIT.as_secs(),
        holders_text(path)
    )
}

/// "process N" (or processes) holding `path`'s lock, for messages.
fn holders_text(path: &Path) -> String {
    match FileLock::holders(path).as_slice() {
        [] => "another process".to_string(),
        [pid] => format!("process {pid}"),
        pids => format!("processes {}", pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// A configured path, relative ones against nginx's prefix. nginx keeps a
/// relative `-p` prefix as given: such a path stays relative to the
/// master's directory, where every process reaches it from
/// ([`persist::record_master`] opens that directory; the workers
/// `chdir` to `working_directory`).
fn resolve(cycle: Cycle<'_>, text: String) -> Option<PathBuf> {
    if text.is_empty() {
        return None;
    }
    if text.starts_with('/') {
        return Some(PathBuf::from(text));
    }
    // The prefix ends in '/'.
    let prefix = cycle.prefix();
    Some(PathBuf::from(format!("{prefix}{text}")))
}

/// Checks every state file while the configuration is read
/// (postconfiguration): the message of an error is for nginx's `[emerg]`.
/// `cycle` is the cycle being configured, its http block parsed.
pub fn validate(cycle: Cycle<'_>, main: &MainConf) -> Result<(), String> {
    if signalling() {
        // nginx -s ...: the master it signals checks its own reload.
        return Ok(());
    }
    persist::record_master();
    // Each directory walked once for all its files.
    persist::with_directories_kept(|| validate_files(cycle, main))
}

fn validate_files(cycle: Cycle<'_>, main: &MainConf) -> Result<(), String> {
    let dyups_file = resolve(cycle, main.dyups_file());
    let dyups_identity = dyups_file.as_deref().map(file_identity);
    // Each state file with its identity (one `stat` of its directory).
    let files: Vec<(Upstream<'_>, PathBuf, FileId)> = cycle
        .upstreams()
        .into_iter()
        .filter_map(|upstream| resolve(cycle, state_file_of(upstream)).map(|path| (upstream, path)))
        .map(|(upstream, path)| {
            let identity = file_identity(&path);
            (upstream, path, identity)
        })
        .collect();
    let named = files.iter().map(|(_, path, _)| ("dynamic_state_file", path));
    for (directive, path) in named.chain(dyups_file.iter().map(|path| ("dyups_upstream_conf", path))) {
        if let Some(problem) = file_name_problem(&path.to_string_lossy()) {
            return Err(format!("{directive} \"{}\": {problem}", path.display()));
        }
    }
    // The lock files (`PATH.lock`), whose owners' names a state file may
    // not take (the claim written at start overwrote it, review 32): in
    // the state file's directory, so its identity with the lock's name.
    let mut locks: HashMap<FileId, String> = HashMap::new();
    for (upstream, path, identity) in &files {
        locks.insert(
            identity.with_name(&persist::lock_path(path)),
            format!("upstream \"{}\"'s state file", upstream.name()),
        );
    }
    if let (Some(path), Some(identity)) = (&dyups_file, &dyups_identity) {
        locks.insert(identity.with_name(&persist::lock_path(path)), "the dyups_upstream_conf file".to_string());
    }
    // The temporary files of a write (`.NAME.PID.tmp`), removed at start
    // once their writer is gone: no state file may be named as one of a
    // state file of its directory (its upstream's changes were lost at
    // the next start, review 33).
    let named: HashSet<&FileId> = files.iter().map(|(.., identity)| identity).chain(dyups_identity.iter()).collect();
    let owned = files
        .iter()
        .map(|(upstream, path, identity)| {
            (format!("dynamic_state_file \"{}\" of upstream \"{}\"", path.display(), upstream.name()), identity)
        })
        .chain(
            dyups_file
                .iter()
                .zip(&dyups_identity)
                .map(|(path, identity)| (format!("dyups_upstream_conf \"{}\"", path.display()), identity)),
        );
    for (what, identity) in owned {
        if let Some(base) = temporary_of(identity).filter(|base| named.contains(base)) {
            return Err(format!(
                "{what} is named as a temporary file of state file \"{}\" (\".NAME.PID.tmp\", removed at start): \
                 each needs a name of its own",
                base.name()
            ));
        }
    }
    // Each file is one upstream's (or dyups'): two writers of one file
    // would overwrite each other's servers, and each restore the other's.
    // Two spellings of one file (`a/../x`, a linked directory, a bind
    // mount) are one.
    let mut owners: HashMap<FileId, (String, PathBuf)> = HashMap::new();
    for (upstream, path, identity) in files {
        let shown = path.display();
        let name = upstream.name();
        if dyups_identity.as_ref() == Some(&identity) {
            return Err(format!(
                "dynamic_state_file \"{shown}\" of upstream \"{name}\" is also the dyups_upstream_conf file{}: \
                 each needs a file of its own",
                also_spelled(&path, dyups_file.as_deref())
            ));
        }
        if let Some((other, other_path)) = owners.get(&identity) {
            return Err(format!(
                "dynamic_state_file \"{shown}\" is the state file of both upstream \"{other}\"{} and upstream \
                 \"{name}\": each upstream needs a file of its own",
                also_spelled(&path, Some(other_path))
            ));
        }
        if let Some(owner) = locks.get(&identity) {
            return Err(format!(
                "dynamic_state_file \"{shown}\" of upstream \"{name}\" is the lock file of {owner} (its \
                 name and \".lock\"): each needs a file of its own"
            ));
        }
        owners.insert(identity, (name.clone(), path.clone()));
        if !upstream.has_zone() {
            return Err(format!("dynamic_state_file \"{shown}\": upstream \"{name}\" has no zone"));
        }
        refuse_if_held("dynamic_state_file", &path)?;
        // Only the syntax: servers the configuration no longer suits (a
        // backup and now `hash`, backups only and no resolved primary) are
        // a file not restored, logged at start (hunt 33: nginx no longer
        // started with the file it had written).
        let text = persist::read(&path).map_err(|e| format!("dynamic_state_file \"{shown}\": cannot read: {e}"))?;
        if let Some(Err(e)) = text.as_deref().map(|text| parse_server_state(text, upstream.resolves_primary())) {
            return Err(format!("dynamic_state_file \"{shown}\": {e}"));
        }
    }
    if let Some(path) = dyups_file {
        if let Some(owner) = dyups_identity.as_ref().and_then(|identity| locks.get(identity)) {
            return Err(format!(
                "dyups_upstream_conf \"{}\" is the lock file of {owner} (its name and \".lock\"): each needs a file \
                 of its own",
                path.display()
            ));
        }
        refuse_if_held("dyups_upstream_conf", &path)?;
        let shown = path.display();
        let text = persist::read(&path).map_err(|e| format!("dyups_upstream_conf \"{shown}\": cannot read: {e}"))?;
        if let Some(text) = text {
            parse_dyups_conf(&text).map_err(|e| format!("dyups_upstream_conf \"{shown}\": {e}"))?;
        }
    }
    Ok(())
}

/// What tells a file from others: its directory's device and inode
/// (whatever path reaches it: `..`, a linked directory, a bind mount) and
/// its name; or the path as it is where the directory cannot be read
/// (then nothing can be written there either).
#[derive(Clone, PartialEq, Eq, Hash)]
enum FileId {
    InDirectory { dev: u64, ino: u64, name: std::ffi::OsString },
    Path(PathBuf),
}

impl FileId {
    /// The identity of the file named as `path`'s last component in this
    /// one's directory.
    fn with_name(&self, path: &Path) -> FileId {
        match (self, path.file_name()) {
            (FileId::InDirectory { dev, ino, .. }, Some(name)) => {
                FileId::InDirectory { dev: *dev, ino: *ino, name: name.to_os_string() }
            }
            _ => FileId::Path(path.to_path_buf()),
        }
    }

    fn name(&self) -> String {
        match self {
            FileId::InDirectory { name, .. } => name.to_string_lossy().into_owned(),
            FileId::Path(path) => path.display().to_string(),
        }
    }
}

/// The file (of the same directory) whose temporary file `id`'s name is.
fn temporary_of(id: &FileId) -> Option<FileId> {
    let FileId::InDirectory { dev, ino, name } = id else { return None };
    let (base, _) = persist::parse_temporary_name(name.to_str()?)?;
    Some(FileId::InDirectory { dev: *dev, ino: *ino, name: base.into() })
}

fn file_identity(path: &Path) -> FileId {
    use std::os::unix::fs::MetadataExt;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return FileId::Path(path.to_path_buf());
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    match std::fs::metadata(dir) {
        Ok(meta) => FileId::InDirectory { dev: meta.dev(), ino: meta.ino(), name: name.to_os_string() },
        Err(_) => FileId::Path(path.to_path_buf()),
    }
}

/// ` (named "OTHER" there)` when `other` spells `path`'s file otherwise.
fn also_spelled(path: &Path, other: Option<&Path>) -> String {
    match other {
        Some(other) if other != path => format!(" (named \"{}\" there)", other.display()),
        _ => String::new(),
    }
}

/// Refuses the configuration where the lock of `directive`'s file `path`
/// is not a regular file (a link planted there), or while a process holds
/// it past [`LOCK_WAIT`] (a change stuck there): init_module could not
/// restore the file (a reload would serve the configuration's servers
/// instead), and `nginx -t` says why.
fn refuse_if_held(directive: &str, path: &Path) -> Result<(), String> {
    if FileLock::held_past(path, LOCK_WAIT).map_err(|e| lock_failure(directive, path, &e))? {
        return Err(held_too_long(directive, path));
    }
    Ok(())
}

/// Restores the saved state at start (see the module comment). Never
/// fails: what cannot be applied is logged.
/// In init_module, after the zones exist.
pub fn load_at_start(init: &InitModule, main: &MainConf) {
    if testing_configuration() {
        return; // nginx -t: nothing is restored, nothing claimed
    }
    persist::with_directories_kept(|| load_files(init, main));
}

fn load_files(init: &InitModule, main: &MainConf) {
    // A process that serves this cycle too (`master_process off`) renders
    // its registry's blocks anew.
    dyups_conf::forget();
    let cycle = init.cycle();
    let Some(dyups) = Dyups::of_new_cycle(init) else {
        return;
    };
    let mut claims = Claims::new();
    let dyups_file = resolve(cycle, main.dyups_file());
    let state_paths: Vec<(Upstream<'_>, Option<PathBuf>)> =
        cycle.upstreams().into_iter().map(|upstream| (upstream, resolve(cycle, state_file_of(upstream)))).collect();
    // One read of each directory for all the files (not one per file).
    persist::remove_stale_temporaries(
        state_paths.iter().filter_map(|(_, p)| p.as_deref()).chain(dyups_file.as_deref()),
    );
    for (upstream, path) in state_paths {
        set_state_path(init, upstream, path.clone());
        let Some(path) = path else { continue };
        // Claimed whatever follows: an old nginx's workers must not change
        // a file this one will write.
        claims.claim_path("dynamic_state_file", &path);
        if !has_bookkeeping(upstream) {
            // No room for bookkeeping (logged): nothing can be restored.
            if persist::read(&path).is_ok_and(|text| text.is_some()) {
                mark_state_not_restored(init, upstream);
                log_error(&format!(
                    "dynamic_state_file \"{}\" for upstream \"{}\": not restored: its zone has no room for the \
                     module's bookkeeping; the configuration's servers are used: give the zone more room, then \
                     reload nginx",
                    path.display(),
                    upstream.name()
                ));
            }
            continue;
        }
        let restored = ZoneUpstream::of_new_cycle(init, upstream, managed_by_dyups)
            .map_err(|e| e.text)
            .and_then(|zone| restore_zone_upstream(init, &zone, &path));
        if let Err(text) = restored {
            mark_state_not_restored(init, upstream);
            log_error(&format!(
                "{text}: the configuration's servers are used, and changes to the upstream are refused until the \
                 file is restored (the next change would overwrite it): fix the cause (or delete the file), then \
                 reload nginx"
            ));
        }
    }
    DYUPS_FILE_BEHIND.store(false, Relaxed);
    // The master's previous cycle's file (the static outlives reloads).
    let previous = DYUPS_FILE.lock().ok().and_then(|mut slot| core::mem::replace(&mut *slot, dyups_file.clone()));
    // Taken whether a file is named or not: a registry is new only in the
    // cycle that made its zone. A kept one that no file was named for is
    // live (workers change it, and hold its locks): the master must not
    // load a file named by a later reload into it (it waited on the
    // workers' locks without end, and the file overwrote live upstreams
    // while those it lacked were never written: review 25); the first
    // worker writes the registry into the file instead (below).
    let new_registry = dyups.take_first_load(init, cycle_version_floor());
    if let Some(path) = dyups_file {
        if new_registry {
            claims.claim_path("dyups_upstream_conf", &path);
            if let Err(text) = restore_dyups(&dyups, &path, cycle) {
                dyups.mark_loaded_in_part(init);
                log_error(&format!(
                    "{text}; the upstreams after it were not restored, and dyups changes are refused until they are \
                     (the next change would write the file without them): fix the cause, then restart nginx (or \
                     reload with another dyups_shm_zone_size)"
                ));
            }
        } else if previous.as_ref() != Some(&path) {
            // Kept by a reload that moved the file, or named it again after
            // a cycle without one: the file lags the registry, which the
            // first worker writes into it (see `write_dyups_if_behind`).
            if let Some(old) = &previous {
                claims.leave_moved_note(old, &path);
            }
            claims.claim_path("dyups_upstream_conf", &path);
            DYUPS_FILE_BEHIND.store(true, Relaxed);
            log(
                NGX_LOG_NOTICE,
                &format!(
                    "dynamic upstream: dyups_upstream_conf \"{}\" (before this reload: {}): the first worker writes \
                     the run-time upstreams into it",
                    path.display(),
                    previous.as_ref().map_or_else(|| "none".to_string(), |old| format!("\"{}\"", old.display()))
                ),
            );
        } else {
            claims.claim_kept(&path);
        }
    }
    if let Ok(mut slot) = CLAIMS.lock() {
        *slot = Some(claims);
    }
}

/// A state file's text, read under its lock (held until the returned lock
/// is dropped), for a restore at start (claimed before: see
/// [`load_at_start`]); none if the file does not exist. `directive` names
/// the file in messages.
fn read_locked(directive: &str, path: &Path) -> Result<(FileLock, Option<String>), String> {
    let shown = path.display();
    let lock = FileLock::exclusive(path, LOCK_WAIT).map_err(|e| lock_failure(directive, path, &e))?;
    let text = persist::read(path).map_err(|e| format!("{directive} \"{shown}\": cannot read: {e}"))?;
    Ok((lock, text))
}

/// State file `path` of `directive`, read and parsed under its lock (held
/// while the caller restores it); None if there is none. Its server IDs'
/// problems are logged.
fn read_state<T, E: core::fmt::Display>(
    directive: &str,
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<(FileLock, T)>, String> {
    let shown = path.display();
    let (lock, text) = read_locked(directive, path)?;
    let Some(text) = text else { return Ok(None) };
    let parsed = parse(&text).map_err(|e| format!("{directive} \"{shown}\": {e}"))?;
    log_id_problems(&format!("{directive} \"{shown}\""), &text);
    Ok(Some((lock, parsed)))
}

fn restore_zone_upstream(init: &InitModule, zone: &ZoneUpstream, path: &Path) -> Result<(), String> {
    let resolved_primaries = zone.resolves_primary();
    let parse = |text: &str| parse_server_state(text, resolved_primaries);
    let Some((_lock, Some(servers))) = read_state("dynamic_state_file", path, parse)? else {
        return Ok(());
    };
    zone.restore_at_start(init, &servers)
        .map_err(|e| format!("dynamic_state_file \"{}\" for upstream \"{}\": {e}", path.display(), zone.name()))
}

/// In the master at start, with the new cycle.
fn restore_dyups(dyups: &Dyups, path: &Path, cycle: Cycle<'_>) -> Result<(), String> {
    let shown = path.display();
    let Some((_lock, entries)) = read_state("dyups_upstream_conf", path, parse_dyups_conf)? else {
        return Ok(());
    };
    for entry in entries {
        let result = match &entry {
            DyupsEntry::Upstream(name, spec) => dyups.replace(name, spec, false, Continues::default()).map(drop),
            DyupsEntry::Deleted(name) => {
                let in_config = cycle.upstreams().into_iter().any(|u| u.name().eq_ignore_ascii_case(name));
                dyups.delete(name, in_config, false, None, Continues::default()).map(drop)
            }
        };
        result.map_err(|e| format!("dyups_upstream_conf \"{shown}\": {}", e.text))?;
    }
    Ok(())
}

/// Held across a change: the state file's lock (if there is a file).
pub struct ChangeGuard {
    _lock: Option<FileLock>,
}

impl ChangeGuard {
    /// Before changing a zone upstream.
    pub fn for_zone_upstream(zone: &ZoneUpstream) -> Result<ChangeGuard, ApiError> {
        let lock = match &zone.state_path {
            Some(path) => Some(lock(path, LOCK_WAIT)?),
            None => None,
        };
        if Dyups::get().is_some_and(|d| !d.is_current_cycle()) {
            return Err(ApiError::reloading());
        }
        if let (true, Some(path)) = (zone.state_not_restored, &zone.state_path) {
            return Err(ApiError::new(
                500,
                "state_file_not_restored",
                format!(
                    "dynamic_state_file \"{}\" was not restored at start (the error log says why): changes to upstream \
                     \"{}\" are refused so that the file keeps its servers; fix the cause (or delete the file to use \
                     the configuration's servers), then reload nginx",
                    path.display(),
                    zone.name()
                ),
            ));
        }
        if let (Some(lock), Some(path)) = (&lock, &zone.state_path) {
            check_claim(lock, path)?;
        }
        Ok(ChangeGuard { _lock: lock })
    }

    /// Before changing the dyups registry; with `trylock`
    /// (`dyups_trylock on`), a file another change holds locked answers 409
    /// at once, as the registry's lock does.
    pub fn for_dyups(trylock: bool) -> Result<ChangeGuard, ApiError> {
        let path = dyups_file();
        let lock = match &path {
            Some(path) => Some(lock(path, if trylock { Duration::ZERO } else { LOCK_WAIT })?),
            None => None,
        };
        // A reload that gave the registry or the health checks a new zone
        // (a new size): this worker's changes would not reach the new
        // workers.
        let registry = Dyups::get();
        if registry.as_ref().is_some_and(|d| d.is_superseded()) || crate::zone::health::superseded() {
            return Err(ApiError::reloading());
        }
        if let (Some(registry), Some(path)) = (&registry, &path) {
            if registry.loaded_in_part() {
                return Err(ApiError::new(
                    500,
                    "dyups_file_not_restored",
                    format!(
                        "dyups_upstream_conf \"{}\" was restored only in part at start (the error log says why): \
                         changes are refused so that the file keeps the upstreams not restored; fix the cause, then \
                         restart nginx (or reload with another dyups_shm_zone_size)",
                        path.display()
                    ),
                ));
            }
        }
        if let (Some(lock), Some(path)) = (&lock, &path) {
            check_claim(lock, path)?;
        }
        Ok(ChangeGuard { _lock: lock })
    }
}

/// exit_master: release the path (the module is unloaded next, and a
/// static's heap buffer would outlive it as a leak).
pub fn forget() {
    if let Ok(mut slot) = DYUPS_FILE.lock() {
        *slot = None;
    }
    if let Ok(mut slot) = CLAIMS.lock() {
        *slot = None;
    }
}

pub fn dyups_file() -> Option<PathBuf> {
    DYUPS_FILE.lock().ok().and_then(|slot| slot.clone())
}

/// An upstream this worker serves through the dyups registry (the REST
/// API replaced or deleted it) is not changed here.
pub fn managed_by_dyups(upstream: Upstream, name: &str) -> Option<ApiError> {
    is_front(upstream).then(|| {
        let file = dyups_file();
        ApiError::managed_by_dyups(name, file.as_deref().map(|f| f.to_string_lossy()).as_deref())
    })
}

/// Refuses a change to a state file that another nginx claimed since this
/// cycle did (an empty claim too: the lock file was replaced, or a claim
/// was cut short), or that this cycle found claimed by another (see
/// [`Claims::claim_kept`]). A file this cycle could not claim is not
/// checked.
fn check_claim(lock: &FileLock, path: &Path) -> Result<(), ApiError> {
    let (ours, foreign) = match CLAIMS.lock().ok().as_deref().and_then(Option::as_ref) {
        Some(c) => (c.paths.iter().any(|p| p == path).then(|| c.token.clone()), c.foreign.iter().any(|p| p == path)),
        None => (None, false),
    };
    let shown = path.display().to_string();
    if foreign {
        return Err(ApiError::state_file_newer(&shown));
    }
    // An unreadable claim is not checked.
    let Ok(theirs) = lock.claimed() else { return Ok(()) };
    if let Some(moved_to) = theirs.strip_prefix(MOVED_TO) {
        return Err(ApiError::new(
            503,
            "reloading",
            format!(
                "a reload moved the state file \"{shown}\" to \"{moved_to}\": this worker is being replaced; retry \
                 the request"
            ),
        ));
    }
    match ours {
        Some(ours) if theirs != ours => Err(ApiError::state_file_taken_over(&shown)),
        _ => Ok(()),
    }
}

/// The state files whose locks this worker waited for in vain: while
/// their holders keep them, changes answer at once instead of each waiting
/// [`LOCK_WAIT`] again (the worker's other requests wait with it).
static STUCK: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn lock(path: &Path, wait: Duration) -> Result<FileLock, ApiError> {
    let stuck = STUCK.lock().is_ok_and(|stuck| stuck.iter().any(|p| p == path));
    let result = FileLock::exclusive(path, if stuck { Duration::ZERO } else { wait });
    if let Ok(mut paths) = STUCK.lock() {
        match &result {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && !wait.is_zero() && !stuck => {
                paths.push(path.to_path_buf())
            }
            Ok(_) if stuck => paths.retain(|p| p != path),
            _ => {}
        }
    }
    result.map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock && wait.is_zero() {
            return ApiError::conflict(
                "locked",
                format!("the state file \"{}\" is locked by another change; try again", path.display()),
            );
        }
        if e.kind() == std::io::ErrorKind::WouldBlock {
            let text = format!(
                "the state file \"{}\" stayed locked for {} s by {} (a change stuck there?); nothing was changed; \
                 try again, and if it persists end that process (kill -9), then reload nginx",
                path.display(),
                LOCK_WAIT.as_secs(),
                holders_text(path)
            );
            log_error(&text);
            return ApiError::new(503, "state_file_locked", text);
        }
        let text = format!("could not lock state file \"{}\": {e}; nothing was changed", path.display());
        log_error(&text);
        // Not persist_failed, which says the change is in effect.
        ApiError::new(500, "state_file_lock_failed", text)
    })
}

/// After a change to a zone upstream (holding its ChangeGuard).
pub fn save_zone_upstream(zone: &ZoneUpstream) -> Result<(), ApiError> {
    let Some(path) = &zone.state_path else { return Ok(()) };
    let servers = zone.server_specs().map_err(|e| failure(path, &e))?;
    persist::write_atomically(path, render_server_state(&servers).as_bytes()).map_err(|e| failure(path, &e))
}

/// After a change to the dyups registry (holding the ChangeGuard): the
/// upstreams' blocks that changed are rendered again ([`dyups_conf`]).
pub fn save_dyups() -> Result<(), ApiError> {
    let Some(path) = dyups_file() else { return Ok(()) };
    let Some(dyups) = Dyups::get() else { return Ok(()) };
    let section = ReadSection::new(&dyups);
    let text = dyups_conf::render(&dyups, &section);
    drop(section);
    let text = text.map_err(|e| failure(&path, &e))?;
    persist::write_atomically(&path, text.as_bytes()).map_err(|e| failure(&path, &e))
}

/// A state file that could not be written: logged, and answered with 500.
fn failure(path: &Path, error: &dyn std::fmt::Display) -> ApiError {
    let text = format!(
        "could not write state file \"{}\": {error}; the change is in effect and the next change writes the file again",
        path.display()
    );
    log_error(&text);
    ApiError::new(500, "persist_failed", text)
}

/// Server IDs a state file gives that the servers do not get (see
/// [`dynamic_upstream_core::plus::ids`]).
fn log_id_problems(file: &str, text: &str) {
    for problem in dynamic_upstream_core::plus::ids::problems(text) {
        log(NGX_LOG_WARN, &format!("dynamic upstream: {file}, {problem}"));
    }
}

fn log_error(text: &str) {
    log(NGX_LOG_ERR, &format!("dynamic upstream: {text}"));
}

//! Durable, atomic state files.
//!
//! A write goes to a temporary file in the same directory, is `fsync`ed,
//! renamed over the old file and the directory is `fsync`ed: a crash at any
//! point leaves the old file or the new one, never a torn one. Writers (and
//! the master reading at start) serialise on an `flock` of `PATH.lock`,
//! which the kernel releases if a worker dies holding it. The lock file
//! also holds the claim of the nginx that read the state file last
//! ([`FileLock::claim`]).
//!
//! The files' directory is writable by nginx's worker user, and the master
//! (root) opens them: a state or lock file must be a regular file, opened
//! without following a symbolic link ([`Directory::open_regular`]), so that a link
//! planted there never makes root truncate, write or quote another file
//! (hunt 33). Nor may a link stand for a directory on the way there where
//! another user could have planted it ([`Directory::open`], review 32).
//! Hard links are not refused (a backup made with `cp -al` has them,
//! review 32): the worker user cannot link a file it does not own where
//! `fs.protected_hardlinks` is 1, as Debian sets it (procps), not the
//! kernel's default (review 33).

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An exclusive lock on a state file, held until dropped.
pub struct FileLock {
    file: File,
    /// Why the lock file could not be opened for writing (then it is open
    /// read-only: enough for flock, not for a claim).
    write_error: Option<i32>,
}

impl FileLock {
    /// Takes the lock, waiting for it at most `wait` (none: fails at once);
    /// fails with [`io::ErrorKind::WouldBlock`] if another process still
    /// holds it then. Never waits in the kernel: a holder that does not let
    /// go (a worker stuck in a change) must not stop nginx's master, whose
    /// signals are handled only once it returns to its loop.
    pub fn exclusive(path: &Path, wait: Duration) -> io::Result<FileLock> {
        // Read-only is enough for flock, so a lock file the master (root)
        // created stays usable by workers running as another user.
        let (dir, name) = Directory::of(path)?;
        let (lock, shown) = (lock_name(name), lock_path(path));
        let (file, write_error) = match dir.open_regular(&lock, libc::O_RDWR | libc::O_CREAT, &shown) {
            Ok(file) => (file, None),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EROFS) => {
                (dir.open_regular(&lock, libc::O_RDONLY, &shown)?, e.raw_os_error())
            }
            Err(e) => return Err(e),
        };
        lock_within(&file, wait)?;
        Ok(FileLock { file, write_error })
    }

    /// Whether another process holds the lock of the state file at `path`
    /// for longer than `wait`. Creates nothing (no lock file: nobody holds
    /// it) and leaves the lock as it found it. Fails where the lock file
    /// cannot be used: not a regular file ([`Directory::open_regular`]),
    /// unreadable.
    pub fn held_past(path: &Path, wait: Duration) -> io::Result<bool> {
        let (dir, name) = match Directory::of(path) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match dir.open_regular(&lock_name(name), libc::O_RDONLY, &lock_path(path)) {
            Ok(file) => Ok(lock_within(&file, wait).is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The processes that hold the lock of the state file at `path` (from
    /// `/proc/locks`; none if it cannot be read), for messages.
    pub fn holders(path: &Path) -> Vec<i32> {
        let Ok((dir, name)) = Directory::of(path) else { return Vec::new() };
        let (Ok(lock), Ok(locks)) = (dir.entry(&lock_name(name)), fs::read_to_string("/proc/locks")) else {
            return Vec::new();
        };
        dynamic_upstream_core::process::flock_holders(
            &locks,
            libc::major(lock.st_dev),
            libc::minor(lock.st_dev),
            lock.st_ino,
        )
    }
}

impl FileLock {
    /// Writes `token` into the lock file: the mark of the nginx (master
    /// and cycle) that read the state file last. Fails where the lock file
    /// is not writable (opened read-only).
    pub fn claim(&self, token: &str) -> io::Result<()> {
        // The reason the file is read-only here (EROFS, EACCES), not the
        // EINVAL of truncating a read-only descriptor (hunt 24 F3).
        if let Some(code) = self.write_error {
            return Err(io::Error::from_raw_os_error(code));
        }
        self.file.set_len(0)?;
        self.file.write_all_at(token.as_bytes(), 0)
    }

    /// The token of the last [`FileLock::claim`] (empty if none).
    pub fn claimed(&self) -> io::Result<String> {
        let mut buf = [0u8; 128];
        let n = self.file.read_at(&mut buf, 0)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

/// Takes `file`'s flock, polling for at most `wait`; closing the file
/// releases it.
fn lock_within(file: &File, wait: Duration) -> io::Result<()> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: flock on a descriptor the caller owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            _ => return Err(err),
        }
    }
}

/// `PATH.lock`, the lock file of the state file `PATH`.
pub fn lock_path(path: &Path) -> PathBuf {
    PathBuf::from(lock_name(path.as_os_str()))
}

/// `NAME.lock`.
fn lock_name(name: &OsStr) -> OsString {
    let mut lock = name.to_owned();
    lock.push(".lock");
    lock
}

/// The file's contents, or None if it (or its directory) does not exist.
pub fn read(path: &Path) -> io::Result<Option<String>> {
    let opened = Directory::of(path).and_then(|(dir, name)| dir.open_regular(name, libc::O_RDONLY, path));
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes)?;
    String::from_utf8(bytes).map(Some).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// `.NAME.PID.tmp`: where process PID writes file NAME before renaming it.
fn temporary_name(name: &OsStr, pid: u32) -> OsString {
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{pid}.tmp"));
    tmp_name
}

/// Removes the temporary files of `paths` that processes now gone left
/// (killed while writing one, see [`write_atomically`]); a live process's
/// is being written. Each directory is read once, however many of the
/// files it holds (a start with thousands of state files in one
/// directory). What cannot be removed stays: it is only litter.
pub fn remove_stale_temporaries<'p>(paths: impl IntoIterator<Item = &'p Path>) {
    let mut names_by_dir: HashMap<&Path, HashSet<&str>> = HashMap::new();
    for path in paths {
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) {
            names_by_dir.entry(dir).or_default().insert(name);
        }
    }
    for (dir, names) in names_by_dir {
        let Ok(dir) = Directory::kept(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) else {
            continue;
        };
        // Listed through /proc (std reads no directory by descriptor):
        // without it, the litter stays.
        let Ok(entries) = fs::read_dir(dir.proc_path()) else { continue };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some((name, pid)) = file_name.to_str().and_then(parse_temporary_name) else { continue };
            if names.contains(name) && crate::nginx::process::gone(pid, 0) {
                let _ = dir.remove(&file_name);
            }
        }
    }
}

/// The file name and the writer's pid of a [`temporary_name`].
pub fn parse_temporary_name(file_name: &str) -> Option<(&str, i32)> {
    let (name, pid) = file_name.strip_prefix('.')?.strip_suffix(".tmp")?.rsplit_once('.')?;
    let pid: u32 = pid.parse().ok()?;
    Some((name, i32::try_from(pid).ok().filter(|&pid| pid > 0)?))
}

/// Replaces the file with `content` atomically and durably.
pub fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let (dir, name) = Directory::of(path)?;
    let tmp = temporary_name(name, std::process::id());
    let result = (|| {
        // A file (or link) of that name is a dead writer's (same pid):
        // removed, then created anew, never opened through a link.
        match dir.remove(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = dir.open_at(&tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW)?;
        file.write_all(content)?;
        file.sync_all()?;
        dir.rename(&tmp, name)?;
        dir.sync()
    })();
    if result.is_err() {
        let _ = dir.remove(&tmp);
    }
    result
}

/// The directory of a state file, opened by [`Directory::open`]; its
/// files are reached from its descriptor (`openat`, `renameat`, ...), so
/// what the walk checked is what is used, whatever is renamed or linked
/// in the meantime.
struct Directory {
    /// `O_PATH`: no permission beyond reaching it is needed to hold it.
    fd: OwnedFd,
}

/// Symbolic links followed at most in one path, as the kernel's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

/// A step of [`Directory::open`]'s walk.
enum Step {
    Root,
    Up,
    Down(OsString),
}

/// The directories opened during [`with_directories_kept`], by path. A
/// static, not a thread-local: a thread-local with a destructor keeps the
/// module loaded for the master's life (review 23).
static KEPT: Mutex<Option<HashMap<PathBuf, Arc<Directory>>>> = Mutex::new(None);

fn kept_directories() -> std::sync::MutexGuard<'static, Option<HashMap<PathBuf, Arc<Directory>>>> {
    KEPT.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Directories [`with_directories_kept`] keeps at most: each holds a
/// descriptor, and a master under systemd's 1,024 (thousands of state
/// directories) ran out of them and restored nothing (review 38).
const KEPT_MAX: usize = 64;

/// Runs `f` keeping the directories it opens (the first [`KEPT_MAX`]) open
/// until it returns, so that each is walked once however many of its
/// files `f` reads or locks (a start with thousands of state files walked
/// each directory several times per file: twice as slow, review 36).
pub fn with_directories_kept<R>(f: impl FnOnce() -> R) -> R {
    let outer = kept_directories().replace(HashMap::new());
    let result = f();
    *kept_directories() = outer;
    result
}

impl Directory {
    /// The directory of the file at `path`, and the file's name.
    fn of(path: &Path) -> io::Result<(Arc<Directory>, &OsStr)> {
        let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        Ok((Directory::kept(dir)?, name))
    }

    /// [`Directory::open`], or the one [`with_directories_kept`] keeps.
    fn kept(dir: &Path) -> io::Result<Arc<Directory>> {
        if let Some(found) = kept_directories().as_ref().and_then(|kept| kept.get(dir).cloned()) {
            return Ok(found);
        }
        let opened = Arc::new(Directory::open(dir)?);
        if let Some(kept) = kept_directories().as_mut().filter(|kept| kept.len() < KEPT_MAX) {
            kept.insert(dir.to_path_buf(), Arc::clone(&opened));
        }
        Ok(opened)
    }

    /// Opens `dir` one component at a time, where no other user than
    /// root or the master's can have planted what it goes through: nginx's
    /// worker user can change the directory it writes (and any below it),
    /// and the master, root, would otherwise read and write the state and
    /// lock files of another directory (review 32). So a symbolic link is
    /// followed only where it sits in a directory no other user can change
    /// ([`unchangeable_by_others`]), or is the master user's own in a
    /// sticky one (`/tmp`); `..` climbs only out of a directory no other
    /// user can move to another parent (it, or the directory it is in,
    /// unchangeable by others: the worker user moving its own directory
    /// elsewhere moved where `..` led, review 36). Either is refused,
    /// naming the path.
    fn open(dir: &Path) -> io::Result<Directory> {
        let mut pending = Vec::new();
        push_steps(&mut pending, dir);
        let mut current = if dir.is_absolute() { Directory::open_root(c"/")? } else { Directory::of_master()? };
        let mut shown = PathBuf::from(if dir.is_absolute() { "/" } else { "" });
        // For each directory entered from `current`: whether other users
        // could have moved it there.
        let mut movable: Vec<bool> = Vec::new();
        let mut links = 0;
        while let Some(step) = pending.pop() {
            let name = match step {
                Step::Root => {
                    current = Directory::open_root(c"/")?;
                    shown = PathBuf::from("/");
                    movable.clear();
                    continue;
                }
                Step::Up => {
                    if movable.pop().unwrap_or(false) {
                        return Err(refused(format!(
                            "\"{}\" is in a directory other users can change, and \"..\" climbs out of it: name the \
                             directory without \"..\"",
                            shown.display()
                        )));
                    }
                    shown.push("..");
                    OsString::from("..")
                }
                Step::Down(name) => name,
            };
            let here = current.status()?;
            let entry = current.entry(&name)?;
            if entry.st_mode & libc::S_IFMT == libc::S_IFLNK {
                let link = shown.join(&name);
                // A link root made in /tmp was refused at first (review 36).
                if !unchangeable_by_others(&here) && !master_entry_in_sticky(&here, &entry) {
                    return Err(refused(format!(
                        "\"{}\" is a symbolic link in a directory other users can change (\"{}\"): name the \
                         directory it points to instead",
                        link.display(),
                        shown.display()
                    )));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                push_steps(&mut pending, &current.read_link(&name)?);
                continue;
            }
            let next =
                Directory { fd: current.open_at(&name, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)?.into() };
            if name != ".." {
                // Another user can move it to another parent only where it
                // may change both (and it itself, whose `..` changes): the
                // directory opened, not the one the name showed before (the
                // worker user swapped them in between, review 39).
                let opened = next.status()?;
                let movable_here = !unchangeable_by_others(&here)
                    && !master_entry_in_sticky(&here, &opened)
                    && !unchangeable_by_others(&opened);
                movable.push(movable_here);
                shown.push(&name);
            }
            current = next;
        }
        Ok(current)
    }

    /// The master's directory, where relative paths start
    /// ([`MASTER_DIRECTORY`]); this process's own where none was opened.
    fn of_master() -> io::Result<Directory> {
        match master_directory() {
            Some(fd) => fd.try_clone().map(|fd| Directory { fd }),
            None => Directory::open_root(c"."),
        }
    }

    fn open_root(path: &CStr) -> io::Result<Directory> {
        // SAFETY: a NUL-terminated path; the descriptor returned is ours.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        owned(fd).map(|fd| Directory { fd })
    }

    /// `openat(name, flags)` (`O_CLOEXEC` added; new files `0644`).
    fn open_at(&self, name: &OsStr, flags: libc::c_int) -> io::Result<File> {
        let name = c_name(name)?;
        // SAFETY: our directory descriptor and a NUL-terminated name; the
        // descriptor returned is ours.
        let fd =
            unsafe { libc::openat(self.fd.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, 0o644 as libc::c_uint) };
        owned(fd).map(File::from)
    }

    /// Opens its file `name` with `flags` if it is a regular file: never
    /// through a symbolic link (`O_NOFOLLOW`), never blocking on a FIFO
    /// (`O_NONBLOCK`, which regular files ignore). The errors say what the
    /// file, `shown` in messages, is instead, for nginx's log.
    fn open_regular(&self, name: &OsStr, flags: libc::c_int, shown: &Path) -> io::Result<File> {
        let refused_as = |what: &str| {
            refused(format!("\"{}\" is {what}: a state file and its lock must be regular files", shown.display()))
        };
        let file = self.open_at(name, flags | libc::O_NOFOLLOW | libc::O_NONBLOCK).map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                refused_as("a symbolic link (name the file it points to instead)")
            } else {
                e
            }
        })?;
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Err(if meta.is_dir() {
                io::Error::from_raw_os_error(libc::EISDIR)
            } else {
                refused_as("not a regular file")
            });
        }
        Ok(file)
    }

    /// The directory's own status.
    fn status(&self) -> io::Result<libc::stat> {
        self.stat_at(c"", libc::AT_EMPTY_PATH)
    }

    /// The status of its entry `name`, not following a link.
    fn entry(&self, name: &OsStr) -> io::Result<libc::stat> {
        self.stat_at(&c_name(name)?, libc::AT_SYMLINK_NOFOLLOW)
    }

    fn stat_at(&self, name: &CStr, flags: libc::c_int) -> io::Result<libc::stat> {
        // SAFETY: a zeroed stat is a valid value to overwrite.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: our descriptor (O_PATH allows fstatat, AT_EMPTY_PATH
        // too), a NUL-terminated name, a stat to fill.
        check(unsafe { libc::fstatat(self.fd.as_raw_fd(), name.as_ptr(), &mut st, flags) })?;
        Ok(st)
    }

    fn read_link(&self, name: &OsStr) -> io::Result<PathBuf> {
        let name = c_name(name)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        // SAFETY: our descriptor, a NUL-terminated name, and a buffer of
        // buf.len() bytes the kernel writes at most that many into.
        let n = unsafe { libc::readlinkat(self.fd.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        buf.truncate(n);
        Ok(PathBuf::from(OsString::from_vec(buf)))
    }

    fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (from, to) = (c_name(from)?, c_name(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: our descriptor and two NUL-terminated names.
        check(unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) })
    }

    fn remove(&self, name: &OsStr) -> io::Result<()> {
        let name = c_name(name)?;
        // SAFETY: our descriptor and a NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) })
    }

    /// `fsync`s the directory (its entries: a rename).
    fn sync(&self) -> io::Result<()> {
        self.open_at(OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY)?.sync_all()
    }

    /// The directory as a path, through `/proc/self/fd`, valid while
    /// `self` is (for listing it).
    fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

/// Pushes the steps of `path` onto `pending` (a stack: the first on top).
fn push_steps(pending: &mut Vec<Step>, path: &Path) {
    use std::path::Component;
    for component in path.components().rev() {
        match component {
            Component::RootDir => pending.push(Step::Root),
            Component::ParentDir => pending.push(Step::Up),
            Component::Normal(name) => pending.push(Step::Down(name.to_owned())),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// The user trusted beside root: the master's, which [`record_master`]
/// records, so that a worker, running as nginx's worker user, trusts what
/// the master trusts and refuses the same links (review 36).
static MASTER_USER: std::sync::OnceLock<libc::uid_t> = std::sync::OnceLock::new();

/// The directory the master runs in, which relative state file paths
/// start from in every process: nginx keeps a relative `-p` prefix as
/// given, and the workers, which `chdir` to `working_directory`, inherit
/// this descriptor, not the directory (they resolved such paths there:
/// every change answered 503 "taken over", review 39; a path made
/// absolute instead was walked from `/`, which needs search permission on
/// every directory above, review 44). None where it could not be opened
/// (then the process's own).
static MASTER_DIRECTORY: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();

fn master_directory() -> Option<&'static OwnedFd> {
    MASTER_DIRECTORY
        .get_or_init(|| {
            // SAFETY: a NUL-terminated path; the descriptor returned is ours.
            let fd = unsafe { libc::open(c".".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
            if fd > 2 {
                return owned(fd).ok();
            }
            // 0-2 were closed when nginx started (it got one of their
            // numbers), and nginx points them at /dev/null and the error
            // log as it becomes a daemon (review 46): a copy above them is
            // kept; the number stays taken (nginx's next file would take
            // it, and be replaced so).
            // SAFETY: our descriptor (or -1: an error); the copy returned
            // is ours.
            owned(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) }).ok()
        })
        .as_ref()
}

/// Closes the master's directory descriptor when the process unloads the
/// module (a reload whose configuration no longer loads it; at exit too):
/// a static is never dropped, and a module loaded again opens one anew,
/// so each unload and load kept one more descriptor in the master and
/// every worker (hunt 40).
extern "C" fn close_master_directory() {
    if let Some(Some(fd)) = MASTER_DIRECTORY.get() {
        // SAFETY: the descriptor is ours; no code of the module runs after
        // its destructors (the object is unmapped, or the process exits).
        unsafe { libc::close(fd.as_raw_fd()) };
    }
}

/// [`close_master_directory`] as a destructor of the module's object.
#[used]
#[link_section = ".fini_array"]
static CLOSE_MASTER_DIRECTORY: extern "C" fn() = close_master_directory;

/// Records this process's user and directory as the master's: call it in
/// the master while it reads a configuration, before it forks a worker (a
/// worker that was first recorded its own, review 38).
pub fn record_master() {
    master_user();
    master_directory();
}

fn master_user() -> libc::uid_t {
    // SAFETY: geteuid takes nothing and cannot fail.
    *MASTER_USER.get_or_init(|| unsafe { libc::geteuid() })
}

fn trusted_owner(uid: libc::uid_t) -> bool {
    uid == 0 || uid == master_user()
}

/// Whether only root or the master's user can change the directory:
/// owned by one of them, writable by its owner only (a POSIX ACL that
/// lets another user write shows as the group's write bit).
fn unchangeable_by_others(dir: &libc::stat) -> bool {
    trusted_owner(dir.st_uid) && dir.st_mode & 0o022 == 0
}

/// Whether `entry` of the sticky directory `dir`, owned by root or the
/// master's user as the directory is, cannot be renamed or removed by
/// anyone else (`/tmp/link`, root's).
fn master_entry_in_sticky(dir: &libc::stat, entry: &libc::stat) -> bool {
    dir.st_mode & libc::S_ISVTX != 0 && trusted_owner(dir.st_uid) && trusted_owner(entry.st_uid)
}

fn refused(text: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, text)
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| refused("a file name with a NUL byte".to_string()))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

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
//! without following a symbolic link ([`open_regular`]), so that a link
//! planted there never makes root truncate, write or quote another file
//! (hunt 33). Nor may a link stand for a directory on the way there where
//! another user could have planted it ([`Directory::open`], review 32).
//! Hard links are not refused (a backup made with `cp -al` has them,
//! review 32): the worker user cannot link a file it does not own where
//! `fs.protected_hardlinks` is 1, as Debian sets it (procps), not the
//! kernel's default (review 33).

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
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
        let (lock, shown) = (dir.file(&lock_name(name)), lock_path(path));
        let (file, write_error) = match open_regular(
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644),
            &lock,
            &shown,
        ) {
            Ok(file) => (file, None),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EROFS) => {
                (open_regular(OpenOptions::new().read(true), &lock, &shown)?, e.raw_os_error())
            }
            Err(e) => return Err(e),
        };
        lock_within(&file, wait)?;
        Ok(FileLock { file, write_error })
    }

    /// Whether another process holds the lock of the state file at `path`
    /// for longer than `wait`. Creates nothing (no lock file: nobody holds
    /// it) and leaves the lock as it found it. Fails where the lock file
    /// cannot be used: not a regular file ([`open_regular`]), unreadable.
    pub fn held_past(path: &Path, wait: Duration) -> io::Result<bool> {
        let (dir, name) = match Directory::of(path) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match open_regular(OpenOptions::new().read(true), &dir.file(&lock_name(name)), &lock_path(path)) {
            Ok(file) => Ok(lock_within(&file, wait).is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The processes that hold the lock of the state file at `path` (from
    /// `/proc/locks`; none if it cannot be read), for messages.
    pub fn holders(path: &Path) -> Vec<i32> {
        let Ok((dir, name)) = Directory::of(path) else { return Vec::new() };
        let (Ok(meta), Ok(locks)) =
            (fs::symlink_metadata(dir.file(&lock_name(name))), fs::read_to_string("/proc/locks"))
        else {
            return Vec::new();
        };
        let dev = meta.dev();
        dynamic_upstream_core::process::flock_holders(&locks, libc::major(dev), libc::minor(dev), meta.ino())
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
    let opened =
        Directory::of(path).and_then(|(dir, name)| open_regular(OpenOptions::new().read(true), &dir.file(name), path));
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes)?;
    String::from_utf8(bytes).map(Some).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Opens the file at `path` (a [`Directory::file`]) with `options` if it
/// is a regular file: never through a symbolic link (`O_NOFOLLOW`), never
/// blocking on a FIFO (`O_NONBLOCK`, which regular files ignore). The
/// errors say what the file, `shown` in messages, is instead, for nginx's
/// log.
fn open_regular(options: &mut OpenOptions, path: &Path, shown: &Path) -> io::Result<File> {
    let refused = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("\"{}\" is {what}: a state file and its lock must be regular files", shown.display()),
        )
    };
    let file = options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            refused("a symbolic link (name the file it points to instead)")
        } else {
            e
        }
    })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(if meta.is_dir() {
            io::Error::from_raw_os_error(libc::EISDIR)
        } else {
            refused("not a regular file")
        });
    }
    Ok(file)
}

/// `.NAME.PID.tmp`: where process PID writes file NAME before renaming it.
fn temporary_name(name: &std::ffi::OsStr, pid: u32) -> std::ffi::OsString {
    let mut tmp_name = std::ffi::OsString::from(".");
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
        let Ok(dir) = Directory::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) else {
            continue;
        };
        let Ok(entries) = fs::read_dir(dir.path()) else { continue };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some((name, pid)) = file_name.to_str().and_then(parse_temporary_name) else { continue };
            if names.contains(name) && crate::nginx::process::gone(pid, 0) {
                let _ = fs::remove_file(dir.file(&file_name));
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
    let tmp = dir.file(&temporary_name(name, std::process::id()));
    let result = (|| {
        // A file (or link) of that name is a dead writer's (same pid):
        // removed, then created anew, never opened through a link.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&tmp, dir.file(name))?;
        File::open(dir.path())?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The directory of a state file, opened by [`Directory::open`]. Its files
/// are reached through `/proc/self/fd/N/NAME`: what the walk checked is
/// what is used, whatever is renamed or linked in the meantime.
struct Directory {
    /// `O_PATH`: no permission beyond reaching it is needed to hold it.
    handle: File,
}

/// Symbolic links followed at most in one path, as the kernel's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

impl Directory {
    /// The directory of the file at `path`, and the file's name.
    fn of(path: &Path) -> io::Result<(Directory, &OsStr)> {
        let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        Ok((Directory::open(dir)?, name))
    }

    /// Opens `dir` one component at a time. A symbolic link on the way is
    /// followed only where it sits in a directory no other user can change
    /// (owned by root or by this process's user, and writable by its owner
    /// only): nginx's worker user can plant one in the directory it writes
    /// (or in any directory below it), and the master, root, would then read
    /// and write the state and lock files of whatever directory it points
    /// to (review 32). Such a link is refused, naming it.
    fn open(dir: &Path) -> io::Result<Directory> {
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, dir);
        let mut current = open_directory(Path::new(if dir.is_absolute() { "/" } else { "." }))?;
        let mut shown = PathBuf::from(if dir.is_absolute() { "/" } else { "" });
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == "/" {
                current = open_directory(Path::new("/"))?;
                shown = PathBuf::from("/");
                continue;
            }
            let at = Directory::path_of(&current).join(&name);
            if fs::symlink_metadata(&at)?.file_type().is_symlink() {
                if !unchangeable_by_others(&current.metadata()?) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "\"{}\" is a symbolic link in a directory other users can change (\"{}\"): name the \
                             directory it points to instead",
                            shown.join(&name).display(),
                            shown.display()
                        ),
                    ));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                push_components(&mut pending, &fs::read_link(&at)?);
                continue;
            }
            current = open_directory(&at)?;
            shown.push(&name);
        }
        Ok(Directory { handle: current })
    }

    /// The directory itself, as a path.
    fn path(&self) -> PathBuf {
        Directory::path_of(&self.handle)
    }

    /// The file `name` of the directory, as a path (valid while `self` is).
    fn file(&self, name: &OsStr) -> PathBuf {
        self.path().join(name)
    }

    fn path_of(handle: &File) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()))
    }
}

/// Pushes `path`'s components onto `pending` (a stack: the first on top),
/// the root as "/", leaving out ".".
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    use std::path::Component;
    for component in path.components().rev() {
        match component {
            Component::RootDir => pending.push(OsString::from("/")),
            Component::ParentDir => pending.push(OsString::from("..")),
            Component::Normal(name) => pending.push(name.to_owned()),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// Opens the directory `path` (`O_PATH`), not through a symbolic link.
fn open_directory(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Whether only root or this process's user can change the directory.
fn unchangeable_by_others(dir: &fs::Metadata) -> bool {
    // SAFETY: geteuid takes nothing and cannot fail.
    let user = unsafe { libc::geteuid() };
    (dir.uid() == 0 || dir.uid() == user) && dir.mode() & 0o022 == 0
}

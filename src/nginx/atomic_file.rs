//! Durable, atomic state files.
//!
//! A write goes to a temporary file in the same directory, is `fsync`ed,
//! renamed over the old file and the directory is `fsync`ed: a crash at any
//! point leaves the old file or the new one, never a torn one. Writers (and
//! the master reading at start) serialise on an `flock` of `PATH.lock`,
//! which the kernel releases if a worker dies holding it. The lock file
//! also holds the claim of the nginx that read the state file last
//! ([`FileLock::claim`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// An exclusive lock on a state file, held until dropped.
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// Takes the lock; with `wait` false, fails at once with
    /// [`io::ErrorKind::WouldBlock`] if another process holds it.
    pub fn exclusive(path: &Path, wait: bool) -> io::Result<FileLock> {
        // Read-only is enough for flock, so a lock file the master (root)
        // created stays usable by workers running as another user.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(lock_path(path))
            .or_else(|_| File::open(lock_path(path)))?;
        let operation = if wait { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
                return Ok(FileLock { file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl FileLock {
    /// Writes `token` into the lock file: the mark of the nginx (master
    /// and cycle) that read the state file last. Fails where the lock file
    /// is not writable (opened read-only).
    pub fn claim(&self, token: &str) -> io::Result<()> {
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

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The file's contents, or None if it does not exist.
pub fn read(path: &Path) -> io::Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => {
            String::from_utf8(bytes).map(Some).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the file with `content` atomically and durably.
pub fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

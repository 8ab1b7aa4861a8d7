//! Telling a process from a later one that got the same pid.

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 1: the pid, as the reader's /proc sees it.
    pub pid: i32,
    /// Field 3: the state letter (`R`, `S`, `D`, ..., `Z` for a zombie).
    pub state: u8,
    /// Field 22: the start time, in clock ticks since boot. With the pid it
    /// names one process for good: a recycled pid comes with a later start.
    pub start_time: u64,
}

/// Parses the contents of `/proc/PID/stat`. The command name (field 2) is
/// in parentheses and may itself contain spaces and parentheses, so fields
/// are counted after its last `)`.
pub fn parse_stat(stat: &[u8]) -> Option<ProcStat> {
    let name_end = stat.iter().rposition(|&b| b == b')')?;
    let name_start = stat.iter().position(|&b| b == b'(')?;
    let pid = core::str::from_utf8(&stat[..name_start]).ok()?.trim_end().parse().ok()?;
    let rest = core::str::from_utf8(&stat[name_end + 1..]).ok()?;
    // Fields 3, 4, ... follow the name: field 22 is the 20th of them.
    let start_time = rest.split_ascii_whitespace().nth(19)?.parse().ok()?;
    let state = *rest.trim_start().as_bytes().first()?;
    Some(ProcStat { pid, state, start_time })
}

impl ProcStat {
    /// Whether the process has ended: a zombie its parent has not reaped
    /// yet (`Z`), or dead (`X`). It runs no code any more.
    pub fn ended(&self) -> bool {
        matches!(self.state, b'Z' | b'X')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_1_and_22() {
        let stat = b"20035 (cat) R 20031 20031 9785 0 -1 4194304 124 0 0 0 0 0 0 0 20 0 1 0 139214 3133440 382 \
            18446744073709551615 94708076507136\n";
        assert_eq!(parse_stat(stat), Some(ProcStat { pid: 20035, state: b'R', start_time: 139214 }));
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let stat = b"7 (nginx: worker) (x)) S 1 1 1 0 -1 4194368 5 0 0 0 0 0 0 0 20 0 1 0 4242 1 2 3\n";
        assert_eq!(parse_stat(stat), Some(ProcStat { pid: 7, state: b'S', start_time: 4242 }));
    }

    #[test]
    fn a_zombie_has_ended() {
        let stat = parse_stat(b"9 (nginx) Z 1 1 1 0 -1 4194368 5 0 0 0 0 0 0 0 20 0 1 0 4242 0 0\n").unwrap();
        assert!(stat.ended());
        assert!(!parse_stat(b"9 (nginx) S 1 1 1 0 -1 4194368 5 0 0 0 0 0 0 0 20 0 1 0 4242 0 0\n").unwrap().ended());
    }

    #[test]
    fn short_or_garbled_contents_give_none() {
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b"7 (nginx) S 1 1"), None);
        assert_eq!(parse_stat(b"7 nginx S 1 1 1 0 -1 4 5 0 0 0 0 0 0 0 20 0 1 0 4242"), None);
        assert_eq!(parse_stat(b"x (y) S 1 1 1 0 -1 4 5 0 0 0 0 0 0 0 20 0 1 0 4242 1"), None);
        assert_eq!(parse_stat(b"7 (x) S 1 1 1 0 -1 4 5 0 0 0 0 0 0 0 20 0 1 0 soon 1"), None);
    }
}

/// The pids that hold an `flock` on the file with device `dev` (as
/// `stat`'s `st_dev`) and inode `ino`, read from the text of `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 2474 08:01:1234567 0 EOF`; the device is
/// `MAJOR:MINOR` in hex). Lines of waiters (`1: -> FLOCK ...`) are not
/// holders.
pub fn flock_holders(proc_locks: &str, dev_major: u32, dev_minor: u32, ino: u64) -> Vec<i32> {
    let file = format!("{dev_major:02x}:{dev_minor:02x}:{ino}");
    proc_locks
        .lines()
        .filter_map(|line| {
            let mut words = line.split_ascii_whitespace().skip(1);
            if words.next()? != "FLOCK" {
                return None;
            }
            let pid = words.nth(2)?.parse().ok()?;
            (words.next()? == file).then_some(pid)
        })
        .collect()
}

#[cfg(test)]
mod flock_tests {
    use super::flock_holders;

    const LOCKS: &str = "1: FLOCK  ADVISORY  WRITE 2474 08:01:1234567 0 EOF\n\
                         1: -> FLOCK  ADVISORY  WRITE 2480 08:01:1234567 0 EOF\n\
                         2: POSIX  ADVISORY  WRITE 99 08:01:1234567 0 EOF\n\
                         3: FLOCK  ADVISORY  WRITE 77 fd:1a:1234567 0 EOF\n\
                         4: FLOCK  ADVISORY  READ 12 08:01:7 0 EOF\n";

    #[test]
    fn holders_of_one_file_only() {
        assert_eq!(flock_holders(LOCKS, 8, 1, 1234567), vec![2474]);
        assert_eq!(flock_holders(LOCKS, 0xfd, 0x1a, 1234567), vec![77]);
        assert_eq!(flock_holders(LOCKS, 8, 1, 7), vec![12]);
        assert_eq!(flock_holders(LOCKS, 8, 1, 123456), Vec::<i32>::new());
        assert_eq!(flock_holders("", 8, 1, 1), Vec::<i32>::new());
        assert_eq!(flock_holders("garbage\n1:\n1: FLOCK\n", 8, 1, 1), Vec::<i32>::new());
    }
}

//! Telling a process from a later one that got the same pid.

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 1: the pid, as the reader's /proc sees it.
    pub pid: i32,
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
    Some(ProcStat { pid, start_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_1_and_22() {
        let stat = b"20035 (cat) R 20031 20031 9785 0 -1 4194304 124 0 0 0 0 0 0 0 20 0 1 0 139214 3133440 382 \
            18446744073709551615 94708076507136\n";
        assert_eq!(parse_stat(stat), Some(ProcStat { pid: 20035, start_time: 139214 }));
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let stat = b"7 (nginx: worker) (x)) S 1 1 1 0 -1 4194368 5 0 0 0 0 0 0 0 20 0 1 0 4242 1 2 3\n";
        assert_eq!(parse_stat(stat), Some(ProcStat { pid: 7, start_time: 4242 }));
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

//! What one probe decides, and what a peer's record does with it:
//! - [`HttpProbe`]: an incremental parser of the response's status line
//!   (bytes fed as they arrive, a fixed-size state, at most
//!   [`MAX_STATUS_LINE`] bytes read), matched against `check_http_expect_alive`;
//! - [`Counters`]: consecutive successes and failures, and the up/down
//!   state that `rise` and `fall` move (as nginx_upstream_check_module's
//!   `ngx_http_upstream_check_status_update`);
//! - [`Lease`]: the word workers compare-and-swap to decide which one
//!   probes a peer, and when.
//!
//! Everything here is `Copy` and allocation-free: it lives in, or is
//! computed beside, a record in shared memory.

use std::fmt;

use super::check_conf::StatusClasses;

/// Most bytes of a status line (`HTTP/1.1 200 OK\r\n`) a probe reads
/// before it gives up on the response.
pub const MAX_STATUS_LINE: u32 = 4096;

/// Why a probe failed: kept in a peer's record (as [`Failure::code`]) and
/// shown as its last error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be made (refused, unreachable).
    Connect,
    /// No verdict within the check's `timeout`.
    Timeout,
    /// A read or write on the connection failed (e.g. reset).
    Io,
    /// The peer closed the connection before a whole status line.
    Closed,
    /// The response does not start with a valid HTTP status line.
    BadStatusLine,
    /// The status line is longer than [`MAX_STATUS_LINE`].
    StatusLineTooLong,
    /// A status outside `check_http_expect_alive`.
    Status(u16),
}

impl Failure {
    /// A number that fits a shared record: the kind in the high 16 bits,
    /// the status (for [`Failure::Status`]) in the low 16; 0 is "none".
    pub fn code(self) -> u32 {
        let (kind, status) = match self {
            Failure::Connect => (1, 0),
            Failure::Timeout => (2, 0),
            Failure::Io => (3, 0),
            Failure::Closed => (4, 0),
            Failure::BadStatusLine => (5, 0),
            Failure::StatusLineTooLong => (6, 0),
            Failure::Status(code) => (7, code),
        };
        (kind << 16) | u32::from(status)
    }

    /// The failure [`Failure::code`] made, None for 0 or an unknown code.
    pub fn from_code(code: u32) -> Option<Failure> {
        let status = (code & 0xffff) as u16;
        Some(match code >> 16 {
            1 => Failure::Connect,
            2 => Failure::Timeout,
            3 => Failure::Io,
            4 => Failure::Closed,
            5 => Failure::BadStatusLine,
            6 => Failure::StatusLineTooLong,
            7 => Failure::Status(status),
            _ => return None,
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect => f.write_str("connect failed"),
            Failure::Timeout => f.write_str("timed out"),
            Failure::Io => f.write_str("connection error"),
            Failure::Closed => f.write_str("closed before a status line"),
            Failure::BadStatusLine => f.write_str("invalid status line"),
            Failure::StatusLineTooLong => write!(f, "status line longer than {MAX_STATUS_LINE} bytes"),
            Failure::Status(code) => write!(f, "status {code} not expected"),
        }
    }
}

/// What a probe knows so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    NeedMore,
    Up,
    Down(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Matching the `n`th byte of `HTTP/`.
    Prefix(u8),
    FirstMajorDigit,
    MajorDigits,
    FirstMinorDigit,
    MinorDigits,
    /// Spaces, then the three digits of the status (`n` read so far).
    Status(u8),
    SpaceAfterStatus,
    StatusText,
    AlmostDone,
    Done(Verdict),
}

/// The status-line part of a `type=http` probe, fed bytes as they arrive.
/// The grammar is nginx_upstream_check_module's
/// (`ngx_http_upstream_check_parse_status_line`): `HTTP/` major `.` minor,
/// spaces, three digits, then a space or `.` and any text, or the line end
/// (CRLF or LF). Bytes after the status line are not looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpProbe {
    expect: StatusClasses,
    state: State,
    code: u16,
    read: u32,
}

impl HttpProbe {
    pub fn new(expect: StatusClasses) -> Self {
        Self { expect, state: State::Prefix(0), code: 0, read: 0 }
    }

    /// Reads the next bytes of the response; once the verdict is Up or
    /// Down, further bytes change nothing.
    pub fn feed(&mut self, bytes: &[u8]) -> Verdict {
        for &b in bytes {
            if let State::Done(verdict) = self.state {
                return verdict;
            }
            self.read += 1;
            self.state = self.step(b);
            if self.read >= MAX_STATUS_LINE && !matches!(self.state, State::Done(_)) {
                self.state = State::Done(Verdict::Down(Failure::StatusLineTooLong));
            }
        }
        self.verdict()
    }

    /// The verdict when the peer closed its side: Down(Closed) if the
    /// status line is not whole yet.
    pub fn closed(&mut self) -> Verdict {
        if !matches!(self.state, State::Done(_)) {
            self.state = State::Done(Verdict::Down(Failure::Closed));
        }
        self.verdict()
    }

    pub fn verdict(&self) -> Verdict {
        match self.state {
            State::Done(verdict) => verdict,
            _ => Verdict::NeedMore,
        }
    }

    fn step(&mut self, b: u8) -> State {
        let bad = State::Done(Verdict::Down(Failure::BadStatusLine));
        match (self.state, b) {
            (State::Prefix(n), _) if b == b"HTTP/"[usize::from(n)] => {
                if n == 4 {
                    State::FirstMajorDigit
                } else {
                    State::Prefix(n + 1)
                }
            }
            (State::FirstMajorDigit, b'1'..=b'9') => State::MajorDigits,
            (State::MajorDigits, b'.') => State::FirstMinorDigit,
            (State::MajorDigits, b'0'..=b'9') => State::MajorDigits,
            (State::FirstMinorDigit, b'0'..=b'9') => State::MinorDigits,
            (State::MinorDigits, b' ') => State::Status(0),
            (State::MinorDigits, b'0'..=b'9') => State::MinorDigits,
            (State::Status(0), b' ') => State::Status(0),
            (State::Status(n), b'0'..=b'9') => {
                self.code = self.code * 10 + u16::from(b - b'0');
                if n == 2 {
                    State::SpaceAfterStatus
                } else {
                    State::Status(n + 1)
                }
            }
            // IIS may send "403.1".
            (State::SpaceAfterStatus, b' ' | b'.') => State::StatusText,
            (State::SpaceAfterStatus | State::StatusText, b'\r') => State::AlmostDone,
            (State::SpaceAfterStatus | State::StatusText | State::AlmostDone, b'\n') => State::Done(self.decide()),
            (State::StatusText, _) => State::StatusText,
            _ => bad,
        }
    }

    fn decide(&self) -> Verdict {
        if self.expect.contains(self.code) {
            Verdict::Up
        } else {
            Verdict::Down(Failure::Status(self.code))
        }
    }
}

/// A checked peer's observed health, as its shared record keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub down: bool,
    /// Consecutive successes (0 after a failure).
    pub rises: u32,
    /// Consecutive failures (0 after a success).
    pub falls: u32,
}

/// A change of [`Counters::down`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    WentUp,
    WentDown,
}

impl Counters {
    /// A peer not probed yet: down if `default_down`.
    pub fn new(default_down: bool) -> Self {
        Self { down: default_down, rises: 0, falls: 0 }
    }

    /// Counts one probe's result: `rise` successes in a row bring a down
    /// peer up, `fall` failures in a row take an up peer down.
    pub fn record(&mut self, success: bool, rise: u32, fall: u32) -> Option<Transition> {
        if success {
            self.rises = self.rises.saturating_add(1);
            self.falls = 0;
            if self.down && self.rises >= rise {
                self.down = false;
                return Some(Transition::WentUp);
            }
        } else {
            self.falls = self.falls.saturating_add(1);
            self.rises = 0;
            if !self.down && self.falls >= fall {
                self.down = true;
                return Some(Transition::WentDown);
            }
        }
        None
    }
}

/// Who probes a peer, and when: one 64-bit word of its shared record that
/// workers change only by compare-and-swap. `until` is a deadline on
/// nginx's millisecond clock (`ngx_current_msec`, monotonic and the same
/// in every process of the machine), truncated to 32 bits and compared
/// wrapping, which orders deadlines less than 2^31 ms (24 days) apart;
/// `interval` and `timeout` are at most a day.
///
/// - `pid == 0`: nobody probes; the next probe is due at `until`.
/// - `pid != 0`: that worker probes until `until`; past it (the worker
///   died, or hangs) any worker may take the peer over.
///
/// Either way, a worker may claim the peer once `until` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub pid: u32,
    pub until: u32,
}

impl Lease {
    /// A peer due at once (a new peer is probed on the next tick).
    pub fn due_at(now: u32) -> Self {
        Self { pid: 0, until: now }
    }

    pub fn pack(self) -> u64 {
        (u64::from(self.pid) << 32) | u64::from(self.until)
    }

    pub fn unpack(word: u64) -> Self {
        Self { pid: (word >> 32) as u32, until: word as u32 }
    }

    /// The lease of a peer whose checks a change kept while their interval
    /// became `interval_ms`: due at once if its next probe, on the old
    /// schedule, would come later than one new interval from `now` (a
    /// shorter interval is in force at once, not after the old one ran
    /// out: up to a day; hunt 25); None to keep it as it is (also while a
    /// probe holds it).
    pub fn rescheduled(self, now: u32, interval_ms: u32) -> Option<Self> {
        let wait = self.until.wrapping_sub(now) as i32;
        (self.pid == 0 && wait > 0 && wait as u32 > interval_ms).then(|| Self::due_at(now))
    }

    /// Whether `until` has passed at `now`.
    pub fn expired(self, now: u32) -> bool {
        now.wrapping_sub(self.until) as i32 >= 0
    }

    /// The word that claims `word` for worker `pid` at `now`, holding it
    /// for `hold_ms` (the check's timeout and some slack), or None if
    /// another claim holds it or the probe is not due. The caller
    /// compare-and-swaps it in; the winner probes.
    pub fn claim(word: u64, pid: u32, now: u32, hold_ms: u32) -> Option<u64> {
        let lease = Self::unpack(word);
        (pid != 0 && lease.expired(now)).then(|| Self { pid, until: now.wrapping_add(hold_ms) }.pack())
    }

    /// The word that hands the peer back after a probe that `started` at
    /// some time: due again one `interval` after that start, so that a peer
    /// is probed once per interval whatever the probe took. The caller
    /// compare-and-swaps it for its own claim word; if that fails, the
    /// claim had expired and was taken over, and the result is dropped.
    pub fn release(started: u32, interval_ms: u32) -> u64 {
        Self { pid: 0, until: started.wrapping_add(interval_ms) }.pack()
    }
}

#[cfg(test)]
mod tests {
    use super::super::check_conf::DEFAULT_EXPECT_ALIVE;
    use super::*;

    fn probe_all(response: &[u8]) -> Verdict {
        HttpProbe::new(DEFAULT_EXPECT_ALIVE).feed(response)
    }

    /// The verdict of `response` fed in every split into two reads, and
    /// byte by byte: always the same.
    fn probe(response: &[u8]) -> Verdict {
        let whole = probe_all(response);
        for at in 0..=response.len() {
            let mut p = HttpProbe::new(DEFAULT_EXPECT_ALIVE);
            let first = p.feed(&response[..at]);
            let v = if first == Verdict::NeedMore { p.feed(&response[at..]) } else { first };
            assert_eq!(v, whole, "split at {at}");
        }
        let mut p = HttpProbe::new(DEFAULT_EXPECT_ALIVE);
        let bytewise = response.iter().map(|b| p.feed(&[*b])).last().unwrap_or(Verdict::NeedMore);
        assert_eq!(bytewise, whole);
        whole
    }

    #[test]
    fn status_lines() {
        assert_eq!(probe(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), Verdict::Up);
        assert_eq!(probe(b"HTTP/1.0 302 Found\r\n"), Verdict::Up);
        assert_eq!(probe(b"HTTP/1.0 204\n"), Verdict::Up);
        assert_eq!(probe(b"HTTP/1.0 204\r\n"), Verdict::Up);
        assert_eq!(probe(b"HTTP/1.1   200 OK\r\n"), Verdict::Up);
        assert_eq!(probe(b"HTTP/12.34 200 OK\r\n"), Verdict::Up);
        assert_eq!(probe(b"HTTP/1.1 403.1 Forbidden\r\n"), Verdict::Down(Failure::Status(403)));
        assert_eq!(probe(b"HTTP/1.1 404 Not Found\r\n"), Verdict::Down(Failure::Status(404)));
        assert_eq!(probe(b"HTTP/1.1 503 Unavailable\r\n"), Verdict::Down(Failure::Status(503)));
        assert_eq!(probe(b"HTTP/1.1 199 Odd\r\n"), Verdict::Down(Failure::Status(199)));
        assert_eq!(probe(b"HTTP/1.1 999 Odd\r\n"), Verdict::Down(Failure::Status(999)));
        // Anything after the status line is not read.
        assert_eq!(probe(b"HTTP/1.1 200 OK\r\n\x00\xff garbage"), Verdict::Up);
    }

    #[test]
    fn partial_reads_need_more() {
        for partial in
            [&b""[..], b"H", b"HTTP/", b"HTTP/1.1", b"HTTP/1.1 ", b"HTTP/1.1 20", b"HTTP/1.1 200", b"HTTP/1.1 200 OK\r"]
        {
            let mut p = HttpProbe::new(DEFAULT_EXPECT_ALIVE);
            assert_eq!(p.feed(partial), Verdict::NeedMore, "{partial:?}");
            assert_eq!(p.closed(), Verdict::Down(Failure::Closed), "{partial:?}");
            assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\n"), Verdict::Down(Failure::Closed));
        }
        let mut p = HttpProbe::new(DEFAULT_EXPECT_ALIVE);
        assert_eq!(p.feed(b"HTTP/1.0 200 OK\n"), Verdict::Up);
        assert_eq!(p.closed(), Verdict::Up);
    }

    #[test]
    fn garbage_is_down() {
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n"[..],
            b"http/1.1 200 OK\r\n",
            b"HTTP/0.9 200 OK\r\n",
            b"HTTP/1 200 OK\r\n",
            b"HTTP/1. 200\r\n",
            b"HTTP/1.1200 OK\r\n",
            b"HTTP/1.1 20x OK\r\n",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/1.1 200\rX",
            b"HTTP/1.1 200 OK\r\r\n",
            b"\x16\x03\x01\x00",
            b"\r\n",
            b" HTTP/1.1 200 OK\r\n",
        ] {
            assert_eq!(probe(bad), Verdict::Down(Failure::BadStatusLine), "{bad:?}");
        }
    }

    #[test]
    fn bounded_reading() {
        let mut long = b"HTTP/1.1 200 ".to_vec();
        long.resize(MAX_STATUS_LINE as usize - 2, b'x');
        long.extend_from_slice(b"\r\n");
        assert_eq!(probe_all(&long), Verdict::Up);
        long.insert(20, b'x');
        assert_eq!(probe_all(&long), Verdict::Down(Failure::StatusLineTooLong));
        // A peer that never ends its line: down after the bound, however
        // much it sends, and the probe's state stays the same size.
        let mut p = HttpProbe::new(DEFAULT_EXPECT_ALIVE);
        assert_eq!(p.feed(b"HTTP/1.1 200 "), Verdict::NeedMore);
        let chunk = [b'a'; 1000];
        let verdicts: Vec<Verdict> = (0..10).map(|_| p.feed(&chunk)).collect();
        assert_eq!(verdicts[..4], [Verdict::NeedMore; 4]);
        assert!(verdicts[4..].iter().all(|v| *v == Verdict::Down(Failure::StatusLineTooLong)));
        assert_eq!(std::mem::size_of::<HttpProbe>(), 12);
    }

    #[test]
    fn expect_alive_classes() {
        let mut conf = crate::health::check_conf::CheckConfBuilder::default();
        conf.apply("check", &["type=http"]).unwrap();
        conf.apply("check_http_expect_alive", &["http_4xx", "http_5xx"]).unwrap();
        let expect = conf.finish().unwrap().unwrap().expect_alive;
        let verdict = |line: &[u8]| HttpProbe::new(expect).feed(line);
        assert_eq!(verdict(b"HTTP/1.1 404 x\r\n"), Verdict::Up);
        assert_eq!(verdict(b"HTTP/1.1 503 x\r\n"), Verdict::Up);
        assert_eq!(verdict(b"HTTP/1.1 200 x\r\n"), Verdict::Down(Failure::Status(200)));
    }

    #[test]
    fn failure_codes_round_trip() {
        for f in [
            Failure::Connect,
            Failure::Timeout,
            Failure::Io,
            Failure::Closed,
            Failure::BadStatusLine,
            Failure::StatusLineTooLong,
            Failure::Status(0),
            Failure::Status(503),
            Failure::Status(u16::MAX),
        ] {
            assert_ne!(f.code(), 0);
            assert_eq!(Failure::from_code(f.code()), Some(f));
        }
        assert_eq!(Failure::from_code(0), None);
        assert_eq!(Failure::from_code(8 << 16), None);
        assert_eq!(Failure::Status(503).to_string(), "status 503 not expected");
        assert_eq!(Failure::StatusLineTooLong.to_string(), "status line longer than 4096 bytes");
    }

    #[test]
    fn rise_and_fall() {
        // default_down: down until `rise` successes in a row.
        let mut c = Counters::new(true);
        assert_eq!(c.record(true, 2, 3), None);
        assert_eq!(c.record(false, 2, 3), None);
        assert_eq!((c.down, c.rises, c.falls), (true, 0, 1));
        assert_eq!(c.record(true, 2, 3), None);
        assert_eq!(c.record(true, 2, 3), Some(Transition::WentUp));
        assert_eq!((c.down, c.rises, c.falls), (false, 2, 0));
        assert_eq!(c.record(true, 2, 3), None);
        assert_eq!(c.rises, 3);
        // Then down after `fall` failures in a row.
        assert_eq!(c.record(false, 2, 3), None);
        assert_eq!(c.record(false, 2, 3), None);
        assert_eq!(c.record(true, 2, 3), None);
        assert_eq!((c.down, c.rises, c.falls), (false, 1, 0));
        assert_eq!(c.record(false, 2, 3), None);
        assert_eq!(c.record(false, 2, 3), None);
        assert_eq!(c.record(false, 2, 3), Some(Transition::WentDown));
        assert_eq!(c.record(false, 2, 3), None);
        assert_eq!((c.down, c.rises, c.falls), (true, 0, 4));
        // default_down=false: up at once; rise=1 fall=1 flip on each result.
        let mut c = Counters::new(false);
        assert!(!c.down);
        assert_eq!(c.record(false, 1, 1), Some(Transition::WentDown));
        assert_eq!(c.record(true, 1, 1), Some(Transition::WentUp));
        // Counters saturate.
        let mut c = Counters { down: false, rises: u32::MAX, falls: 0 };
        assert_eq!(c.record(true, 1, 1), None);
        assert_eq!(c.rises, u32::MAX);
    }

    #[test]
    fn one_worker_per_lease() {
        let (a, b) = (101, 202);
        let word = Lease::due_at(1_000).pack();
        // Not due yet for anyone; due at 1000 for the first to swap.
        assert_eq!(Lease::claim(word, a, 999, 1_500), None);
        let claimed = Lease::claim(word, a, 1_000, 1_500).unwrap();
        assert_eq!(Lease::unpack(claimed), Lease { pid: a, until: 2_500 });
        // B read the same old word: its swap fails in the module; on the new
        // word it finds the claim held.
        assert_eq!(Lease::claim(claimed, b, 2_000, 1_500), None);
        // A finishes: due one interval after its start.
        let released = Lease::release(1_000, 3_000);
        assert_eq!(Lease::unpack(released), Lease { pid: 0, until: 4_000 });
        assert_eq!(Lease::claim(released, b, 3_999, 1_500), None);
        assert!(Lease::claim(released, b, 4_000, 1_500).is_some());
        // A worker killed while probing: its claim expires, another takes over.
        assert_eq!(Lease::unpack(Lease::claim(claimed, b, 2_500, 1_500).unwrap()), Lease { pid: b, until: 4_000 });
        // pid 0 never claims (it means "nobody").
        assert_eq!(Lease::claim(word, 0, 5_000, 1_500), None);
    }

    #[test]
    fn lease_deadlines_wrap() {
        let near_wrap = u32::MAX - 100;
        let word = Lease::claim(Lease::due_at(near_wrap).pack(), 7, near_wrap, 1_000).unwrap();
        let lease = Lease::unpack(word);
        assert_eq!(lease.until, 899);
        assert!(!lease.expired(u32::MAX));
        assert!(!lease.expired(898));
        assert!(lease.expired(899));
        assert!(lease.expired(899 + 86_400_000));
        assert!(!Lease::due_at(5).expired(4));
        assert_eq!(Lease::unpack(Lease { pid: u32::MAX, until: 1 }.pack()), Lease { pid: u32::MAX, until: 1 });
    }

    #[test]
    fn a_shorter_interval_reschedules_a_kept_peer() {
        let next = |until| Lease { pid: 0, until };
        // Due in 60 s, the interval now 0.5 s: due at once.
        assert_eq!(next(61_000).rescheduled(1_000, 500), Some(Lease::due_at(1_000)));
        // Due within the new interval, already due, or being probed: kept.
        assert_eq!(next(1_400).rescheduled(1_000, 500), None);
        assert_eq!(next(1_500).rescheduled(1_000, 500), None);
        assert_eq!(next(900).rescheduled(1_000, 500), None);
        assert_eq!(Lease { pid: 7, until: 61_000 }.rescheduled(1_000, 500), None);
        // Across the clock's wrap.
        assert_eq!(next(59_000).rescheduled(u32::MAX - 1_000, 500), Some(Lease::due_at(u32::MAX - 1_000)));
        assert_eq!(next(100).rescheduled(u32::MAX - 1_000, 30_000), None);
    }
}

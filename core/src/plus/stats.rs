//! Per-peer statistics as NGINX Plus reports them, and the server ID,
//! kept in shared memory beside each peer as a row of 64-bit words (the
//! module stores them in the peer's own memory, so they live and die with
//! it). This file only names the words and reads them; the module counts.

use crate::render::PeerView;

/// The words of a peer's record, in order: [`COUNT`](word::COUNT) words,
/// which fit the 15 spare words nginx 1.27.3 and later leave in a peer
/// (1.22 leaves 32). What can be derived is not stored: `active` is the
/// peer's `conns`, the responses' total is the sum of the classes (and
/// the number of timed responses: only responses with a status class are
/// timed).
pub mod word {
    /// Low 32 bits: the server ID plus one (0: none assigned yet, see
    /// [`crate::plus::ids::MAX_ID`]); high 32 bits: `unavail`, the times
    /// the peer became unavailable (wraps after 2^32).
    pub const ID_UNAVAIL: usize = 0;
    pub const REQUESTS: usize = 1;
    /// `1xx` to `5xx`: five words from here.
    pub const RESPONSES: usize = 2;
    pub const SENT: usize = 7;
    pub const RECEIVED: usize = 8;
    pub const FAILS: usize = 9;
    /// Unix time in milliseconds of the last request sent (0: never).
    pub const SELECTED: usize = 10;
    /// Milliseconds unavailable, up to the last time it ended.
    pub const DOWNTIME: usize = 11;
    /// Unix time in milliseconds it became unavailable (0: it is not).
    pub const DOWNSTART: usize = 12;
    /// Sums of `$upstream_header_time` and `$upstream_response_time`
    /// (milliseconds) over the responses.
    pub const HEADER_TIME: usize = 13;
    pub const RESPONSE_TIME: usize = 14;
    /// How many words a record has.
    pub const COUNT: usize = 15;
    /// The ID's part of [`ID_UNAVAIL`].
    pub const ID_MASK: u64 = 0xffff_ffff;
    /// One `unavail` in [`ID_UNAVAIL`].
    pub const UNAVAIL_ONE: u64 = 1 << 32;
}

/// A copy of one peer's record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerStats {
    pub id: Option<u64>,
    pub requests: u64,
    /// `1xx` .. `5xx`.
    pub responses: [u64; 5],
    pub sent: u64,
    pub received: u64,
    pub fails: u64,
    pub unavail: u64,
    pub selected_ms: u64,
    pub downtime_ms: u64,
    pub downstart_ms: u64,
    pub header_time_ms: u64,
    pub response_time_ms: u64,
}

impl PeerStats {
    /// Reads a record (at least [`word::COUNT`] words).
    pub fn from_words(w: &[u64]) -> Self {
        let get = |i: usize| w.get(i).copied().unwrap_or(0);
        Self {
            id: (get(word::ID_UNAVAIL) & word::ID_MASK).checked_sub(1),
            requests: get(word::REQUESTS),
            responses: std::array::from_fn(|i| get(word::RESPONSES + i)),
            sent: get(word::SENT),
            received: get(word::RECEIVED),
            fails: get(word::FAILS),
            unavail: get(word::ID_UNAVAIL) >> 32,
            selected_ms: get(word::SELECTED),
            downtime_ms: get(word::DOWNTIME),
            downstart_ms: get(word::DOWNSTART),
            header_time_ms: get(word::HEADER_TIME),
            response_time_ms: get(word::RESPONSE_TIME),
        }
    }

    /// All responses.
    pub fn total_responses(&self) -> u64 {
        self.responses.iter().sum()
    }

    /// `downtime` and `downstart` at `now_ms`, for a peer whose nginx
    /// fields are `p` (see [`downtime`]).
    pub fn downtime_at(&self, p: &Passive, now_ms: u64) -> Downtime {
        downtime(self.downtime_ms, self.downstart_ms, p, now_ms)
    }

    /// Average header and response times (milliseconds), if any response
    /// came (every response is timed).
    pub fn average_times(&self) -> Option<(u64, u64)> {
        let n = self.total_responses();
        (n > 0).then(|| (self.header_time_ms / n, self.response_time_ms / n))
    }
}

/// The index of the `Nxx` word for an HTTP status (None outside 100..599).
pub fn response_class(status: u64) -> Option<usize> {
    (100..600).contains(&status).then(|| (status / 100 - 1) as usize)
}

/// A peer's state as NGINX Plus names it: `down` (by an operator),
/// `unhealthy` (down by its active health checks), `unavail` (nginx skips
/// it: [`Passive::unavailable`]), else `up`. Times in seconds, as nginx
/// keeps them.
pub fn peer_state(p: &PeerView, now: i64) -> &'static str {
    if p.down {
        "down"
    } else if p.health.is_some_and(|h| h.down) {
        "unhealthy"
    } else if Passive::of(p).unavailable(now) {
        "unavail"
    } else {
        "up"
    }
}

/// The fields of nginx's peer (`ngx_http_upstream_rr_peer_t`) that decide
/// whether round robin skips it after failures (Unix seconds, as nginx
/// keeps them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Passive {
    pub fails: u64,
    pub max_fails: u64,
    /// The last failure (nginx's free sets it, and `checked`, on each).
    pub accessed: i64,
    /// The last failure, or when nginx last let a request through once
    /// `fail_timeout` had passed (`ngx_http_upstream_get_peer`).
    pub checked: i64,
    pub fail_timeout: i64,
}

impl Passive {
    pub fn of(p: &PeerView) -> Self {
        Self {
            fails: p.fails,
            max_fails: p.max_fails,
            accessed: p.accessed,
            checked: p.checked,
            fail_timeout: p.fail_timeout,
        }
    }

    /// Whether it failed `max_fails` times (nginx counts no more than that
    /// before it skips the server).
    fn failed_out(&self) -> bool {
        self.max_fails != 0 && self.fails >= self.max_fails
    }

    /// Whether nginx skips it at `now` (seconds): `ngx_http_upstream_get_peer`'s
    /// rule, the `unavail` state.
    pub fn unavailable(&self, now: i64) -> bool {
        self.failed_out() && now - self.checked <= self.fail_timeout
    }

    /// When (Unix ms) nginx lets a request through again after the last
    /// failure: the first second more than `fail_timeout` after it.
    fn failures_end_ms(&self) -> u64 {
        self.fail_timeout_end_ms(self.accessed)
    }

    /// The first second (Unix ms) more than `fail_timeout` after `since`
    /// (seconds): where nginx's `now - checked <= fail_timeout` turns false.
    fn fail_timeout_end_ms(&self, since: i64) -> u64 {
        secs_to_ms(since.saturating_add(self.fail_timeout).saturating_add(1))
    }

    /// Whether nginx let a request through after that (at `checked`): it
    /// skips the server again from then until that request ends (nginx
    /// resets `fails` if it succeeds) or `fail_timeout` passes.
    fn let_through(&self) -> bool {
        self.failed_out() && self.accessed < self.checked
    }

    /// When (Unix ms) the wait for the request let through at `checked`
    /// ends at the latest: `fail_timeout` after it, as after a failure.
    fn let_through_end_ms(&self) -> u64 {
        self.fail_timeout_end_ms(self.checked)
    }

    /// Whether nginx's `free` resets `fails` after a successful attempt in
    /// a list of several servers (`accessed < checked`: a request let
    /// through after the failure, this one or another).
    fn success_resets(&self) -> bool {
        self.fails != 0 && self.accessed < self.checked
    }
}

fn secs_to_ms(s: i64) -> u64 {
    (s.max(0) as u64).saturating_mul(1000)
}

/// A peer's `downtime` (milliseconds) and `downstart` (Unix ms, while it
/// is `unavail`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Downtime {
    pub total_ms: u64,
    pub start_ms: Option<u64>,
}

/// A reading of the record's words and nginx's fields: what it shows,
/// and where the part not folded into the `downtime` word begins.
struct Reading {
    shown: Downtime,
    /// Whether the stretch a failure began runs.
    failure_running: bool,
}

/// `downtime` and `downstart` at `now_ms`, from the record's words
/// (`stored_ms`, the stretches folded; `downstart_ms`: 0, or where the
/// part not folded yet begins) and nginx's fields, so that they tell the
/// story [`peer_state`] tells (`unavail`: nginx skips the server):
/// - the stretch a failure began (at `downstart_ms`) runs while
///   `fails >= max_fails`, up to [`Passive::failures_end_ms`] (nginx sends
///   the server requests again then, it is `up`), however long no request
///   comes;
/// - if nginx let a request through after that (`accessed < checked`),
///   it skips the server again from `checked` until that request ends or
///   `fail_timeout` passes: that time counts too (from `downstart_ms` if
///   later: what a reader already folded), not the gap before it;
/// - when `fails < max_fails` the words' stretch counts nothing more: the
///   module folded it when it saw nginx reset `fails`, or it is a mark.
///
/// Reading needs no lock; the words change only by a compare-exchange on
/// `downstart` ([`fold`], [`settle`], [`observe`]), whose winner adds
/// what it folded to `downtime`.
pub fn downtime(stored_ms: u64, downstart_ms: u64, p: &Passive, now_ms: u64) -> Downtime {
    read(stored_ms, downstart_ms, p, now_ms).shown
}

fn read(stored_ms: u64, downstart_ms: u64, p: &Passive, now_ms: u64) -> Reading {
    let now = (now_ms / 1000) as i64;
    let mut total = stored_ms;
    let mut start = None;
    let mut failure_running = false;
    // The stretch the words hold: [downstart, end).
    let mut end = downstart_ms;
    if downstart_ms != 0 && p.failed_out() {
        end = now_ms.min(p.failures_end_ms()).max(downstart_ms);
        total += end - downstart_ms;
        if p.unavailable(now) && now_ms < p.failures_end_ms() {
            start = Some(downstart_ms);
            failure_running = true;
        }
    }
    // The wait for a request let through after it.
    if p.let_through() {
        let from = secs_to_ms(p.checked).max(end);
        total += now_ms.min(p.let_through_end_ms()).saturating_sub(from);
        if p.unavailable(now) {
            start = Some(secs_to_ms(p.checked));
        }
    }
    Reading { shown: Downtime { total_ms: total, start_ms: start }, failure_running }
}

/// A change of a record's words: compare-exchange `downstart` from the
/// value read to `downstart_ms`; the winner adds `add_ms` to `downtime`
/// (and one to `unavail` if `became_unavail`). Readers read the same
/// total before and after it, so nothing is counted twice or lost: of two
/// workers (or a worker and a reader) changing it at once, the one whose
/// exchange fails reads again, and finds what is left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fold {
    pub downstart_ms: u64,
    /// Negative when a stretch goes on from the start of a wait a reader
    /// already folded part of (added wrapping, as two's complement).
    pub add_ms: i64,
    pub became_unavail: bool,
}

/// The list an attempt ended in, as nginx's round robin `free` treats
/// its peer's `fails`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// Several servers: failures count up to `max_fails`.
    Several,
    /// The only server, which nginx never skips: its `free` returns before
    /// it counts or resets anything (before nginx 1.27.3: 1.22, 1.26).
    OnlyKeepsFails,
    /// The only server, whose `free` resets `fails` after every attempt,
    /// failed or not (nginx 1.27.3 on: 1.28).
    OnlyResetsFails,
}

/// What an attempt that ends at `now_ms` (`failed`: nginx's
/// `NGX_PEER_FAILED`) in `list` changes, for a record whose `downstart`
/// word is `downstart_ms` and a peer whose fields are `p` before nginx's
/// `free` updates them; None: nothing. Readers read the same before the
/// change, after it, and after nginx's `free`.
pub fn fold(downstart_ms: u64, p: &Passive, failed: bool, list: List, now_ms: u64) -> Option<Fold> {
    let resets = match list {
        List::OnlyKeepsFails => return None,
        // A failure too: what ran would be lost with `fails` (review 43).
        List::OnlyResetsFails => p.fails != 0,
        List::Several if failed => {
            // After nginx's free: fails + 1, accessed = checked = now, so
            // it is unavail from now on (if it reaches max_fails).
            if p.max_fails == 0 || p.fails + 1 < p.max_fails {
                return None;
            }
            return started_by_failure(&read(0, downstart_ms, p, now_ms), p, now_ms);
        }
        List::Several => p.success_resets(),
    };
    if !resets {
        return None;
    }
    let r = read(0, downstart_ms, p, now_ms);
    if downstart_ms == 0 && r.shown.total_ms == 0 {
        return None;
    }
    // nginx resets fails: everything up to now is folded; `downstart`
    // becomes a mark (until nginx's free resets fails, a reader counts the
    // wait for a let-through request only from it; nothing after).
    Some(Fold {
        downstart_ms: if p.let_through() { now_ms } else { 0 },
        add_ms: r.shown.total_ms as i64,
        became_unavail: false,
    })
}

/// A failure that reaches `max_fails` in a list of several servers.
fn started_by_failure(r: &Reading, p: &Passive, now_ms: u64) -> Option<Fold> {
    // Unavail since a failure: it goes on.
    if r.failure_running && !p.let_through() {
        return None;
    }
    // It goes on from the let-through request's start (what readers
    // folded of it is taken back, so that `downstart` shows it), or
    // begins now; what ended before is folded.
    let from = r.shown.start_ms.unwrap_or(now_ms).min(now_ms);
    Some(Fold {
        downstart_ms: from,
        add_ms: r.shown.total_ms as i64 - (now_ms - from) as i64,
        // nginx disables it ("upstream server temporarily disabled"): the
        // failure that reached max_fails, or one after nginx let a request
        // through again.
        became_unavail: !(p.unavailable((now_ms / 1000) as i64) && p.accessed == p.checked),
    })
}

/// What ends a stretch out of request time, before nginx's fields change
/// (an operator brings the server up, which resets `fails`, or changes its
/// `max_fails` or `fail_timeout`; its list is replaced): everything up to
/// `now_ms` folded, `downstart` a mark from which a stretch running by the
/// new fields goes on, also one they begin (a `max_fails` lowered to the
/// failures counted: nginx skips the server from then on, review 43). A
/// mark counts nothing while `fails` is below `max_fails`.
pub fn settle(downstart_ms: u64, p: &Passive, now_ms: u64) -> Fold {
    let r = read(0, downstart_ms, p, now_ms);
    Fold { downstart_ms: now_ms.max(1), add_ms: r.shown.total_ms as i64, became_unavail: false }
}

/// What a reader folds at `now_ms`: the wait for a request nginx let
/// through after `fail_timeout` (its start, `checked`, moves when nginx
/// lets the next one through, which no module code sees: what was read of
/// it must be folded first, or a later reading would be lower). None:
/// nothing to fold.
pub fn observe(downstart_ms: u64, p: &Passive, now_ms: u64) -> Option<Fold> {
    if !p.let_through() {
        return None;
    }
    let r = read(0, downstart_ms, p, now_ms);
    let upto = now_ms.min(p.let_through_end_ms()).max(downstart_ms);
    (r.shown.total_ms != 0).then_some(Fold {
        downstart_ms: upto.max(1),
        add_ms: r.shown.total_ms as i64,
        became_unavail: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_reads_back() {
        let mut w = [0u64; word::COUNT];
        assert_eq!(PeerStats::from_words(&w).id, None);
        w[word::ID_UNAVAIL] = 1 + 3 * word::UNAVAIL_ONE;
        w[word::RESPONSES + 1] = 7;
        w[word::RESPONSES + 4] = 2;
        w[word::HEADER_TIME] = 20;
        w[word::RESPONSE_TIME] = 46;
        let s = PeerStats::from_words(&w);
        assert_eq!((s.id, s.unavail), (Some(0), 3));
        assert_eq!(s.responses, [0, 7, 0, 0, 2]);
        assert_eq!(s.total_responses(), 9);
        assert_eq!(s.average_times(), Some((2, 5)));
        w[word::ID_UNAVAIL] = word::ID_MASK + word::UNAVAIL_ONE;
        assert_eq!(PeerStats::from_words(&w).id, Some(crate::plus::ids::MAX_ID));
        assert_eq!(PeerStats::from_words(&w).unavail, 1);
        assert_eq!(PeerStats::default().average_times(), None);
    }

    /// A peer as nginx's round robin keeps it, and its record's words,
    /// changed as the module and nginx change them.
    struct Sim {
        p: Passive,
        stored: u64,
        downstart: u64,
        unavail: u64,
        /// Every reading, checked to only grow.
        last: u64,
        /// Whether a reader folds between the module's count and nginx's free.
        fold_between: bool,
    }

    impl Sim {
        fn new(max_fails: u64, fail_timeout: i64) -> Self {
            let p = Passive { max_fails, fail_timeout, ..Default::default() };
            Self { p, stored: 0, downstart: 0, unavail: 0, last: 0, fold_between: false }
        }

        fn read(&mut self, now_ms: u64) -> Downtime {
            self.look(now_ms, true)
        }

        /// A reading; `fold`: as the module's readers do (not the checks
        /// between the module's count and nginx's free: a reader there
        /// would only make a stretch's downstart later).
        fn look(&mut self, now_ms: u64, fold: bool) -> Downtime {
            let d = downtime(self.stored, self.downstart, &self.p, now_ms);
            if let Some(f) = observe(self.downstart, &self.p, now_ms).filter(|_| fold) {
                (self.downstart, self.stored) = (f.downstart_ms, self.stored.wrapping_add(f.add_ms as u64));
                assert_eq!(
                    downtime(self.stored, self.downstart, &self.p, now_ms),
                    d,
                    "a reader's fold changes nothing"
                );
            }
            if std::env::var("SIM_TRACE").is_ok() {
                eprintln!("read {now_ms}: {:?} stored {} downstart {} -> {d:?}", self.p, self.stored, self.downstart);
            }
            assert!(d.total_ms >= self.last, "downtime went back from {} to {} at {now_ms}", self.last, d.total_ms);
            self.last = d.total_ms;
            assert_eq!(
                d.start_ms.is_some(),
                self.p.unavailable((now_ms / 1000) as i64),
                "downstart iff unavail at {now_ms}: {d:?}"
            );
            d
        }

        /// ngx_http_upstream_get_peer picks it (None: it skips it).
        fn pick(&mut self, now_ms: u64) -> Option<()> {
            let now = (now_ms / 1000) as i64;
            if self.p.unavailable(now) {
                return None;
            }
            if now - self.p.checked > self.p.fail_timeout {
                self.p.checked = now;
            }
            Some(())
        }

        /// An attempt ends: the module's count, then nginx's free.
        fn end(&mut self, failed: bool, now_ms: u64) {
            if std::env::var("SIM_TRACE").is_ok() {
                eprintln!("end failed={failed} at {now_ms}");
            }
            if let Some(f) = fold(self.downstart, &self.p, failed, List::Several, now_ms) {
                self.downstart = f.downstart_ms;
                self.stored = self.stored.wrapping_add(f.add_ms as u64);
                self.unavail += u64::from(f.became_unavail);
            }
            // A reader between the module's count and nginx's free.
            self.look(now_ms, self.fold_between);
            let now = (now_ms / 1000) as i64;
            if failed {
                self.p.fails += 1;
                (self.p.accessed, self.p.checked) = (now, now);
            } else if self.p.accessed < self.p.checked {
                self.p.fails = 0;
            }
            self.read(now_ms);
        }
    }

    #[test]
    fn downtime_ends_when_nginx_sends_requests_again() {
        // max_fails=1 fail_timeout=2s; a failure at 10.400 s.
        let mut s = Sim::new(1, 2);
        s.pick(10_000).unwrap();
        s.end(true, 10_400);
        assert_eq!(s.read(10_400), Downtime { total_ms: 0, start_ms: Some(10_400) });
        assert_eq!(s.read(12_999), Downtime { total_ms: 2_599, start_ms: Some(10_400) });
        // nginx skips it up to 12.999 s (now - checked <= 2), not from 13 s.
        assert_eq!(s.read(13_000), Downtime { total_ms: 2_600, start_ms: None });
        assert_eq!(s.read(99_000), Downtime { total_ms: 2_600, start_ms: None });
        assert_eq!(s.unavail, 1);
        // Tried again much later, it fails again: a new stretch, the gap not counted.
        s.pick(100_200).unwrap();
        s.end(true, 100_300);
        assert_eq!(s.unavail, 2);
        assert_eq!(s.read(101_000), Downtime { total_ms: 2_600 + 1_000, start_ms: Some(100_000) });
        assert_eq!(s.read(200_000), Downtime { total_ms: 2_600 + 3_000, start_ms: None });
    }

    #[test]
    fn an_old_request_that_succeeds_does_not_end_it() {
        let mut s = Sim::new(1, 2);
        s.pick(10_000).unwrap(); // the slow one, sent before the failure
        s.pick(10_100).unwrap();
        s.end(true, 10_200);
        s.end(false, 11_000); // nginx keeps fails: accessed == checked
        assert_eq!(s.p.fails, 1);
        assert_eq!(s.read(12_000), Downtime { total_ms: 1_800, start_ms: Some(10_200) });
        assert_eq!(s.read(14_000), Downtime { total_ms: 2_800, start_ms: None });
    }

    #[test]
    fn a_request_let_through_counts_while_it_runs() {
        let mut s = Sim::new(1, 1);
        s.pick(5_000).unwrap();
        s.end(true, 5_500); // unavail up to 7 s
        assert!(s.pick(6_900).is_none());
        assert_eq!(s.read(9_000).total_ms, 1_500);
        // Let through at 9.300 s: unavail again (nginx skips it) from 9 s.
        s.pick(9_300).unwrap();
        assert!(s.pick(9_400).is_none());
        assert_eq!(s.read(9_500), Downtime { total_ms: 1_500 + 500, start_ms: Some(9_000) });
        // It succeeds: nginx resets fails, the stretch ends.
        s.end(false, 9_800);
        assert_eq!(s.p.fails, 0);
        assert_eq!(s.read(9_800), Downtime { total_ms: 1_500 + 800, start_ms: None });
        assert_eq!(s.read(30_000).total_ms, 2_300);
        assert_eq!(s.unavail, 1);
        // A let-through request that fails: the stretch goes on from its start.
        let mut s = Sim::new(1, 1);
        s.pick(5_000).unwrap();
        s.end(true, 5_500);
        s.pick(9_300).unwrap();
        s.end(true, 9_800);
        assert_eq!(s.unavail, 2);
        assert_eq!(s.read(10_500), Downtime { total_ms: 1_500 + 1_500, start_ms: Some(9_000) });
        assert_eq!(s.read(20_000), Downtime { total_ms: 1_500 + 2_000, start_ms: None });
    }

    #[test]
    fn max_fails_counts_and_settling() {
        let mut s = Sim::new(2, 1);
        s.pick(1_000).unwrap();
        s.end(true, 1_100);
        assert_eq!(s.read(1_200), Downtime { total_ms: 0, start_ms: None });
        s.pick(1_300).unwrap();
        s.end(true, 1_400);
        assert_eq!((s.unavail, s.read(2_400)), (1, Downtime { total_ms: 1_000, start_ms: Some(1_400) }));
        // An operator brings it up (nginx's fails and checked reset).
        let f = settle(s.downstart, &s.p, 2_500);
        (s.downstart, s.stored) = (f.downstart_ms, s.stored.wrapping_add(f.add_ms as u64));
        (s.p.fails, s.p.checked) = (0, 0);
        assert_eq!(s.read(2_500), Downtime { total_ms: 1_100, start_ms: None });
        assert_eq!(s.read(9_000), Downtime { total_ms: 1_100, start_ms: None });
        // A change of fail_timeout while it runs: it goes on.
        s.pick(10_000).unwrap();
        s.pick(10_000).unwrap();
        s.end(true, 10_100);
        s.end(true, 10_200);
        let f = settle(s.downstart, &s.p, 10_600);
        (s.downstart, s.stored) = (f.downstart_ms, s.stored.wrapping_add(f.add_ms as u64));
        s.p.fail_timeout = 3;
        assert_eq!(s.read(12_000), Downtime { total_ms: 1_100 + 1_800, start_ms: Some(10_600) });
        assert_eq!(s.read(14_000), Downtime { total_ms: 1_100 + 3_800, start_ms: None });
        // Nothing ran: the mark counts nothing.
        let f = settle(0, &Passive::default(), 5);
        assert_eq!(downtime(f.add_ms as u64, f.downstart_ms, &Passive::default(), 9_000), Downtime::default());
        // review 43: max_fails lowered to the failures counted: nginx
        // skips the server from then on, and so the stretch runs from then.
        let mut p = Passive { fails: 1, max_fails: 3, accessed: 5, checked: 5, fail_timeout: 10 };
        let f = settle(0, &p, 6_000);
        p.max_fails = 1;
        let stored = f.add_ms as u64;
        assert_eq!(downtime(stored, f.downstart_ms, &p, 8_000), Downtime { total_ms: 2_000, start_ms: Some(6_000) });
        assert_eq!(downtime(stored, f.downstart_ms, &p, 20_000), Downtime { total_ms: 10_000, start_ms: None });
    }

    #[test]
    fn the_only_server_of_a_list() {
        let p = Passive { fails: 1, max_fails: 1, accessed: 5, checked: 5, fail_timeout: 30 };
        // From nginx 1.27.3 its free resets fails after a failure too: what
        // ran is folded first, or the reading would drop (review 43).
        let f = fold(5_000, &p, true, List::OnlyResetsFails, 8_500).unwrap();
        assert_eq!(f, Fold { downstart_ms: 0, add_ms: 3_500, became_unavail: false });
        let after = Passive { fails: 0, ..p };
        assert_eq!(
            downtime(f.add_ms as u64, f.downstart_ms, &after, 9_000),
            Downtime { total_ms: 3_500, start_ms: None }
        );
        assert_eq!(fold(5_000, &p, false, List::OnlyResetsFails, 8_500), Some(f));
        // Before, it leaves fails alone: nothing changes.
        for failed in [true, false] {
            assert_eq!(fold(5_000, &p, failed, List::OnlyKeepsFails, 8_500), None);
        }
    }

    #[test]
    fn downtime_agrees_with_state_under_any_traffic() {
        // A pseudo-random walk of picks, successes and failures with
        // requests in flight, readers folding: downtime only grows,
        // downstart iff unavail.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for (max_fails, fail_timeout, fold_between) in [(1, 1, false), (2, 2, true), (3, 1, false), (1, 3, true)] {
            let mut s = Sim::new(max_fails, fail_timeout);
            s.fold_between = fold_between;
            let mut now = 1_000;
            let mut in_flight = 0;
            for _ in 0..5_000 {
                now += rand(700);
                match rand(4) {
                    0 if in_flight < 4 => in_flight += u32::from(s.pick(now).is_some()),
                    1 | 2 if in_flight > 0 => {
                        in_flight -= 1;
                        s.end(rand(3) != 0, now);
                    }
                    _ => {
                        s.read(now);
                    }
                }
            }
            assert!(s.unavail > 10 && s.last > 1_000, "{} {}", s.unavail, s.last);
        }
    }

    #[test]
    fn classes_and_states() {
        assert_eq!(response_class(200), Some(1));
        assert_eq!(response_class(599), Some(4));
        assert_eq!(response_class(99), None);
        assert_eq!(response_class(600), None);
        let state = |down, fails, max_fails, checked, health_down: Option<bool>| {
            let mut p = crate::render::test_peer("127.0.0.1:8081");
            (p.down, p.fails, p.max_fails, p.checked) = (down, fails, max_fails, checked);
            p.health = health_down.map(|down| crate::health::PeerHealth { down, ..Default::default() });
            peer_state(&p, 100)
        };
        assert_eq!(state(true, 0, 1, 0, Some(true)), "down");
        assert_eq!(state(false, 1, 1, 95, None), "unavail");
        assert_eq!(state(false, 1, 1, 80, None), "up");
        assert_eq!(state(false, 5, 0, 95, None), "up");
        assert_eq!(state(false, 1, 1, 95, Some(true)), "unhealthy");
        assert_eq!(state(false, 0, 1, 0, Some(false)), "up");
    }
}

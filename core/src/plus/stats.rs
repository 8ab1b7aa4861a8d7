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

    /// Downtime so far: what ended, plus the running stretch at `now_ms`.
    pub fn downtime_at(&self, now_ms: u64) -> u64 {
        let running = if self.downstart_ms == 0 { 0 } else { now_ms.saturating_sub(self.downstart_ms) };
        self.downtime_ms + running
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
/// `unhealthy` (down by its active health checks), `unavail` (it failed
/// `max_fails` times within `fail_timeout` and nginx is not sending it
/// requests until `fail_timeout` after its last failure), else `up`.
/// Times in seconds, as nginx keeps them.
pub fn peer_state(p: &PeerView, now: i64) -> &'static str {
    let (fails, max_fails) = (p.fails, p.max_fails);
    if p.down {
        "down"
    } else if p.health.is_some_and(|h| h.down) {
        "unhealthy"
    } else if max_fails != 0 && fails >= max_fails && now - p.checked <= p.fail_timeout {
        "unavail"
    } else {
        "up"
    }
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

    #[test]
    fn downtime_runs_while_down() {
        let s = PeerStats { downtime_ms: 100, downstart_ms: 5_000, ..Default::default() };
        assert_eq!(s.downtime_at(5_250), 350);
        assert_eq!(PeerStats { downtime_ms: 100, ..Default::default() }.downtime_at(9_999), 100);
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

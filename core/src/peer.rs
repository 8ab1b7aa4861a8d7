//! Peer parameters (`weight`, `max_fails`, ...), their limits, and the
//! full description of a server to add.

use crate::address::Address;
use crate::error::ApiError;

/// nginx's defaults for a `server` line without parameters.
pub const DEFAULT_WEIGHT: u64 = 1;
pub const DEFAULT_MAX_FAILS: u64 = 1;
pub const DEFAULT_FAIL_TIMEOUT: u64 = 10;

/// Accepted range of each numeric parameter (inclusive), through the APIs.
/// nginx's own `server` directive accepts more (see [`Param::parse_config_value`]).
pub const WEIGHT_RANGE: (u64, u64) = (1, 1_000_000);
pub const MAX_FAILS_RANGE: (u64, u64) = (0, 1_000_000);
/// Seconds; one year at most.
pub const FAIL_TIMEOUT_RANGE: (u64, u64) = (0, 31_536_000);
pub const MAX_CONNS_RANGE: (u64, u64) = (0, 1_000_000);

/// The largest value nginx's `server` directive accepts for any parameter
/// (`NGX_MAX_INT_T_VALUE`: `ngx_atoi` and `ngx_parse_time` stop there).
pub const CONFIG_MAX: u64 = i64::MAX as u64;

/// The most the weights of one peer list (the primaries, or the backups)
/// may total, through the APIs and in a state file.
///
/// nginx adds weights up per request: `hash` and `ip_hash` divide by the
/// list's `total_weight` (an unsigned sum: 2^64 wraps to 0, and the worker
/// dies of SIGFPE), and smooth weighted round robin
/// (`ngx_http_upstream_get_peer`, also the fallback of `hash`, `ip_hash` and
/// `least_conn`) does `current_weight += effective_weight` and
/// `total += effective_weight` in signed `ngx_int_t`, then
/// `best->current_weight -= total`. With T the list's total weight:
/// `total` <= T, since `effective_weight` <= `weight`. While the set of
/// peers and their weights stay fixed, the current weights sum to 0 (each
/// request adds `total` and takes it back from the chosen peer, the
/// largest), which keeps each within (-T, T); so `current_weight +
/// effective_weight` < 2T and `current_weight - total` > -2T. The module
/// restarts every current weight at 0 whenever it changes a list's peers
/// or weights, so that sum starts at 0. Peers skipped for a while (down,
/// failed, at `max_conns`) keep their current weight while the others move
/// on; the sum over all peers stays 0, but the simple bound above does not
/// cover that case, so a further factor of 2 is kept in hand:
/// T <= i64::MAX / 4 keeps all of nginx's per-request arithmetic far from
/// overflow. (`least_conn`'s `conns * weight` products are unsigned:
/// they cannot fault.)
pub const MAX_TOTAL_WEIGHT: u64 = (i64::MAX / 4) as u64;

/// The primary servers' total weight (saturating: a table size, not
/// nginx's sum, which [`checked_total_weight`] checks).
pub fn primary_weight(servers: &[ServerSpec]) -> u64 {
    servers.iter().filter(|s| !s.backup).map(|s| s.weight).fold(0, u64::saturating_add)
}

/// The total of `weights` if it is at most [`MAX_TOTAL_WEIGHT`]. Neither
/// allocates nor panics: it is computed under the peers locks.
pub fn checked_total_weight(weights: impl IntoIterator<Item = u64>) -> Option<u64> {
    weights.into_iter().try_fold(0u64, |total, weight| total.checked_add(weight).filter(|&t| t <= MAX_TOTAL_WEIGHT))
}

/// Why a list's weights are refused; `servers` names the list ("the primary
/// servers"), `verb` is "total" or "would total".
pub fn total_weight_error(servers: &str, verb: &str) -> String {
    format!(
        "the weights of {servers} {verb} more than {MAX_TOTAL_WEIGHT}, the most nginx's balancers can add up without \
         overflow"
    )
}

/// The numeric parameters a request may set; `None` leaves a value as is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerParams {
    pub weight: Option<u64>,
    pub max_fails: Option<u64>,
    pub fail_timeout: Option<u64>,
    pub max_conns: Option<u64>,
}

impl PeerParams {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The parameter names, as used in queries, bodies and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Weight,
    MaxFails,
    FailTimeout,
    MaxConns,
}

impl Param {
    pub fn name(self) -> &'static str {
        match self {
            Param::Weight => "weight",
            Param::MaxFails => "max_fails",
            Param::FailTimeout => "fail_timeout",
            Param::MaxConns => "max_conns",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "weight" => Param::Weight,
            "max_fails" => Param::MaxFails,
            "fail_timeout" => Param::FailTimeout,
            "max_conns" => Param::MaxConns,
            _ => return None,
        })
    }

    fn range(self) -> (u64, u64) {
        match self {
            Param::Weight => WEIGHT_RANGE,
            Param::MaxFails => MAX_FAILS_RANGE,
            Param::FailTimeout => FAIL_TIMEOUT_RANGE,
            Param::MaxConns => MAX_CONNS_RANGE,
        }
    }

    /// Parses a value: a plain integer within the range; `fail_timeout` also
    /// takes nginx's time suffixes `s`, `m`, `h`, `d`.
    pub fn parse_value(self, text: &str) -> Result<u64, ApiError> {
        let (min, max) = self.range();
        let unit_error = || {
            let what = if self == Param::FailTimeout { "a number of seconds" } else { "an integer" };
            ApiError::bad_request("invalid_parameter", format!("{} must be {what} from {min} to {max}", self.name()))
        };
        let value = match self {
            Param::FailTimeout => parse_seconds(text),
            _ => parse_integer(text),
        };
        match value {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(unit_error()),
        }
    }

    /// Parses a value as nginx's `server` directive does (what a
    /// configuration, and so a state file, may hold): integers of any
    /// length up to [`CONFIG_MAX`], `weight` at least 1; `fail_timeout`
    /// also in nginx's time syntax.
    pub fn parse_config_value(self, text: &str) -> Result<u64, String> {
        let min = u64::from(self == Param::Weight);
        let value = match self {
            Param::FailTimeout => parse_config_seconds(text),
            _ => parse_config_integer(text),
        };
        match value {
            Some(v) if (min..=CONFIG_MAX).contains(&v) => Ok(v),
            _ => Err(format!("{} must be an integer from {min} to {CONFIG_MAX}", self.name())),
        }
    }

    pub fn set(self, params: &mut PeerParams, value: u64) {
        let slot = match self {
            Param::Weight => &mut params.weight,
            Param::MaxFails => &mut params.max_fails,
            Param::FailTimeout => &mut params.fail_timeout,
            Param::MaxConns => &mut params.max_conns,
        };
        *slot = Some(value);
    }

    pub fn get(self, params: &PeerParams) -> Option<u64> {
        match self {
            Param::Weight => params.weight,
            Param::MaxFails => params.max_fails,
            Param::FailTimeout => params.fail_timeout,
            Param::MaxConns => params.max_conns,
        }
    }

    pub const ALL: [Param; 4] = [Param::Weight, Param::MaxFails, Param::FailTimeout, Param::MaxConns];
}

fn parse_integer(text: &str) -> Option<u64> {
    if text.len() > 12 {
        return None;
    }
    parse_config_integer(text)
}

/// `ngx_atoi`: digits only, leading zeros allowed, no sign; None past u64.
fn parse_config_integer(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = text.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    digits.parse().ok()
}

/// nginx's time syntax in seconds (`ngx_parse_time(.., 1)`): parts such as
/// `1h 30m` or `1m30s`, units `y M w d h m s` from largest to smallest,
/// each once; a trailing number without a unit is seconds.
pub fn parse_seconds(text: &str) -> Option<u64> {
    const UNITS: [(char, u64); 7] =
        [('y', 31_536_000), ('M', 2_592_000), ('w', 604_800), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];
    let mut total: u64 = 0;
    let mut next_unit = 0; // index into UNITS of the largest unit still allowed
                           // Spaces only between parts, as in `1h 30m`.
    if text.is_empty() || text.starts_with(' ') || text.ends_with(' ') {
        return None;
    }
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let number = parse_integer(&rest[..digits_end])?;
        rest = &rest[digits_end..];
        let scale = match rest.chars().next() {
            None | Some(' ') => {
                // A bare number is seconds, and must come last.
                if !rest.trim_start().is_empty() {
                    return None;
                }
                next_unit = UNITS.len();
                1
            }
            Some(c) => {
                let i = UNITS.iter().position(|&(u, _)| u == c)?;
                if i < next_unit {
                    return None;
                }
                next_unit = i + 1;
                rest = &rest[1..];
                UNITS[i].1
            }
        };
        total = total.checked_add(number.checked_mul(scale)?)?;
        rest = rest.trim_start();
    }
    Some(total)
}

/// `ngx_parse_time(.., 1)` of nginx 1.22.1, as the `server` directive
/// reads `fail_timeout`: numbers of any length, each followed by a unit
/// `y M w d h m s` (from larger to smaller, each once; `y` only first) or
/// by a space (seconds, after which only digits may follow, which add up
/// as seconds too), or ending the text (seconds); spaces after a unit are
/// skipped; every figure at most [`CONFIG_MAX`].
fn parse_config_seconds(text: &str) -> Option<u64> {
    #[derive(Clone, Copy, PartialEq, PartialOrd)]
    enum Step {
        Start,
        Year,
        Month,
        Week,
        Day,
        Hour,
        Min,
        Sec,
        Last,
    }
    let within = |v: u64| (v <= CONFIG_MAX).then_some(v);
    let bytes = text.as_bytes();
    let (mut valid, mut value, mut total, mut step, mut i) = (false, 0u64, 0u64, Step::Start, 0);
    while let Some(&c) = bytes.get(i) {
        i += 1;
        if c.is_ascii_digit() {
            value = within(value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?)?;
            valid = true;
            continue;
        }
        let (next, scale) = match c {
            b'y' if step == Step::Start => (Step::Year, 31_536_000),
            b'M' if step < Step::Month => (Step::Month, 2_592_000),
            b'w' if step < Step::Week => (Step::Week, 604_800),
            b'd' if step < Step::Day => (Step::Day, 86_400),
            b'h' if step < Step::Hour => (Step::Hour, 3_600),
            b'm' if bytes.get(i) == Some(&b's') => return None, // milliseconds: not for seconds
            b'm' if step < Step::Min => (Step::Min, 60),
            b's' if step < Step::Sec => (Step::Sec, 1),
            b' ' if step < Step::Sec => (Step::Last, 1),
            _ => return None,
        };
        step = next;
        total = within(total.checked_add(value.checked_mul(scale)?)?)?;
        value = 0;
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    if !valid {
        return None;
    }
    within(total.checked_add(value)?)
}

/// A complete server, as added by the APIs or read from a state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub address: Address,
    pub weight: u64,
    pub max_fails: u64,
    pub fail_timeout: u64,
    pub max_conns: u64,
    pub backup: bool,
    pub down: bool,
    /// Its NGINX Plus API server ID, where one was given (state files keep
    /// it as a comment, see [`crate::plus::ids`]); None: the next free one.
    pub id: Option<u64>,
}

impl ServerSpec {
    /// A server with nginx's default parameters.
    pub fn new(address: Address) -> Self {
        Self {
            address,
            weight: DEFAULT_WEIGHT,
            max_fails: DEFAULT_MAX_FAILS,
            fail_timeout: DEFAULT_FAIL_TIMEOUT,
            max_conns: 0,
            backup: false,
            down: false,
            id: None,
        }
    }

    /// Overrides the parameters that `params` sets.
    pub fn with_params(mut self, params: &PeerParams) -> Self {
        self.weight = params.weight.unwrap_or(self.weight);
        self.max_fails = params.max_fails.unwrap_or(self.max_fails);
        self.fail_timeout = params.fail_timeout.unwrap_or(self.fail_timeout);
        self.max_conns = params.max_conns.unwrap_or(self.max_conns);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_limits() {
        assert_eq!(Param::Weight.parse_value("10").unwrap(), 10);
        assert_eq!(Param::Weight.parse_value("1000000").unwrap(), 1_000_000);
        for bad in ["0", "-1", "1000001", "", "abc", "1.5", " 1", "99999999999999999999999"] {
            let e = Param::Weight.parse_value(bad).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.text, "weight must be an integer from 1 to 1000000", "{bad}");
        }
    }

    #[test]
    fn zero_is_valid_where_nginx_allows_it() {
        assert_eq!(Param::MaxFails.parse_value("0").unwrap(), 0);
        assert_eq!(Param::MaxConns.parse_value("0").unwrap(), 0);
        assert_eq!(Param::FailTimeout.parse_value("0").unwrap(), 0);
    }

    #[test]
    fn fail_timeout_takes_time_units() {
        assert_eq!(Param::FailTimeout.parse_value("5").unwrap(), 5);
        assert_eq!(Param::FailTimeout.parse_value("5s").unwrap(), 5);
        assert_eq!(Param::FailTimeout.parse_value("2m").unwrap(), 120);
        assert_eq!(Param::FailTimeout.parse_value("1h").unwrap(), 3600);
        assert!(Param::FailTimeout.parse_value("s").is_err());
        assert!(Param::FailTimeout.parse_value("366d").is_err());
        assert_eq!(Param::FailTimeout.parse_value("1w").unwrap(), 604_800);
        assert_eq!(Param::FailTimeout.parse_value("1M").unwrap(), 2_592_000);
        assert_eq!(Param::FailTimeout.parse_value("1y").unwrap(), 31_536_000);
        assert_eq!(Param::FailTimeout.parse_value("1m30s").unwrap(), 90);
        assert_eq!(Param::FailTimeout.parse_value("1h 30m").unwrap(), 5400);
        assert_eq!(Param::FailTimeout.parse_value("1m 5").unwrap(), 65);
        for bad in ["500ms", "30s1m", "1s1s", "5 5", "1x", "", " ", "1h-", " 1", "1 ", "1s "] {
            assert!(Param::FailTimeout.parse_value(bad).is_err(), "{bad}");
        }
        assert!(Param::MaxFails.parse_value("5s").is_err());
    }

    #[test]
    fn config_values_reach_nginx_limits() {
        for p in Param::ALL {
            assert_eq!(p.parse_config_value("9223372036854775807"), Ok(CONFIG_MAX), "{}", p.name());
            assert_eq!(p.parse_config_value("0009223372036854775807"), Ok(CONFIG_MAX), "{}", p.name());
            assert_eq!(p.parse_config_value("2000000"), Ok(2_000_000), "{}", p.name());
            for bad in ["9223372036854775808", "18446744073709551616", "", "-1", "+1", "1.5", "x"] {
                let e = p.parse_config_value(bad).unwrap_err();
                assert!(e.ends_with("to 9223372036854775807"), "{} {bad}: {e}", p.name());
            }
        }
        assert!(Param::Weight.parse_config_value("0").is_err());
        assert_eq!(Param::MaxFails.parse_config_value("0"), Ok(0));
        assert_eq!(Param::FailTimeout.parse_config_value("0"), Ok(0));
        assert_eq!(Param::FailTimeout.parse_config_value("2m"), Ok(120));
        assert_eq!(Param::FailTimeout.parse_config_value("9999y"), Ok(9999 * 31_536_000));
        assert!(Param::MaxConns.parse_config_value("2m").is_err());
    }

    /// `ngx_parse_time(.., 1)`, case by case (item 3 of the review: numbers
    /// of more than 12 digits used to be refused).
    #[test]
    fn config_seconds_follow_ngx_parse_time() {
        let ok = [
            ("1000000000000s", 1_000_000_000_000),
            ("0000000000001s", 1),
            ("1000000000000", 1_000_000_000_000),
            ("9223372036854775807", CONFIG_MAX),
            ("9223372036854775807s", CONFIG_MAX),
            ("292471208677y", 292_471_208_677 * 31_536_000),
            ("1y1M1w1d1h1m1s", 31_536_000 + 2_592_000 + 604_800 + 86_400 + 3_600 + 60 + 1),
            ("1h 30m", 5_400),
            ("1h  30", 3_630),
            ("1 5", 6),
            ("1 ", 1),
            (" 1", 1),
            ("1s ", 1),
            ("0", 0),
        ];
        for (text, seconds) in ok {
            assert_eq!(parse_config_seconds(text), Some(seconds), "{text}");
            assert_eq!(Param::FailTimeout.parse_config_value(text), Ok(seconds), "{text}");
        }
        for bad in [
            "",
            " ",
            "s",
            "1ms",
            "1s1s",
            "1m1h",
            "1d1y",
            "1 1s",
            "1 1 1",
            "1x",
            "-1",
            "9223372036854775808",
            "292471208678y",
            "9223372036854775807s1",
            "1.5",
        ] {
            assert_eq!(parse_config_seconds(bad), None, "{bad}");
        }
        // the APIs keep their stricter rules
        assert!(Param::FailTimeout.parse_value("1000000000000s").is_err());
        assert!(Param::FailTimeout.parse_value("1 5").is_err());
    }

    #[test]
    fn total_weight_is_checked() {
        assert_eq!(MAX_TOTAL_WEIGHT, 2_305_843_009_213_693_951);
        assert_eq!(checked_total_weight([]), Some(0));
        assert_eq!(checked_total_weight([1, 2, 3]), Some(6));
        assert_eq!(checked_total_weight([MAX_TOTAL_WEIGHT]), Some(MAX_TOTAL_WEIGHT));
        assert_eq!(checked_total_weight([MAX_TOTAL_WEIGHT - 1, 1]), Some(MAX_TOTAL_WEIGHT));
        assert_eq!(checked_total_weight([MAX_TOTAL_WEIGHT, 1]), None);
        assert_eq!(checked_total_weight([CONFIG_MAX]), None);
        // the sums that wrap nginx's unsigned total to 0 and 3
        assert_eq!(checked_total_weight([CONFIG_MAX, CONFIG_MAX, 2]), None);
        assert_eq!(checked_total_weight([CONFIG_MAX, CONFIG_MAX, 5]), None);
        assert_eq!(checked_total_weight([u64::MAX, 1]), None);
        assert_eq!(
            total_weight_error("the backup servers", "total"),
            "the weights of the backup servers total more than 2305843009213693951, the most nginx's balancers can \
             add up without overflow"
        );
    }

    #[test]
    fn spec_takes_defaults_and_overrides() {
        let a = Address::parse("127.0.0.1:1").unwrap();
        let s = ServerSpec::new(a).with_params(&PeerParams { weight: Some(3), ..Default::default() });
        assert_eq!((s.weight, s.max_fails, s.fail_timeout, s.max_conns), (3, 1, 10, 0));
    }
}

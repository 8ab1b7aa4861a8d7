//! The load-balancing methods, one enum for all of them: the balancer an
//! `upstream {}` block of the configuration uses (the module classifies it
//! at start), the one a dyups body asks for, the one the dyups registry
//! keeps in shared memory ([`Balancer::code`]) and the one a state file
//! writes ([`Balancer::directive`]).
//!
//! Whether run-time changes are safe depends on the balancer. On nginx
//! 1.22: round robin and `least_conn` read the peer list on every request;
//! `ip_hash` and plain `hash` walk it by position on every request; but
//! `hash ... consistent` computes its points once (adding a peer would
//! never give it traffic, weights are ignored), and `random` caches a table
//! of peer pointers sized by the peer count on a worker's first request
//! (adding or removing a peer afterwards would make it read past that table
//! or use a freed peer). Those two only accept changes that do not alter
//! the set of peers or their weights there. From nginx 1.27.3 on, both
//! rebuild their tables in each worker when the list's generation moves,
//! and follow every change. Neither does a balancer this module
//! does not know (another module's): it may keep its own copy of the peers.

use crate::peer::MAX_TOTAL_WEIGHT;

/// The load-balancing method of an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balancer {
    RoundRobin,
    LeastConn,
    IpHash,
    /// `hash KEY [consistent];` with KEY kept as written (`$host$uri`);
    /// empty for an upstream of the configuration, whose key nginx compiled.
    Hash {
        key: String,
        consistent: bool,
    },
    Random,
    /// `random two [least_conn];` (nginx's only method for two is
    /// least_conn: both spellings pick the same way, and are kept as written).
    RandomTwo {
        least_conn: bool,
    },
    /// A balancer this module does not know (another module's): it may
    /// keep its own copy of the peers, so the set of peers and their
    /// weights stay fixed; backups are listed only if it declared them.
    /// Only found in the configuration, never asked for.
    Other {
        backup: bool,
    },
}

/// Largest consistent-hash points table a change may make each worker
/// build: nginx's `ngx_http_upstream_init_chash` (and from 1.27.3 its
/// rebuild after each change of the set or of a weight) allocates, in
/// every worker, 160 points of
/// 16 bytes (hash and server pointer, 64-bit) per unit of the primary
/// servers' total weight (down ones included), after an 8-byte count, and
/// sorts them: weight=1000000 took a minute and 2.5 GB per worker.
pub const MAX_CHASH_TABLE: u64 = 64 * 1024 * 1024;

/// The primary servers' total weight whose points table fits
/// [`MAX_CHASH_TABLE`]: 26214.
pub const MAX_CHASH_WEIGHT: u64 = (MAX_CHASH_TABLE - 8) / CHASH_BYTES_PER_WEIGHT;

const CHASH_BYTES_PER_WEIGHT: u64 = 160 * 16;

/// Why a consistent-hash table for primary servers weighing `total` is
/// refused (`total` > [`MAX_CHASH_WEIGHT`]): "total weight N would take M
/// MiB, more than ...".
pub fn chash_table_refusal(total: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    let bytes = total.saturating_mul(CHASH_BYTES_PER_WEIGHT).saturating_add(8);
    format!(
        "total weight {total} would take {} MiB, more than the {} MiB allowed (total weight at most {MAX_CHASH_WEIGHT})",
        bytes.div_ceil(MIB),
        MAX_CHASH_TABLE / MIB
    )
}

impl Balancer {
    /// The name messages about changes use.
    pub fn name(&self) -> &'static str {
        match self {
            Balancer::Hash { consistent: true, .. } => "consistent hash",
            Balancer::Other { .. } => "third-party",
            _ => self.directive_name(),
        }
    }

    /// The directive's own word (`hash` for both hashes), as dyups body
    /// errors name it.
    pub fn directive_name(&self) -> &'static str {
        match self {
            Balancer::RoundRobin => "round-robin",
            Balancer::LeastConn => "least_conn",
            Balancer::IpHash => "ip_hash",
            Balancer::Hash { .. } => "hash",
            Balancer::Random | Balancer::RandomTwo { .. } => "random",
            Balancer::Other { .. } => "third-party",
        }
    }

    /// One of nginx's own balancers (any but another module's): they keep
    /// nginx's round-robin peer list in `peer.data`, and its data in each
    /// request's.
    pub fn is_nginx_own(&self) -> bool {
        !matches!(self, Balancer::Other { .. })
    }

    /// `random` or `random two`.
    pub fn is_random(&self) -> bool {
        matches!(self, Balancer::Random | Balancer::RandomTwo { .. })
    }

    pub fn allows_backup(&self) -> bool {
        match self {
            Balancer::RoundRobin | Balancer::LeastConn => true,
            Balancer::Other { backup } => *backup,
            _ => false,
        }
    }

    /// Whether peers may be added, removed or re-weighted at run time;
    /// `tables_follow`: nginx rebuilds the tables of `hash ... consistent`
    /// and `random` when the set of peers changes (nginx 1.27.3 and later).
    pub fn follows_set_changes(&self, tables_follow: bool) -> bool {
        match self {
            Balancer::Hash { consistent: true, .. } | Balancer::Random | Balancer::RandomTwo { .. } => tables_follow,
            Balancer::Other { .. } => false,
            _ => true,
        }
    }

    /// Whether the primary list's `single` flag must stay off while a
    /// backup list is linked, even an emptied one. Before nginx 1.27.3
    /// (`tables_follow` false) `hash` and `ip_hash` read `single` under the
    /// list's read lock and then call round robin, which reads it again
    /// under the write lock: a change between the two (a backup added
    /// beside a lone primary, or a primary and then a backup) sent a
    /// request that took the single path to the backups, over which the
    /// balancer then hashed (its retries counted as if it never hashed),
    /// dividing by their total weight, 0 once the last backup was removed:
    /// the worker died of SIGFPE (hunt 32, review 30). nginx itself sets
    /// `single` off where the configuration has backups; with it off while
    /// a backup list exists, `single` can no longer change under such a
    /// request (the backup list, once linked, stays). Stock nginx never
    /// changes `single` while requests run.
    pub fn keeps_single_off_beside_backups(&self, tables_follow: bool) -> bool {
        !tables_follow && matches!(self, Balancer::IpHash | Balancer::Hash { .. })
    }

    /// The most the weights of the primary servers may total after a
    /// change that raises their total: [`MAX_CHASH_WEIGHT`] for `hash ...
    /// consistent` where nginx rebuilds its points table at each change
    /// (`tables_follow`, nginx 1.27.3 and later), else nginx's own
    /// [`MAX_TOTAL_WEIGHT`]. (A configuration may total more: nginx built
    /// that table once; a change that does not raise the total is left to
    /// it.)
    pub fn max_primary_weight(&self, tables_follow: bool) -> u64 {
        match self {
            Balancer::Hash { consistent: true, .. } if tables_follow => MAX_CHASH_WEIGHT,
            _ => MAX_TOTAL_WEIGHT,
        }
    }

    /// The one-line reason why adding, removing or re-weighting peers of
    /// `upstream` is refused (for balancers that do not follow them).
    pub fn set_change_refusal(&self, upstream: &str) -> String {
        let why = match self {
            Balancer::Other { .. } => {
                "uses a balancer this module does not know (another module's), which may keep its own copy \
                 of the peers"
                    .to_owned()
            }
            _ => format!(
                "uses the {} balancer, which computes its table once at start on this nginx (before 1.27.3)",
                self.name()
            ),
        };
        format!(
            "upstream \"{upstream}\" {why}: adding, removing or re-weighting peers is refused (down, up, max_fails, \
             fail_timeout and max_conns work)"
        )
    }

    /// The statement as nginx's configuration writes it (None for round
    /// robin, which has none, and for another module's balancer).
    pub fn directive(&self) -> Option<String> {
        match self {
            Balancer::RoundRobin | Balancer::Other { .. } => None,
            Balancer::LeastConn => Some("least_conn".into()),
            Balancer::IpHash => Some("ip_hash".into()),
            Balancer::Hash { key, consistent: false } => Some(format!("hash {key}")),
            Balancer::Hash { key, consistent: true } => Some(format!("hash {key} consistent")),
            Balancer::Random => Some("random".into()),
            Balancer::RandomTwo { least_conn: false } => Some("random two".into()),
            Balancer::RandomTwo { least_conn: true } => Some("random two least_conn".into()),
        }
    }

    /// The byte the dyups registry stores (the hash key is stored apart).
    /// These values are part of the registry's shared-memory layout.
    pub fn code(&self) -> u8 {
        match self {
            Balancer::RoundRobin => 0,
            Balancer::LeastConn => 1,
            Balancer::IpHash => 2,
            Balancer::Hash { consistent: false, .. } => 3,
            Balancer::Hash { consistent: true, .. } => 4,
            Balancer::Random => 5,
            Balancer::RandomTwo { least_conn: false } => 6,
            Balancer::RandomTwo { least_conn: true } => 7,
            Balancer::Other { backup: false } => 8,
            Balancer::Other { backup: true } => 9,
        }
    }

    /// The balancer [`Balancer::code`] stored, with its hash key.
    pub fn from_code(code: u8, key: &str) -> Option<Balancer> {
        let key = key.to_owned();
        Some(match code {
            0 => Balancer::RoundRobin,
            1 => Balancer::LeastConn,
            2 => Balancer::IpHash,
            3 => Balancer::Hash { key, consistent: false },
            4 => Balancer::Hash { key, consistent: true },
            5 => Balancer::Random,
            6 => Balancer::RandomTwo { least_conn: false },
            7 => Balancer::RandomTwo { least_conn: true },
            8 => Balancer::Other { backup: false },
            9 => Balancer::Other { backup: true },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chash_limit_where_tables_follow() {
        assert_eq!(MAX_CHASH_WEIGHT, 26214);
        let chash = Balancer::Hash { key: String::new(), consistent: true };
        assert_eq!(chash.max_primary_weight(true), 26214);
        assert_eq!(chash.max_primary_weight(false), MAX_TOTAL_WEIGHT);
        assert_eq!(Balancer::Random.max_primary_weight(true), MAX_TOTAL_WEIGHT);
        assert_eq!(
            chash_table_refusal(26215),
            "total weight 26215 would take 65 MiB, more than the 64 MiB allowed (total weight at most 26214)"
        );
        assert!(chash_table_refusal(u64::MAX)
            .starts_with("total weight 18446744073709551615 would take 17592186044416 MiB"));
    }

    #[test]
    fn hashes_keep_single_off_beside_backups_before_tables_follow() {
        let hash = Balancer::Hash { key: "$host".into(), consistent: false };
        assert!(hash.keeps_single_off_beside_backups(false));
        assert!(Balancer::IpHash.keeps_single_off_beside_backups(false));
        assert!(!hash.keeps_single_off_beside_backups(true));
        assert!(!Balancer::IpHash.keeps_single_off_beside_backups(true));
        for other in [Balancer::RoundRobin, Balancer::LeastConn, Balancer::Random, Balancer::Other { backup: true }] {
            assert!(!other.keeps_single_off_beside_backups(false), "{other:?}");
        }
    }

    fn all() -> Vec<Balancer> {
        let key = || "$host".to_string();
        vec![
            Balancer::RoundRobin,
            Balancer::LeastConn,
            Balancer::IpHash,
            Balancer::Hash { key: key(), consistent: false },
            Balancer::Hash { key: key(), consistent: true },
            Balancer::Random,
            Balancer::RandomTwo { least_conn: false },
            Balancer::RandomTwo { least_conn: true },
            Balancer::Other { backup: false },
            Balancer::Other { backup: true },
        ]
    }

    #[test]
    fn codes_round_trip_and_keep_their_values() {
        for (code, balancer) in all().into_iter().enumerate() {
            assert_eq!(balancer.code(), code as u8);
            assert_eq!(Balancer::from_code(balancer.code(), "$host"), Some(balancer));
        }
        assert_eq!(Balancer::from_code(10, ""), None);
    }

    #[test]
    fn which_balancers_follow_changes() {
        let follows: Vec<bool> = all().iter().map(|b| b.follows_set_changes(false)).collect();
        assert_eq!(follows, [true, true, true, true, false, false, false, false, false, false]);
        let follows: Vec<bool> = all().iter().map(|b| b.follows_set_changes(true)).collect();
        assert_eq!(follows, [true, true, true, true, true, true, true, true, false, false]);
        let backup: Vec<bool> = all().iter().map(Balancer::allows_backup).collect();
        assert_eq!(backup, [true, true, false, false, false, false, false, false, false, true]);
    }

    #[test]
    fn names() {
        let names: Vec<&str> = all().iter().map(Balancer::name).collect();
        assert_eq!(
            names,
            [
                "round-robin",
                "least_conn",
                "ip_hash",
                "hash",
                "consistent hash",
                "random",
                "random",
                "random",
                "third-party",
                "third-party"
            ]
        );
        assert_eq!(Balancer::Hash { key: String::new(), consistent: true }.directive_name(), "hash");
    }
}

//! The declarative replace: what turns an upstream's servers into a
//! desired list. Servers are matched by address; one that stays keeps its
//! peer (its ID, counters and balancing state) and only has the
//! parameters that differ updated; one that moves between the primary and
//! the backup list is removed and added again (NGINX Plus cannot change a
//! server's `backup` either).

use std::collections::{HashMap, HashSet};

use crate::address::Address;
use crate::peer::{PeerParams, ServerSpec};

/// A server as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub id: u64,
    pub spec: ServerSpec,
}

/// A parameter change of a server that stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub id: u64,
    pub address: Address,
    pub params: PeerParams,
    pub down: Option<bool>,
}

/// What a replace does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// IDs of the servers to remove, sorted.
    pub remove: Vec<u64>,
    /// Sorted by ID.
    pub update: Vec<Update>,
    /// New servers, in the order of the desired list.
    pub add: Vec<ServerSpec>,
}

impl Plan {
    /// Whether the replace changes nothing.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.update.is_empty() && self.add.is_empty()
    }

    /// Whether it adds, removes or re-weights servers (what some balancers
    /// cannot follow at run time).
    pub fn changes_set_or_weights(&self) -> bool {
        !self.remove.is_empty() || !self.add.is_empty() || self.update.iter().any(|u| u.params.weight.is_some())
    }
}

/// The plan that makes `current` into `desired` (addresses in `desired`
/// are distinct): O(n log n) work for lists of thousands.
pub fn plan(current: &[Current], desired: &[ServerSpec]) -> Plan {
    let mut plan = Plan::default();
    let wanted: HashMap<&Address, &ServerSpec> = desired.iter().map(|d| (&d.address, d)).collect();
    let staying: HashSet<(&Address, bool)> = current.iter().map(|c| (&c.spec.address, c.spec.backup)).collect();
    for c in current {
        match wanted.get(&c.spec.address) {
            Some(d) if d.backup == c.spec.backup => {
                if let Some(update) = update_of(c, d) {
                    plan.update.push(update);
                }
            }
            _ => plan.remove.push(c.id),
        }
    }
    for d in desired {
        if !staying.contains(&(&d.address, d.backup)) {
            plan.add.push(d.clone());
        }
    }
    plan.remove.sort_unstable();
    plan.update.sort_unstable_by_key(|u| u.id);
    plan
}

fn update_of(c: &Current, d: &ServerSpec) -> Option<Update> {
    let differs = |now: u64, wanted: u64| (now != wanted).then_some(wanted);
    let params = PeerParams {
        weight: differs(c.spec.weight, d.weight),
        max_fails: differs(c.spec.max_fails, d.max_fails),
        fail_timeout: differs(c.spec.fail_timeout, d.fail_timeout),
        max_conns: differs(c.spec.max_conns, d.max_conns),
    };
    let down = (c.spec.down != d.down).then_some(d.down);
    (!params.is_empty() || down.is_some()).then(|| Update { id: c.id, address: c.spec.address.clone(), params, down })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(addr: &str, weight: u64) -> ServerSpec {
        let mut s = ServerSpec::new(Address::parse(addr).unwrap());
        s.weight = weight;
        s
    }

    fn current(list: &[(u64, ServerSpec)]) -> Vec<Current> {
        list.iter().map(|(id, spec)| Current { id: *id, spec: spec.clone() }).collect()
    }

    #[test]
    fn same_list_is_a_no_op() {
        let now = current(&[(0, spec("127.0.0.1:1", 1)), (3, spec("127.0.0.1:2", 2))]);
        let p = plan(&now, &[spec("127.0.0.1:2", 2), spec("127.0.0.1:1", 1)]);
        assert!(p.is_empty());
        assert!(!p.changes_set_or_weights());
    }

    #[test]
    fn adds_removes_and_updates() {
        let now = current(&[(0, spec("127.0.0.1:1", 1)), (1, spec("127.0.0.1:2", 1)), (2, spec("127.0.0.1:3", 1))]);
        let mut down = spec("127.0.0.1:3", 1);
        down.down = true;
        down.max_conns = 5;
        let p = plan(&now, &[spec("127.0.0.1:4", 1), spec("127.0.0.1:1", 3), down]);
        assert_eq!(p.remove, vec![1]);
        assert_eq!(p.add, vec![spec("127.0.0.1:4", 1)]);
        assert_eq!(p.update.len(), 2);
        assert_eq!(p.update[0].params, PeerParams { weight: Some(3), ..Default::default() });
        assert_eq!((p.update[1].id, p.update[1].down), (2, Some(true)));
        assert_eq!(p.update[1].params, PeerParams { max_conns: Some(5), ..Default::default() });
        assert!(p.changes_set_or_weights());
    }

    #[test]
    fn backup_moves_are_remove_and_add() {
        let now = current(&[(0, spec("127.0.0.1:1", 1)), (1, spec("127.0.0.1:2", 1))]);
        let mut b = spec("127.0.0.1:2", 1);
        b.backup = true;
        let p = plan(&now, &[spec("127.0.0.1:1", 1), b.clone()]);
        assert_eq!((p.remove, p.add, p.update), (vec![1], vec![b], vec![]));
    }

    #[test]
    fn parameter_only_changes_keep_the_set() {
        let now = current(&[(0, spec("127.0.0.1:1", 1))]);
        let mut s = spec("127.0.0.1:1", 1);
        s.max_fails = 3;
        let p = plan(&now, &[s]);
        assert!(!p.is_empty());
        assert!(!p.changes_set_or_weights());
    }
}

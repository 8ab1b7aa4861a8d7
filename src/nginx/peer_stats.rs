//! Per-peer statistics and server IDs, in the peer's own shared memory.
//!
//! nginx built with `--with-compat` (Debian's and nginx.org's packages)
//! reserves spare words at the end of every `ngx_http_upstream_rr_peer_t`
//! (`NGX_COMPAT_BEGIN(32)` up to 1.27.2, `NGX_COMPAT_BEGIN(15)` from
//! 1.27.3 on), which no code of open-source nginx reads or writes, and
//! which every peer has: the zone module copies configuration peers with
//! `memcpy` from zeroed memory, the module allocates its own zeroed
//! ([`crate::nginx::peer_list::alloc_peer`]). The module keeps the NGINX
//! Plus API's record of a peer there ([`word`], 15 words): its server ID
//! and its counters. So they are created with the peer, survive every
//! change that keeps the peer, and are freed with it: nothing to allocate,
//! look up or reclaim.
//!
//! Counting happens once per upstream attempt, in the request's
//! `peer.free` (wrapped by [`crate::zone::upstream::request_hook`] for zone upstreams
//! and by [`wrap_dyups_free`] for run-time ones), before the balancer's own
//! `free` runs: it is the last moment the request is sure to hold the peer
//! (its `conns` still counts the request, so a removed peer is not freed,
//! and a dyups list is held until the request ends), and nginx has filled
//! in the attempt's `u->state` (status, times, bytes) by then. Every
//! counter is an atomic add on the peer's words: no lock is taken, and
//! nothing is counted at all unless a location of the configuration has
//! `dynamic_upstream_api` or `dynamic_upstream_metrics` (the wrappers
//! without counting are installed then).

#![allow(clippy::disallowed_types)] // the wrapper layer: nginx's own structs (see clippy.toml)

use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use dynamic_upstream_core::plus::ids::MAX_ID;
use dynamic_upstream_core::plus::stats::{self, response_class, word};
use ngx::ffi::{
    ngx_http_upstream_free_round_robin_peer, ngx_http_upstream_rr_peer_data_t, ngx_http_upstream_rr_peer_t,
    ngx_http_upstream_rr_peers_t, ngx_http_upstream_t, ngx_peer_connection_t, ngx_uint_t, NGX_PEER_FAILED,
};

use crate::nginx::peer_lock::{LockedLists, LockedPeer};
use crate::nginx::version;

/// The spare words of a peer in the nginx this module is built for (they
/// end the struct).
const SPARE_WORDS: usize =
    (size_of::<ngx_http_upstream_rr_peer_t>() - offset_of!(ngx_http_upstream_rr_peer_t, spare)) / size_of::<u64>();
const _: () = assert!(word::COUNT <= SPARE_WORDS, "the record must fit this nginx's spare words");
const _: () = assert!(word::COUNT <= 15, "the record must fit the 15 spare words of nginx 1.27.3 and later");

/// Whether this cycle counts, i.e. has the NGINX Plus API or its metrics
/// (set by the master in init_module from the configuration, inherited by
/// the workers). Peers get server IDs only then.
static COUNTING: AtomicBool = AtomicBool::new(false);

pub fn set_counting(on: bool) {
    COUNTING.store(on, Relaxed);
}

pub fn counting() -> bool {
    COUNTING.load(Relaxed)
}

/// Word `i` of `peer`'s record.
///
/// # Safety
/// `peer` is a live peer (its memory stays mapped while the word is used).
pub unsafe fn at<'a>(peer: *mut ngx_http_upstream_rr_peer_t, i: usize) -> &'a AtomicU64 {
    // SAFETY: per the contract; the spare words are 8-byte aligned u64s
    // (i < COUNT <= SPARE_WORDS) only ever accessed atomically by this
    // module.
    unsafe { AtomicU64::from_ptr(ptr::addr_of_mut!((*peer).spare).cast::<u64>().add(i)) }
}

/// A copy of the peer's record (for [`crate::nginx::peer_list`]'s views).
pub fn record_of(peer: &ngx_http_upstream_rr_peer_t) -> dynamic_upstream_core::plus::PeerStats {
    let words: [u64; word::COUNT] = core::array::from_fn(|i| peer.spare[i]);
    dynamic_upstream_core::plus::PeerStats::from_words(&words)
}

/// The peer's server ID, if it has one.
///
/// # Safety
/// As for [`at`].
pub unsafe fn id_of(peer: *mut ngx_http_upstream_rr_peer_t) -> Option<u64> {
    // SAFETY: per the contract.
    unsafe { (at(peer, word::ID_UNAVAIL).load(Relaxed) & word::ID_MASK).checked_sub(1) }
}

/// Gives the peer `id` (at most [`MAX_ID`]: callers check), keeping its
/// `unavail` count.
///
/// # Safety
/// As for [`at`]; the peer's list is write-locked or not published yet.
pub unsafe fn set_id(peer: *mut ngx_http_upstream_rr_peer_t, id: u64) {
    // SAFETY: per the contract.
    let w = unsafe { at(peer, word::ID_UNAVAIL) };
    let _ = w.fetch_update(Relaxed, Relaxed, |old| Some(old & !word::ID_MASK | (id.min(MAX_ID) + 1)));
}

impl LockedPeer<'_> {
    /// Its server ID, if it has one.
    pub fn id(self) -> Option<u64> {
        // SAFETY: a LockedPeer is live while it can be used.
        unsafe { id_of(self.raw()) }
    }

    /// Gives it `id` (at most [`MAX_ID`]), keeping its `unavail` count.
    pub fn set_id(self, id: u64) {
        // SAFETY: as above; its lists are write-locked or reached by no
        // one else.
        unsafe { set_id(self.raw(), id) }
    }

    /// Copies `from`'s whole record (ID and counters) into this peer's;
    /// its `downtime` as read now (this peer is new to nginx: not
    /// unavailable, no stretch running).
    fn copy_record_from(self, from: LockedPeer<'_>) {
        for i in 0..word::COUNT {
            // SAFETY: both are live while they can be used.
            unsafe { at(self.raw(), i).store(at(from.raw(), i).load(Relaxed), Relaxed) };
        }
        // SAFETY: as above.
        unsafe {
            let (stored, downstart) =
                (at(from.raw(), word::DOWNTIME).load(Relaxed), at(from.raw(), word::DOWNSTART).load(Relaxed));
            let read = stats::downtime(stored, downstart, &passive_of(from.raw()), now_ms());
            at(self.raw(), word::DOWNTIME).store(read.total_ms, Relaxed);
            at(self.raw(), word::DOWNSTART).store(0, Relaxed);
        }
    }
}

/// Gives every peer of `lists` that has no ID the next free one, in list
/// order (first the primaries), after those the peers already have;
/// nothing when this cycle does not count. Once the IDs reach [`MAX_ID`]
/// (a state file may give one that high), the lowest free ID instead.
/// Bounded work without allocation (called under the lists' write locks).
pub fn ensure_ids(lists: &LockedLists<'_>, counters: &UpstreamCounters) {
    if counting() {
        give_ids(lists, counters);
    }
}

/// [`ensure_ids`], whether this cycle counts or not.
fn give_ids(lists: &LockedLists<'_>, counters: &UpstreamCounters) {
    let peers = || lists.peers();
    let mut next = counters.next_id.load(Relaxed);
    for id in peers().filter_map(|p| p.id()) {
        next = next.max(id.saturating_add(1));
    }
    for peer in peers() {
        if peer.id().is_some() {
            continue;
        }
        if next > MAX_ID {
            // Among as many candidates as there are peers plus one, one
            // is free: bounded work, only with IDs this high.
            let count = peers().count();
            let taken = |c: u64| peers().any(|p| p.id() == Some(c));
            if let Some(free) = (0..=MAX_ID).take(count + 1).find(|&c| !taken(c)) {
                peer.set_id(free);
            }
            continue;
        }
        peer.set_id(next);
        next += 1;
    }
    counters.next_id.store(next, Relaxed);
}

/// A new version of a run-time upstream (`new`, not published yet) takes
/// over from `old` (null when created): a server of the same address in
/// the same kind of list (primary or backup) keeps its ID and counters,
/// the k-th new server of an address taking the k-th old one's (in list
/// order); the others, and copies beyond the old list's, get new IDs
/// (unless the caller gave them one), from `old`'s next free ID on, so
/// that no ID is given twice. Requests that still hold `old` count into
/// its peers until they end: those counts are not carried over (README).
/// Sorts the new peers by name (then position) in `room` (reserved before
/// the lock), so that a list of N servers costs N log N, not N² (seconds
/// for 20,000 servers, every worker waiting on the lock). Allocates
/// nothing (called under the registry's lock).
///
/// # Safety
/// The caller holds the registry lock; `old` is null or the live list
/// `new` replaces (changed only under that lock); `new` is a live list
/// reached by no one else yet.
pub unsafe fn inherit(
    new: *mut ngx_http_upstream_rr_peers_t,
    new_counters: &UpstreamCounters,
    old: *mut ngx_http_upstream_rr_peers_t,
    old_counters: Option<&UpstreamCounters>,
    room: &mut InheritRoom,
) {
    // SAFETY: per the contract: no one else reaches `new`; `old` (which
    // requests may still use) keeps its links and its peers' names (a
    // run-time list never changes them once published: a change builds a
    // new list), and its view is used only to find peers by name and read
    // their atomic records.
    let (new, old) = unsafe { (LockedLists::assume(new), (!old.is_null()).then(|| LockedLists::assume(old))) };
    for backup in [false, true] {
        let (Some(list), Some(old_list)) = (new.list(backup), old.as_ref().and_then(|old| old.list(backup))) else {
            continue;
        };
        let by_name = &mut room.peers;
        by_name.clear();
        for (position, peer) in list.peers().enumerate() {
            if by_name.len() == by_name.capacity() {
                break; // never: the room was reserved for every server
            }
            by_name.push(NewPeerEntry { peer: peer.raw(), position, taken: 0 });
        }
        // SAFETY: the peers just taken from `list`, live for the call.
        let peer = |raw| unsafe { LockedPeer::assume(raw) };
        by_name.sort_unstable_by(|a, b| peer(a.peer).name().cmp(peer(b.peer).name()).then(a.position.cmp(&b.position)));
        for o in old_list.peers() {
            let name = o.name();
            let first = by_name.partition_point(|e| peer(e.peer).name() < name);
            // The first entry of a name's run counts the old peers of that
            // name seen so far: the next one gives its record to the next
            // new peer of the run (no walk of the run per old duplicate,
            // which cost duplicates² under the registry's lock, review 22).
            let Some(taken) = by_name.get(first).filter(|e| peer(e.peer).name() == name).map(|e| e.taken) else {
                continue;
            };
            by_name[first].taken += 1;
            let Some(entry) = by_name.get(first + taken).filter(|e| peer(e.peer).name() == name) else {
                continue; // more old copies of the name than new ones
            };
            let kept = peer(entry.peer);
            let given = kept.id();
            kept.copy_record_from(o);
            if let Some(id) = given {
                kept.set_id(id);
            }
        }
    }
    new_counters.next_id.store(old_counters.map_or(0, |c| c.next_id.load(Relaxed)), Relaxed);
    // A list whose servers have IDs gives its new ones IDs too, whether
    // this process counts or not: a worker a reload replaced, which still
    // finishes a change, does not count when the reload is the one that
    // turned statistics on (the master gave the kept lists IDs then); its
    // new servers would have none, listed as 0 (review 20).
    if counting() || old.as_ref().is_some_and(|old| old.peers().any(|p| p.id().is_some())) {
        give_ids(&new, new_counters);
    }
}

/// Room for [`inherit`]'s peers sorted by name, reserved before the
/// registry's lock is taken.
pub struct InheritRoom {
    peers: Vec<NewPeerEntry>,
}

/// A new peer in [`InheritRoom`]: its place in its list, and (in the first
/// entry of a name's run) how many old peers of that name gave theirs.
struct NewPeerEntry {
    peer: *mut ngx_http_upstream_rr_peer_t,
    position: usize,
    taken: usize,
}

impl InheritRoom {
    /// For a list of at most `servers` peers (primaries and backups).
    pub fn for_servers(servers: usize) -> Self {
        Self { peers: Vec::with_capacity(servers) }
    }
}

/// An upstream's next free server ID and its revision (the number that
/// moves on every change, sent as `ETag`); kept in the upstream's zone.
#[repr(C)]
#[derive(Default)]
pub struct UpstreamCounters {
    pub next_id: AtomicU64,
    pub revision: AtomicU64,
}

impl UpstreamCounters {
    /// Counters whose next free ID is `next_id` (revision 0).
    pub fn starting_at(next_id: u64) -> Self {
        Self { next_id: AtomicU64::new(next_id), revision: AtomicU64::new(0) }
    }

    /// A change was made (called under the lists' write locks).
    pub fn bump(&self) {
        self.revision.fetch_add(1, Relaxed);
    }

    pub fn revision(&self) -> u64 {
        self.revision.load(Relaxed)
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.load(Relaxed)
    }
}

/// Unix time in milliseconds, from nginx's cached time.
pub fn now_ms() -> u64 {
    // SAFETY: ngx_cached_time always points at one of nginx's time slots;
    // read volatile (the worker updates it between events).
    unsafe {
        let t = ptr::read_volatile(ptr::addr_of!(ngx::ffi::ngx_cached_time));
        (*t).sec as u64 * 1000 + (*t).msec as u64
    }
}

/// The round-robin data of a request's balancer whose attempt is ending:
/// `data` is it (every built-in balancer keeps it first in its data), or
/// `keepalive`'s data holds it as its third word; `current` is the peer
/// the attempt used, and `pc->name` still points at that peer's name.
///
/// # Safety
/// `pc` and `data` are what nginx passes to `peer.free` of a live request
/// whose balancer is a built-in one (with keepalive or not).
unsafe fn attempt_peer(
    pc: *mut ngx_peer_connection_t,
    data: *mut c_void,
    u: *mut ngx_http_upstream_t,
) -> Option<(*mut ngx_http_upstream_rr_peer_t, *mut ngx_http_upstream_rr_peer_data_t)> {
    // SAFETY: per the contract; every layout read is at least three words.
    unsafe {
        let picked = |rrp: *mut ngx_http_upstream_rr_peer_data_t| {
            let current = (*rrp).current;
            (!current.is_null() && same_name(ptr::addr_of_mut!((*current).name), (*pc).name)).then_some((current, rrp))
        };
        if data.is_null() {
            return None;
        }
        let words = data.cast::<*mut c_void>();
        // keepalive: { conf, upstream, data, ... }
        if *words.add(1) == u.cast() && !(*words.add(2)).is_null() {
            if let Some(peer) = picked((*words.add(2)).cast()) {
                return Some(peer);
            }
        }
        picked(data.cast())
    }
}

/// Whether `name` is the peer's `name` (itself, or from nginx 1.27.3 on
/// the copy nginx makes in the request of a zone upstream's peer).
///
/// # Safety
/// Both are null or valid strings.
unsafe fn same_name(peer_name: *mut ngx::ffi::ngx_str_t, name: *mut ngx::ffi::ngx_str_t) -> bool {
    // SAFETY: per the contract.
    unsafe {
        peer_name == name
            || (!name.is_null()
                && (*peer_name).len == (*name).len
                && core::slice::from_raw_parts((*peer_name).data, (*peer_name).len)
                    == core::slice::from_raw_parts((*name).data, (*name).len))
    }
}

/// Counts the attempt that `peer.free(pc, data, state)` ends.
///
/// # Safety
/// Called at the start of a request's `peer.free` (see the module
/// comment), whose balancer is a built-in one.
pub unsafe fn count(pc: *mut ngx_peer_connection_t, data: *mut c_void, state: ngx_uint_t) {
    // SAFETY: per the contract; the peer stays allocated while the request
    // still counts in its conns (or holds its dyups list).
    unsafe {
        let u = pc.byte_sub(offset_of!(ngx_http_upstream_t, peer)).cast::<ngx_http_upstream_t>();
        let Some((peer, rrp)) = attempt_peer(pc, data, u) else { return };
        let add = |i: usize, n: u64| {
            at(peer, i).fetch_add(n, Relaxed);
        };
        let now = now_ms();
        add(word::REQUESTS, 1);
        // When nginx picked the server: the attempt's start (`start_time`,
        // set as it connects, before the balancer's `get`), not its end,
        // which a long request put seconds or minutes later (hunt 38 F3);
        // the latest pick, whichever attempt ends last (a long one ending
        // after a later, shorter one moved it back, review 49).
        let elapsed = ngx::ffi::ngx_current_msec.wrapping_sub((*u).start_time);
        at(peer, word::SELECTED).fetch_max(now.saturating_sub(elapsed as u64), Relaxed);
        let s = (*u).state;
        if !s.is_null() {
            add(word::SENT, (*s).bytes_sent.max(0) as u64);
            add(word::RECEIVED, (*s).bytes_received.max(0) as u64);
            let class = response_class((*s).status as u64);
            if let (Some(class), true) = (class, (*s).header_time != ngx::ffi::ngx_msec_t::MAX) {
                let response_time =
                    if (*s).response_time == ngx::ffi::ngx_msec_t::MAX { elapsed } else { (*s).response_time };
                add(word::RESPONSES + class, 1);
                add(word::HEADER_TIME, (*s).header_time as u64);
                add(word::RESPONSE_TIME, response_time as u64);
            }
        }
        let failed = state as u32 & NGX_PEER_FAILED != 0;
        if failed {
            add(word::FAILS, 1);
        }
        // The stretch of `unavail` (`downtime`, `downstart`): nothing to
        // do for an attempt that neither fails nor makes nginx reset
        // `fails` (one read of `fails` on the usual path).
        if failed || ptr::read_volatile(ptr::addr_of!((*peer).fails)) != 0 {
            // nginx never makes the only server of a list unavailable (its
            // free returns first, resetting fails from 1.27.3 on; hunt 38).
            let peers = (*rrp).peers;
            let list = if peers.is_null() || ptr::read_volatile(peers).single() == 0 {
                stats::List::Several
            } else if version::SINGLE_FREE_RESETS_FAILS {
                stats::List::OnlyResetsFails
            } else {
                stats::List::OnlyKeepsFails
            };
            change_stretch(peer, |downstart, p| stats::fold(downstart, p, failed, list, now));
        }
    }
}

/// nginx's fields of `peer` that decide whether round robin skips it.
///
/// # Safety
/// `peer` is live; its fields are read as they are (nginx changes them
/// under the peer's lock, which is not taken: each is one word).
unsafe fn passive_of(peer: *mut ngx_http_upstream_rr_peer_t) -> stats::Passive {
    // SAFETY: per the contract.
    unsafe {
        stats::Passive {
            fails: ptr::read_volatile(ptr::addr_of!((*peer).fails)) as u64,
            max_fails: ptr::read_volatile(ptr::addr_of!((*peer).max_fails)) as u64,
            accessed: ptr::read_volatile(ptr::addr_of!((*peer).accessed)) as i64,
            checked: ptr::read_volatile(ptr::addr_of!((*peer).checked)) as i64,
            fail_timeout: ptr::read_volatile(ptr::addr_of!((*peer).fail_timeout)) as i64,
        }
    }
}

/// Applies `change` (given the `downstart` word and nginx's fields) to the
/// peer's stretch: the compare-exchange of `downstart` decides who folds
/// (two workers ending attempts, a listing); the loser reads again. No
/// lock, no allocation; a few rounds at most (each lost round means
/// another won one), bounded all the same.
///
/// # Safety
/// `peer` is live.
unsafe fn change_stretch(
    peer: *mut ngx_http_upstream_rr_peer_t,
    change: impl Fn(u64, &stats::Passive) -> Option<stats::Fold>,
) {
    // SAFETY: per the contract.
    unsafe {
        let start = at(peer, word::DOWNSTART);
        for _ in 0..8 {
            let downstart = start.load(Relaxed);
            let Some(f) = change(downstart, &passive_of(peer)) else { return };
            if start.compare_exchange(downstart, f.downstart_ms, Relaxed, Relaxed).is_ok() {
                at(peer, word::DOWNTIME).fetch_add(f.add_ms as u64, Relaxed); // wrapping: may be negative
                if f.became_unavail {
                    at(peer, word::ID_UNAVAIL).fetch_add(word::UNAVAIL_ONE, Relaxed);
                }
                return;
            }
        }
    }
}

/// Before a listing copies the peer: folds what it reads of a wait for a
/// request nginx let through after `fail_timeout` ([`stats::observe`]).
///
/// # Safety
/// `peer` is live (its list is locked).
pub unsafe fn observe(peer: *mut ngx_http_upstream_rr_peer_t) {
    if counting() {
        let now = now_ms();
        // SAFETY: per the contract.
        unsafe { change_stretch(peer, |downstart, p| stats::observe(downstart, p, now)) };
    }
}

/// Before nginx's fields of the peer change out of request time (an
/// operator brings it up or changes `max_fails` or `fail_timeout`; a
/// change leaves it alone in its list, which forgets its failures): folds
/// its stretch up to now ([`stats::settle`]).
///
/// # Safety
/// `peer` is live (its list is write-locked).
pub unsafe fn settle(peer: *mut ngx_http_upstream_rr_peer_t) {
    let now = now_ms();
    // SAFETY: per the contract.
    unsafe { change_stretch(peer, |downstart, p| Some(stats::settle(downstart, p, now))) };
}

/// `peer.free` of requests through a run-time (dyups) upstream while
/// counting: counts, then runs round robin's `free` (every balancer a
/// run-time upstream can have ends there).
unsafe extern "C" fn free_dyups_peer(pc: *mut ngx_peer_connection_t, data: *mut c_void, state: ngx_uint_t) {
    // No panic can happen here: atomics, raw pointer reads and FFI.
    // SAFETY: installed by wrap_dyups_free only, over round robin's free.
    unsafe {
        count(pc, data, state);
        ngx_http_upstream_free_round_robin_peer(pc, data, state);
    }
}

/// After a run-time upstream's balancer set a request up: count its
/// attempts, if this cycle counts and the balancer's `free` is round
/// robin's (what [`free_dyups_peer`] runs after counting).
///
/// # Safety
/// `u` is the live request's upstream, right after the balancer's
/// `peer.init`.
pub unsafe fn wrap_dyups_free(u: *mut ngx_http_upstream_t) {
    // SAFETY: per the contract.
    unsafe {
        let rr: unsafe extern "C" fn(*mut ngx_peer_connection_t, *mut c_void, ngx_uint_t) =
            ngx_http_upstream_free_round_robin_peer;
        if counting() && (*u).peer.free.map(|f| f as usize) == Some(rr as usize) {
            (*u).peer.free = Some(free_dyups_peer);
        }
    }
}

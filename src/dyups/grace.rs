//! Freeing retired peer lists of the dyups registry only once no request
//! can still use them. (Peers removed from zone upstreams have their own
//! rule: [`crate::zone::reclaim`].)
//!
//! A request through a dyups front uses its version's list for its whole life, and counts
//! itself in that list's `requests` ([`RegistryList`]) as long. Between
//! reading a list pointer and holding the list (a worker's sync, the
//! request's own `peer.init`, the API's reads) code runs in a short section
//! of a two-phase grace period (the scheme of sleepable RCU):
//!
//! * each such section registers in one of two counters, `active[phase]`,
//!   before it first reads a list, and leaves it at its end;
//! * retired lists collect in `pending`. When nothing is `waiting`, the
//!   reaper moves `pending` to `waiting` and flips `phase`: sections that
//!   start from then on register in the other counter and cannot reach the
//!   waiting lists, which were unlinked before the flip;
//! * once the old phase's counter is seen at zero, no section can still
//!   reach a waiting list, and every request that reached one counts in it:
//!   lists no request holds are freed, the others wait in `held` until
//!   their last request ends.
//!
//! A section re-checks the phase after registering (and moves if it
//! flipped meanwhile), so no late registration can hide in a drained
//! counter. The reaper runs after every change through the API, in any
//! worker. A slow request thus keeps only its own list allocated; a worker
//! killed while it served requests leaves their lists counted (allocated).

//! The counters are kept per process (a slot claimed by pid), so that a
//! worker killed inside a section does not stop reclamation forever: the
//! slot of a process that no longer exists (`kill(pid, 0)` fails with
//! ESRCH, or the process with that pid started later than the slot's
//! owner: its pid was recycled) is freed by the next change through the
//! API, before it takes the registry's lock (the reaper, under the lock,
//! only reads the slots), and a new process takes it over with its counts
//! reset. [`ProcessSlot`] describes the protocol. When every slot belongs
//! to a live process, a new block of slots is added to the zone: no
//! process shares a counter with another.

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::cell::RefCell;

use ngx::ffi::{ngx_http_upstream_rr_peers_t, ngx_slab_calloc_locked, ngx_slab_pool_t};

use crate::nginx::layout;
use crate::nginx::peer_list::free_list;
use crate::nginx::peer_lock::SlabLocked;
use crate::nginx::peer_stats::UpstreamCounters;
use crate::nginx::process;
use crate::nginx::version::{set_config_word, ConfigWord};

/// A peer list of the dyups registry as allocated
/// ([`crate::nginx::peer_list::build_list`]): nginx's list, then the number of
/// requests that use it and the upstream's next server ID (zeroed with the
/// block; its revision is the record's version), the generation word its
/// lists point at where nginx has one (see [`attach_config_word`]), then the
/// upstream's check directives as text (`check_len` bytes after the struct;
/// see [`set_check_text`]).
#[repr(C)]
pub struct RegistryList {
    list: ngx_http_upstream_rr_peers_t,
    requests: AtomicUsize,
    counters: UpstreamCounters,
    check_len: usize,
    config: ConfigWord,
}

/// The counters of registry list `list`.
///
/// # Safety
/// `list` is a live registry list.
pub unsafe fn registry_counters<'a>(list: *mut ngx_http_upstream_rr_peers_t) -> &'a UpstreamCounters {
    // SAFETY: per the contract, the list is the start of a RegistryList.
    unsafe { &(*list.cast::<RegistryList>()).counters }
}

/// The size of a registry list's block that holds `check_text`.
pub fn list_block_size(check_text: &str) -> usize {
    size_of::<RegistryList>() + check_text.len()
}

/// Writes the check directives into a new registry list's block.
///
/// # Safety
/// `list` is a registry list no other process can reach yet, allocated
/// with [`list_block_size`]`(text)`.
pub unsafe fn set_check_text(list: *mut ngx_http_upstream_rr_peers_t, text: &str) {
    // SAFETY: per the contract, the text fits after the struct.
    unsafe {
        let block = list.cast::<RegistryList>();
        ptr::copy_nonoverlapping(text.as_ptr(), block.add(1).cast::<u8>(), text.len());
        (*block).check_len = text.len();
    }
}

/// The check directives of a registry list (empty without checks).
///
/// # Safety
/// `list` is a live registry list, not freed while the slice is used
/// (read inside a grace-period section). Its text never changes.
pub unsafe fn check_text<'a>(list: *mut ngx_http_upstream_rr_peers_t) -> &'a [u8] {
    // SAFETY: per the contract.
    unsafe {
        let block = list.cast::<RegistryList>();
        core::slice::from_raw_parts(block.add(1).cast::<u8>(), (*block).check_len)
    }
}

/// Points the lists of the new registry list `list` at its generation word:
/// `hash ... consistent` and `random` build their tables from a list with
/// one (and crash on one without). A registry list is never edited, only
/// replaced, so the word never moves.
///
/// # Safety
/// `list` is a complete registry list nobody can reach yet.
pub unsafe fn attach_config_word(list: *mut ngx_http_upstream_rr_peers_t) {
    // SAFETY: per the contract, the list is the start of a RegistryList.
    unsafe { set_config_word(list, ptr::addr_of_mut!((*list.cast::<RegistryList>()).config)) };
}

/// # Safety
/// `list` is a live registry list.
unsafe fn requests_of<'a>(list: *mut ngx_http_upstream_rr_peers_t) -> &'a AtomicUsize {
    // SAFETY: per the contract, the list is the start of a RegistryList.
    unsafe { &(*list.cast::<RegistryList>()).requests }
}

/// Counts a request in registry list `list` until [`release_list`].
///
/// # Safety
/// `list` is a live registry list reached inside a grace-period section
/// that has not ended yet.
pub unsafe fn hold_list(list: *mut ngx_http_upstream_rr_peers_t) {
    // SAFETY: per the contract.
    unsafe { requests_of(list).fetch_add(1, SeqCst) };
}

/// # Safety
/// `list` was held by [`hold_list`] and not released since.
pub unsafe fn release_list(list: *mut ngx_http_upstream_rr_peers_t) {
    // SAFETY: per the contract.
    unsafe { requests_of(list).fetch_sub(1, SeqCst) };
}

/// Slots per block of a grace period's process slots.
const BLOCK_SLOTS: usize = 64;

/// Who holds a [`ProcessSlot`]: one word, so that every change of owner is
/// one compare-and-swap against the word a decision was based on. The low
/// half is the owner's pid, or [`FREE`] or [`CLAIMING`]; the high half
/// counts claims, so that the word of a slot claimed again differs from
/// the word read before even if the new owner got the same pid.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Owner(u64);

/// No owner: not counted, may be claimed.
const FREE: u32 = 0;
/// Being claimed: the claimant resets the counts and stores its start time,
/// then publishes its pid. Not counted (the claimant has not registered
/// yet), and not claimable: a process killed inside those few stores loses
/// the slot for good (a block is added when no other slot is left).
const CLAIMING: u32 = u32::MAX;

impl Owner {
    fn pid(self) -> u32 {
        self.0 as u32
    }

    /// A process owns the slot (counted, may be found dead).
    fn owned(self) -> bool {
        self.pid() != FREE && self.pid() != CLAIMING
    }

    fn with_pid(self, pid: u32) -> Owner {
        Owner(self.0 & !u64::from(u32::MAX) | u64::from(pid))
    }

    /// The word of the next claim.
    fn next_claim(self) -> Owner {
        let claims = (self.0 >> 32) as u32;
        Owner(u64::from(claims.wrapping_add(1)) << 32 | u64::from(CLAIMING))
    }
}

/// One process's registered sections, per phase.
///
/// The protocol: a slot changes owner only by compare-and-swap of `owner`
/// against a word read before. A claimant swaps a free or dead owner's
/// word for [`CLAIMING`], resets the counts, stores its start time, and
/// only then stores its pid: `start` never stands next to a pid it does not
/// belong to. Whoever decides that an owner is dead reads `owner`, then
/// `start`, then `owner` again: if the word changed meanwhile, `start` may
/// be a later owner's and nothing is decided. A dead owner stays dead, so
/// that decision may be taken without any lock; it is acted on only by a
/// swap against the word it was taken on, which fails if the slot was
/// claimed since.
#[repr(C)]
struct ProcessSlot {
    owner: AtomicU64,
    /// The owner's start time (0: unknown): with the pid, it names the
    /// owner for good (see `core::process::ProcStat`). Written only while the slot is
    /// [`CLAIMING`].
    start: AtomicU64,
    active: [AtomicUsize; 2],
}

impl ProcessSlot {
    fn owner(&self) -> Owner {
        Owner(self.owner.load(SeqCst))
    }

    /// Whether the process that owned this slot as `seen` no longer exists
    /// ([`process::gone`]). Reads /proc: never call it under a lock.
    fn owner_gone(&self, seen: Owner) -> bool {
        let start = self.start.load(SeqCst);
        if self.owner() != seen {
            return false;
        }
        process::gone(seen.pid() as i32, start)
    }

    /// Finishes a claim that swapped the owner word to `claiming`.
    fn take(&self, claiming: Owner, me: u32, start: u64) {
        self.active[0].store(0, SeqCst);
        self.active[1].store(0, SeqCst);
        self.start.store(start, SeqCst);
        self.owner.store(claiming.with_pid(me).0, SeqCst);
    }
}

/// Process slots, in the registry's zone; blocks are chained, never freed.
#[repr(C)]
pub struct SlotBlock {
    next: AtomicPtr<SlotBlock>,
    slots: [ProcessSlot; BLOCK_SLOTS],
}

/// What a section registered with, to leave with.
#[derive(Clone, Copy)]
pub struct Ticket {
    slot: *const ProcessSlot,
    phase: usize,
}

/// The layouts of what this file keeps in the registry's zone (see
/// `registry::ZONE_LAYOUT`).
pub const LAYOUTS: [&[usize]; 4] = [
    &layout!(RegistryList; list, requests, counters, check_len, config),
    &layout!(ProcessSlot; owner, start, active),
    &layout!(SlotBlock; next, slots),
    &layout!(GracePeriod; phase, blocks, pool, overflow, pending, waiting, waiting_phase, held),
];

/// The dyups registry's grace period, in the registry's shared memory
/// (mapped at the same address in every process).
#[repr(C)]
pub struct GracePeriod {
    phase: AtomicUsize,
    /// The first block is placed with the state; one more is added from
    /// `pool` whenever a process finds every slot held by a live process.
    blocks: AtomicPtr<SlotBlock>,
    pool: *mut ngx_slab_pool_t,
    /// For a process that found no slot and no room for another block;
    /// never taken for dead (the only case where a killed process can stop
    /// reclamation, warned about).
    overflow: ProcessSlot,
    // The lists below are guarded by the zone's slab mutex. Retired peer
    // lists (with all their peers, backup list and name) are chained
    // through their `zone_next`.
    pending: *mut ngx_http_upstream_rr_peers_t,
    waiting: *mut ngx_http_upstream_rr_peers_t,
    waiting_phase: usize,
    /// Past their grace period, still used by requests.
    held: *mut ngx_http_upstream_rr_peers_t,
}

impl GracePeriod {
    /// Completes a zeroed state (otherwise valid as it is: atomics at 0,
    /// empty lists) with its zeroed first block and its zone's pool.
    ///
    /// # Safety
    /// `first` is a zeroed block in `pool`, which is the state's zone, and
    /// lives as long as the state.
    pub unsafe fn place_first_block(state: *mut GracePeriod, first: *mut SlotBlock, pool: *mut ngx_slab_pool_t) {
        // SAFETY: per the contract.
        unsafe {
            (*state).blocks = AtomicPtr::new(first);
            (*state).pool = pool;
        }
    }

    fn slots(&self) -> impl Iterator<Item = &ProcessSlot> {
        let first = self.blocks.load(SeqCst);
        // SAFETY: blocks are only ever added, fully initialised before they
        // are linked, and live as long as the state.
        core::iter::successors(unsafe { first.as_ref() }, |b| unsafe { b.next.load(SeqCst).as_ref() })
            .flat_map(|b| b.slots.iter())
    }

    /// Registers a starting request.
    pub fn enter(&self) -> Ticket {
        let slot = self.my_slot();
        loop {
            let phase = self.phase.load(SeqCst) & 1;
            slot.active[phase].fetch_add(1, SeqCst);
            if self.phase.load(SeqCst) & 1 == phase {
                return Ticket { slot, phase };
            }
            slot.active[phase].fetch_sub(1, SeqCst);
        }
    }

    pub fn leave(&self, ticket: Ticket) {
        // SAFETY: the ticket's slot is one of this state's, which live as
        // long as the state.
        unsafe { (*ticket.slot).active[ticket.phase & 1].fetch_sub(1, SeqCst) };
    }

    /// This process's slot in this state (claimed on first use). Called for
    /// every request: a process knows one or two states, so a linear scan
    /// beats hashing.
    fn my_slot(&self) -> &ProcessSlot {
        let key = self as *const GracePeriod as usize;
        let known = MY_SLOTS.with(|m| m.borrow().iter().find(|(k, _)| *k == key).map(|&(_, slot)| slot));
        let slot = known.unwrap_or_else(|| {
            let slot: *const ProcessSlot = self.claim_slot();
            MY_SLOTS.with(|m| m.borrow_mut().push((key, slot)));
            slot
        });
        // SAFETY: slots live as long as the state.
        unsafe { &*slot }
    }

    /// Takes a free slot, or one whose owner is gone: dead, or carrying
    /// this process's pid although this process never claimed it (a killed
    /// process whose pid was recycled to this one). The slot is then this
    /// process's, its counts reset (they were the dead owner's). Without
    /// one, adds a block. Takes no lock while it reads /proc.
    fn claim_slot(&self) -> &ProcessSlot {
        let me = std::process::id();
        let start = process::my_start_time();
        for slot in self.slots() {
            let seen = slot.owner();
            let reusable = match seen.pid() {
                FREE => true,
                CLAIMING => false,
                pid => pid == me || slot.owner_gone(seen),
            };
            let claiming = seen.next_claim();
            if reusable && slot.owner.compare_exchange(seen.0, claiming.0, SeqCst, SeqCst).is_ok() {
                slot.take(claiming, me, start);
                return slot;
            }
        }
        if let Some(slot) = self.add_block(me, start) {
            return slot;
        }
        if !OVERFLOW_WARNED.swap(true, SeqCst) {
            crate::nginx::log::log(
                ngx::ffi::NGX_LOG_WARN,
                "dynamic upstream: no room in the dyups zone for this process's grace-period slot; if it dies while \
                 serving, replaced and deleted upstreams stay allocated",
            );
        }
        &self.overflow
    }

    /// Links a new block whose first slot is `me`'s.
    fn add_block(&self, me: u32, start: u64) -> Option<&ProcessSlot> {
        // SAFETY: blocks are added only under the slab mutex, initialised
        // (zeroed, first slot owned) before they are linked.
        unsafe {
            let _slab = SlabLocked::new(self.pool);
            let block = ngx_slab_calloc_locked(self.pool, size_of::<SlotBlock>()).cast::<SlotBlock>();
            let block = block.as_mut()?;
            block.slots[0].take(Owner(0).next_claim(), me, start);
            block.next.store(self.blocks.load(SeqCst), SeqCst);
            self.blocks.store(block, SeqCst);
            Some(&block.slots[0])
        }
    }

    /// Frees the slots of processes that no longer exist and still count
    /// sections (a killed process's), so that [`GracePeriod::reap`] need
    /// not wait for them. Reads /proc: call it before taking the
    /// registry's lock, never under it.
    pub fn forget_dead(&self) {
        for slot in self.slots() {
            let seen = slot.owner();
            let counts = slot.active.iter().any(|a| a.load(SeqCst) != 0);
            if seen.owned() && counts && slot.owner_gone(seen) {
                // Fails if the slot was claimed since it was read: the
                // verdict was about its former owner.
                let _ = slot.owner.compare_exchange(seen.0, seen.with_pid(FREE).0, SeqCst, SeqCst);
            }
        }
    }

    /// Whether every request registered in `phase` has left. Only owned
    /// slots count: a free slot's counts are a dead owner's, a claimed
    /// one's owner has not registered yet. Reads memory only (called under
    /// the slab mutex): dead owners were freed before, by
    /// [`GracePeriod::forget_dead`].
    fn drained(&self, phase: usize) -> bool {
        let idle = |s: &ProcessSlot| s.active[phase].load(SeqCst) == 0 || !s.owner().owned();
        self.slots().all(idle) && self.overflow.active[phase].load(SeqCst) == 0
    }

    /// Hands a whole unreachable peer list (with its backup list, peers and
    /// name, all from this zone) over for deferred freeing.
    ///
    /// # Safety
    /// The caller holds the zone's slab mutex; `list` is unlinked from the
    /// registry and was allocated from its slab.
    pub unsafe fn retire_list(&mut self, list: *mut ngx_http_upstream_rr_peers_t) {
        // SAFETY: per the contract.
        unsafe { (*list).zone_next = self.pending };
        // A worker killed between the two stores leaves the list out of
        // the chain (a leak), never the chain broken: keep their order.
        compiler_fence(SeqCst);
        self.pending = list;
    }

    /// Frees what is safe to free and starts the next grace period.
    ///
    /// # Safety
    /// The caller holds the slab mutex of `pool`, the zone of this state.
    pub unsafe fn reap(&mut self, pool: *mut ngx_slab_pool_t) {
        // SAFETY: per the contract; lists past their grace period are
        // reached only by the requests counted in them.
        unsafe {
            if !self.waiting.is_null() && self.drained(self.waiting_phase) {
                let mut list = core::mem::replace(&mut self.waiting, ptr::null_mut());
                // The chain leaves `waiting` before any list joins `held`:
                // a worker killed in the loop leaves lists in no chain (a
                // leak), never in two (a double free).
                compiler_fence(SeqCst);
                while !list.is_null() {
                    let next = (*list).zone_next;
                    (*list).zone_next = self.held;
                    compiler_fence(SeqCst);
                    self.held = list;
                    compiler_fence(SeqCst);
                    list = next;
                }
            }
            let mut link = ptr::addr_of_mut!(self.held);
            while !(*link).is_null() {
                let list = *link;
                if requests_of(list).load(SeqCst) == 0 {
                    *link = (*list).zone_next;
                    // Unlinked before it is freed (a kill between: a leak).
                    compiler_fence(SeqCst);
                    free_list(pool, list);
                } else {
                    link = ptr::addr_of_mut!((*list).zone_next);
                }
            }
        }
        if self.waiting.is_null() && !self.pending.is_null() {
            // The flip, in an order where a worker killed between any two
            // stores leaves lists waiting for the phase their readers are
            // in, or in no chain (a leak): the waiting phase first (a kill
            // after a waiting list was stored, before the phase it waits
            // for, left the previous flip's, already drained: the next
            // reap freed lists requests were reading; hunt 28), then the
            // chain out of `pending` before it is in `waiting` (never in
            // both: a double free), then the phase.
            let old = self.phase.load(SeqCst) & 1;
            self.waiting_phase = old;
            let lists = self.pending;
            compiler_fence(SeqCst);
            self.pending = ptr::null_mut();
            compiler_fence(SeqCst);
            self.waiting = lists;
            compiler_fence(SeqCst);
            #[cfg(debug_assertions)]
            crate::dyups::test_stall::stall_for_tests("grace_flip", "registry");
            self.phase.store(old ^ 1, SeqCst);
        } else if !self.waiting.is_null() && self.waiting_phase == self.phase.load(SeqCst) & 1 {
            // A flip its worker did not finish (killed before the phase
            // store; the phase moves only here, with nothing waiting):
            // new readers go to the other phase from now on.
            self.phase.store(self.waiting_phase ^ 1, SeqCst);
        }
    }
}

/// Set once this process has used an overflow counter (warned once).
static OVERFLOW_WARNED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This process's slot per grace period (workers are single-threaded):
    /// (state address, slot).
    static MY_SLOTS: RefCell<Vec<(usize, *const ProcessSlot)>> = const { RefCell::new(Vec::new()) };
}

//! nginx's locks on shared peer lists, as RAII guards.
//!
//! `ngx_http_upstream_rr_peers_wlock()` and friends are C macros, absent
//! from the bindings; these guards do what they expand to. Every change to a
//! peer list or a peer's fields holds the list's write lock, as nginx's own
//! balancers do (`ngx_http_upstream_get_round_robin_peer` takes it for
//! writing). Slab allocations additionally hold the zone's slab mutex,
//! always taken after the rwlock, never before.
//!
//! A guard does no allocation and cannot panic, so no early return or error
//! leaves a lock held.

use core::ptr;

use ngx::ffi::{
    ngx_atomic_t, ngx_http_upstream_rr_peers_t, ngx_rwlock_rlock, ngx_rwlock_unlock, ngx_rwlock_wlock, ngx_shmtx_lock,
    ngx_shmtx_unlock, ngx_slab_pool_t,
};

/// Holds an nginx rwlock (`ngx_atomic_t` in shared memory) for writing.
pub struct WriteLocked {
    lock: *mut ngx_atomic_t,
}

impl WriteLocked {
    /// Locks `peers->rwlock`.
    ///
    /// # Safety
    /// `peers` must be a live peer list in a shared zone (`shpool` set), and
    /// the caller must not already hold its lock.
    pub unsafe fn new(peers: *mut ngx_http_upstream_rr_peers_t) -> Self {
        // SAFETY: per the contract.
        unsafe { Self::on(ptr::addr_of_mut!((*peers).rwlock)) }
    }

    /// # Safety
    /// `lock` must be an rwlock word in mapped shared memory that this
    /// process does not hold.
    pub unsafe fn on(lock: *mut ngx_atomic_t) -> Self {
        // SAFETY: per the contract.
        unsafe { ngx_rwlock_wlock(lock) };
        Self { lock }
    }
}

impl Drop for WriteLocked {
    fn drop(&mut self) {
        // SAFETY: locked in new()/on()/try_on(); the word outlives the guard.
        unsafe { ngx_rwlock_unlock(self.lock) };
    }
}

/// Both write locks of a zone upstream, in the order every change takes
/// them: its primary list's, then its backup list's (if it has one at the
/// time of locking). Dropped in reverse order.
pub struct ListsWriteLocked {
    _backup: Option<WriteLocked>,
    _primary: WriteLocked,
}

impl ListsWriteLocked {
    /// # Safety
    /// As for [`WriteLocked::new`], for `primary` and its backup list.
    pub unsafe fn new(primary: *mut ngx_http_upstream_rr_peers_t) -> Self {
        // SAFETY: per the contract; `next` is read under the primary's lock,
        // which every change to it holds.
        unsafe {
            let primary_lock = WriteLocked::new(primary);
            let backup = (*primary).next;
            Self { _backup: (!backup.is_null()).then(|| WriteLocked::new(backup)), _primary: primary_lock }
        }
    }
}

/// Holds an nginx rwlock for reading.
pub struct ReadLocked {
    lock: *mut ngx_atomic_t,
}

impl ReadLocked {
    /// Locks `peers->rwlock` for reading.
    ///
    /// # Safety
    /// As for [`WriteLocked::new`].
    pub unsafe fn new(peers: *mut ngx_http_upstream_rr_peers_t) -> Self {
        // SAFETY: per the contract.
        unsafe { Self::on(ptr::addr_of_mut!((*peers).rwlock)) }
    }

    /// # Safety
    /// As for [`WriteLocked::on`].
    pub unsafe fn on(lock: *mut ngx_atomic_t) -> Self {
        // SAFETY: per the contract.
        unsafe { ngx_rwlock_rlock(lock) };
        Self { lock }
    }
}

impl Drop for ReadLocked {
    fn drop(&mut self) {
        // SAFETY: locked in new()/on(); the word outlives the guard.
        unsafe { ngx_rwlock_unlock(self.lock) };
    }
}

/// Holds a zone's slab mutex (for `ngx_slab_*_locked`).
pub struct SlabLocked {
    pool: *mut ngx_slab_pool_t,
}

impl SlabLocked {
    /// # Safety
    /// `pool` must be the live slab pool of a mapped shared zone, not
    /// already locked by this process.
    pub unsafe fn new(pool: *mut ngx_slab_pool_t) -> Self {
        // SAFETY: per the contract.
        unsafe { ngx_shmtx_lock(&mut (*pool).mutex) };
        Self { pool }
    }

    pub fn pool(&self) -> *mut ngx_slab_pool_t {
        self.pool
    }
}

impl Drop for SlabLocked {
    fn drop(&mut self) {
        // SAFETY: locked in new().
        unsafe { ngx_shmtx_unlock(&mut (*self.pool).mutex) };
    }
}

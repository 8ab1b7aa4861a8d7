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

use ngx::ffi::{
    ngx_http_upstream_rr_peers_t, ngx_rwlock_rlock, ngx_rwlock_unlock, ngx_rwlock_wlock, ngx_shmtx_lock,
    ngx_shmtx_unlock, ngx_slab_pool_t,
};

/// Holds `peers->rwlock` for writing.
pub struct WriteLocked {
    peers: *mut ngx_http_upstream_rr_peers_t,
}

impl WriteLocked {
    /// # Safety
    /// `peers` must be a live peer list in a shared zone (`shpool` set), and
    /// the caller must not already hold its lock.
    pub unsafe fn new(peers: *mut ngx_http_upstream_rr_peers_t) -> Self {
        // SAFETY: per the contract, the rwlock lives in mapped shared memory.
        unsafe { ngx_rwlock_wlock(&mut (*peers).rwlock) };
        Self { peers }
    }
}

impl Drop for WriteLocked {
    fn drop(&mut self) {
        // SAFETY: locked in new(); the list outlives the guard.
        unsafe { ngx_rwlock_unlock(&mut (*self.peers).rwlock) };
    }
}

/// Holds `peers->rwlock` for reading.
pub struct ReadLocked {
    peers: *mut ngx_http_upstream_rr_peers_t,
}

impl ReadLocked {
    /// # Safety
    /// As for [`WriteLocked::new`].
    pub unsafe fn new(peers: *mut ngx_http_upstream_rr_peers_t) -> Self {
        // SAFETY: per the contract, the rwlock lives in mapped shared memory.
        unsafe { ngx_rwlock_rlock(&mut (*peers).rwlock) };
        Self { peers }
    }
}

impl Drop for ReadLocked {
    fn drop(&mut self) {
        // SAFETY: locked in new(); the list outlives the guard.
        unsafe { ngx_rwlock_unlock(&mut (*self.peers).rwlock) };
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

    /// Takes over a mutex this process already locked (`ngx_shmtx_trylock`).
    ///
    /// # Safety
    /// `pool`'s mutex must be held by this process and released by no one
    /// else.
    pub unsafe fn adopt(pool: *mut ngx_slab_pool_t) -> Self {
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

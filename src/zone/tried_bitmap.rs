//! The `tried` bitmaps the request hook gives the requests of a zone
//! upstream ([`crate::zone::request_hook`]), sized for the most peers a list
//! of the zone can hold.
//!
//! Up to [`POOL_BITMAP_WORDS`] words a bitmap comes zeroed from the
//! request's pool, as nginx's own. A larger one (a zone of megabytes, sized
//! for tens of thousands of peers) would cost every request an allocation
//! outside the pool and the zeroing of its full size: it is lent instead
//! from the worker's [`SpareBitmaps`] for the upstream and given back by the
//! request's pool cleanup, zeroed only as far as the balancers can have
//! set bits: below the most peers either list of the zone has had
//! ([`ZoneState::most_peers`], which only grows). Its cost follows the
//! longest the zone's lists have been, not the zone's size, for as many
//! requests of the upstream at once as the spares cover (64, or fewer
//! where 64 would take more than 1 MiB: 20 for a zone of 256 MB).

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use ngx::ffi::{ngx_calloc, ngx_cycle_t, ngx_http_request_t, ngx_pcalloc, ngx_pool_cleanup_add};

use crate::zone::reclaim::ZoneState;

const BITS_PER_WORD: usize = usize::BITS as usize;

/// Bitmaps up to this many words (4,096 peers) come from the request's
/// pool, zeroed there; larger ones are lent ([`SpareBitmaps`]).
const POOL_BITMAP_WORDS: usize = 64;

/// At most this many zeroed bitmaps, and at most [`SPARE_BYTES`] of them,
/// wait in a worker for the next requests of one upstream; one given back
/// when they are there is freed. Requests beyond as many at once allocate
/// (and zero) their own.
const SPARE_BITMAPS: usize = 64;
const SPARE_BYTES: usize = 1 << 20;

/// A worker's zeroed `tried` bitmaps for one upstream (in its
/// `SrvConf`, process memory), all as long: lent to requests
/// ([`lend_bitmap`]) and zeroed as they come back ([`give_back_bitmap`]),
/// so that a large zone does not cost each request an allocation and a
/// zeroing of its full size.
pub struct SpareBitmaps {
    count: usize,
    bitmaps: [*mut usize; SPARE_BITMAPS],
    /// Bitmaps are kept only once the cycle frees them at its end
    /// ([`free_spares_with_cycle`]); until then each is freed as it comes
    /// back.
    keep: bool,
}

impl Default for SpareBitmaps {
    fn default() -> Self {
        Self { count: 0, bitmaps: [ptr::null_mut(); SPARE_BITMAPS], keep: false }
    }
}

/// Has the spares freed with `cycle`'s pool (workers destroy it as they
/// exit; requests still running then keep their bitmaps, with the rest of
/// their pool), and only then kept (if the pool has no room for the
/// cleanup, each bitmap is freed as it comes back).
///
/// # Safety
/// `cycle` is the cycle whose configuration holds `spares`, in
/// init_module.
pub unsafe fn free_spares_with_cycle(cycle: &ngx_cycle_t, spares: &mut SpareBitmaps) {
    // SAFETY: per the contract; the cleanup runs before the pool's memory,
    // which holds `spares`, is freed.
    unsafe {
        let cleanup = ngx_pool_cleanup_add(cycle.pool, 0);
        if cleanup.is_null() {
            return;
        }
        (*cleanup).data = ptr::from_mut(spares).cast();
        (*cleanup).handler = Some(free_spares);
        spares.keep = true;
    }
}

/// Pool cleanup of a cycle: frees the spares at `data`.
unsafe extern "C" fn free_spares(data: *mut c_void) {
    // No panic can happen here: a bounded loop and libc::free.
    // SAFETY: `data` is the SpareBitmaps of free_spares_with_cycle, still
    // allocated; each spare came from ngx_calloc and is lent to no request.
    unsafe {
        let spares = &mut *data.cast::<SpareBitmaps>();
        for bitmap in &mut spares.bitmaps[..spares.count] {
            libc::free(bitmap.cast());
            *bitmap = ptr::null_mut();
        }
        spares.count = 0;
    }
}

/// What a request's pool cleanup needs to give its lent bitmap back.
struct Loan {
    bitmap: *mut usize,
    words: usize,
    spares: *mut SpareBitmaps,
    state: *const ZoneState,
}

/// A zeroed bitmap of `words` words for request `r` (see the module
/// comment); null if memory is short.
///
/// # Safety
/// `r` is a live request of the zone upstream whose spares are `spares`,
/// and zone state `state`, all living as long as
/// the cycle; `words` is the same for every call with these `spares`.
pub unsafe fn zeroed_bitmap(
    r: *mut ngx_http_request_t,
    words: usize,
    spares: *mut SpareBitmaps,
    state: *const ZoneState,
) -> *mut usize {
    // SAFETY: per the contract.
    unsafe {
        if words <= POOL_BITMAP_WORDS {
            ngx_pcalloc((*r).pool, words * size_of::<usize>()).cast()
        } else {
            lend_bitmap(r, Loan { bitmap: ptr::null_mut(), words, spares, state })
        }
    }
}

/// `loan.bitmap` taken from the spares (or allocated), to be given back
/// when the request's pool goes; null if memory is short.
///
/// # Safety
/// As for [`zeroed_bitmap`].
unsafe fn lend_bitmap(r: *mut ngx_http_request_t, mut loan: Loan) -> *mut usize {
    // SAFETY: per the contract; the spares are this process's and nginx
    // runs one thread per process. The cleanup's data block is ours.
    unsafe {
        let cleanup = ngx_pool_cleanup_add((*r).pool, size_of::<Loan>());
        if cleanup.is_null() {
            return ptr::null_mut();
        }
        let spares = &mut *loan.spares;
        let words = loan.words;
        let bitmap = if spares.count > 0 {
            spares.count -= 1;
            spares.bitmaps[spares.count]
        } else {
            ngx_calloc(words * size_of::<usize>(), (*(*r).connection).log).cast::<usize>()
        };
        if bitmap.is_null() {
            return ptr::null_mut(); // the cleanup stays, without a handler
        }
        loan.bitmap = bitmap;
        (*cleanup).data.cast::<Loan>().write(loan);
        (*cleanup).handler = Some(give_back_bitmap);
        bitmap
    }
}

/// Pool cleanup of a request with a lent bitmap: zeroes the words its
/// balancer can have set (list positions below the most peers the zone's
/// lists ever had, which nothing lowers) and keeps it for the next request.
unsafe extern "C" fn give_back_bitmap(data: *mut c_void) {
    // No panic can happen here: arithmetic, raw pointer work and FFI calls.
    // SAFETY: `data` is the Loan written by lend_bitmap; the request that
    // used the bitmap is being freed (its pool goes); the spares, the zone
    // state and the list live as long as the cycle, which outlives its
    // requests.
    unsafe {
        let loan = &*data.cast::<Loan>();
        let most = (*loan.state).most_peers();
        let dirty = most.div_ceil(BITS_PER_WORD).min(loan.words);
        ptr::write_bytes(loan.bitmap, 0, dirty);
        let spares = &mut *loan.spares;
        let room = SPARE_BITMAPS.min(SPARE_BYTES / (loan.words * size_of::<usize>()));
        if spares.keep && spares.count < room {
            spares.bitmaps[spares.count] = loan.bitmap;
            spares.count += 1;
        } else {
            libc::free(loan.bitmap.cast());
        }
    }
}

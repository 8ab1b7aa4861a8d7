//! The module's own shared zones (`ngx_shared_memory_add` with this
//! module's tag), which nginx hands over to the next cycle on reload when
//! their name and size stay.

#![allow(clippy::disallowed_types)] // the wrapper layer: nginx's own structs (see clippy.toml)

use core::ffi::c_void;
use core::ptr;

use crate::nginx::conf::DeclaredZone;
use crate::nginx::module_hooks::ConfContext;
use ngx::ffi::{ngx_shared_memory_add, ngx_shm_zone_init_pt, ngx_shm_zone_t, ngx_slab_pool_t, ngx_str_t};

/// Declares the zone `name` of `size` bytes for the cycle being configured,
/// with `init` as its init; None if it is smaller than nginx allows a
/// zone, or nginx refused it (either said why).
///
/// # Safety
/// `name` and `init` are those of the zones of kind `K` (a zone of another
/// name, or the same name with another init, would have code read one
/// kind of zone data as another).
pub unsafe fn declare<'a, K>(
    context: &'a mut ConfContext<'_>,
    name: &'static str,
    size: usize,
    init: ngx_shm_zone_init_pt,
) -> Option<DeclaredZone<'a, K>> {
    // nginx's own floor for a zone (the `zone` directive's): a smaller one
    // has no room for the slab pool's header.
    // SAFETY: a plain read of nginx's page size, set at start.
    let min = 8 * unsafe { ngx::ffi::ngx_pagesize };
    if size < min {
        context.emerg(&format!("zone \"{name}\" is too small: {size} bytes, at least {min}"));
        return None;
    }
    let cf = context.raw();
    let mut name = ngx_str_t { len: name.len(), data: name.as_ptr().cast_mut() };
    let tag = ptr::addr_of_mut!(crate::ngx_http_dynamic_upstream_module).cast::<c_void>();
    // SAFETY: cf is the live configuration context; nginx copies neither
    // the name (it keeps the pointer to this static text) nor the tag, this
    // module's static.
    unsafe {
        let zone = ngx_shared_memory_add(cf, &mut name, size, tag);
        if zone.is_null() {
            return None;
        }
        (*zone).init = init;
        Some(DeclaredZone::new(zone))
    }
}

/// In a zone's init: takes over the data of the previous cycle's zone (a
/// reload, `data` not null) or of the zone's slab (a zone that already
/// existed); false for a new zone, whose data the caller makes.
///
/// # Safety
/// nginx's arguments to a zone init, in the master.
pub unsafe fn reuse(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> bool {
    // SAFETY: per the contract: the zone is mapped, its slab pool first.
    unsafe {
        let pool = (*zone).shm.addr.cast::<ngx_slab_pool_t>();
        if !data.is_null() {
            (*zone).data = data;
            return true;
        }
        if (*zone).shm.exists != 0 || !(*pool).data.is_null() {
            (*zone).data = (*pool).data;
            return true;
        }
        false
    }
}

/// The slab pool and the data of a zone whose init has run (`zone` not
/// null, its data set): None otherwise.
///
/// # Safety
/// `zone` is null or one of this process's mapped zones.
pub unsafe fn parts<T>(zone: *mut ngx_shm_zone_t) -> Option<(*mut ngx_slab_pool_t, *mut T)> {
    // SAFETY: per the contract.
    unsafe {
        if zone.is_null() || (*zone).data.is_null() {
            return None;
        }
        Some(((*zone).shm.addr.cast(), (*zone).data.cast()))
    }
}

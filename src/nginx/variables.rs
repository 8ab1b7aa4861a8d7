//! Evaluating nginx variables by name at request time (for `hash` keys of
//! upstreams created at run time, which nginx's script compiler cannot
//! handle once the configuration has been read).

#![allow(clippy::disallowed_types)] // the wrapper layer: nginx's own structs (see clippy.toml)

use dynamic_upstream_core::dyups::KeyPart;
use ngx::ffi::{ngx_hash_find, ngx_hash_key, ngx_http_get_variable, ngx_http_request_t, ngx_pnalloc, ngx_str_t};
use ngx::http::{HttpModuleMainConf, NgxHttpCoreModule};

/// The key's value for this request, in the request pool.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn evaluate_key(r: *mut ngx_http_request_t, parts: &[KeyPart]) -> Option<ngx_str_t> {
    let mut value: Vec<u8> = Vec::new();
    for part in parts {
        match part {
            KeyPart::Text(text) => value.extend_from_slice(text.as_bytes()),
            KeyPart::Variable(name) => {
                let mut name_str = ngx_str_t { len: name.len(), data: name.as_ptr().cast_mut() };
                // SAFETY: per the contract; the name is lower case, as
                // nginx's variable hash expects.
                unsafe {
                    let key = ngx_hash_key(name_str.data, name_str.len);
                    let vv = ngx_http_get_variable(r, &mut name_str, key);
                    if vv.is_null() {
                        return None;
                    }
                    if (*vv).not_found() == 0 && !(*vv).data.is_null() {
                        value.extend_from_slice(core::slice::from_raw_parts((*vv).data, (*vv).len() as usize));
                    }
                }
            }
        }
    }
    // SAFETY: per the contract.
    unsafe {
        let data = ngx_pnalloc((*r).pool, value.len().max(1)).cast::<u8>();
        if data.is_null() {
            return None;
        }
        core::ptr::copy_nonoverlapping(value.as_ptr(), data, value.len());
        Some(ngx_str_t { len: value.len(), data })
    }
}

/// Whether nginx knows a variable of this (lower-case) name: a declared
/// one, or one of a prefix family such as `arg_` or `http_`.
pub fn variable_exists(name: &str) -> bool {
    // SAFETY: in a worker ngx_cycle is the running cycle, configured, and
    // lives as long as the worker.
    unsafe { variable_exists_in(&*ngx::ffi::ngx_cycle, name) }
}

/// [`variable_exists`] in `cycle`'s http block.
///
/// # Safety
/// `cycle` is configured as far as nginx hashing its variables (its http
/// block read: init_module's cycle, or a worker's; not postconfiguration's,
/// whose hash is still empty) and lives for the call.
pub unsafe fn variable_exists_in(cycle: &ngx::ffi::ngx_cycle_t, name: &str) -> bool {
    // SAFETY: per the contract; the core main conf lives as long as the
    // cycle, and its variables hash and prefix list are read-only by now.
    unsafe {
        #[allow(clippy::disallowed_methods)] // see clippy.toml; inside this unsafe block's contract
        let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(cycle) else {
            return false;
        };
        let data = name.as_ptr().cast_mut();
        let key = ngx_hash_key(data, name.len());
        if !ngx_hash_find(&mut cmcf.variables_hash, key, data, name.len()).is_null() {
            return true;
        }
        let prefixes = core::slice::from_raw_parts(
            cmcf.prefix_variables.elts as *const ngx::ffi::ngx_http_variable_t,
            cmcf.prefix_variables.nelts,
        );
        prefixes.iter().any(|v| {
            let prefix = core::slice::from_raw_parts(v.name.data, v.name.len);
            name.as_bytes().starts_with(prefix)
        })
    }
}

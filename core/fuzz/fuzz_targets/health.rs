#![no_main]
//! See `dynamic_upstream_core_fuzz::check_health` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dynamic_upstream_core_fuzz::check_health(data);
});

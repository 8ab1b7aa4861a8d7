//! Upstreams created or replaced at run time: the registry in the module's
//! zone, its grace period, and each worker's view of it.

pub mod grace;
pub mod registry;
pub mod registry_lock;
#[cfg(debug_assertions)]
pub mod test_stall;
pub mod worker;

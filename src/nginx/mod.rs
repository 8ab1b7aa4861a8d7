//! The wrapper layer: nginx's structures and calls behind small safe (or
//! precisely contracted) functions. Imports nothing from the other layers.

/// `[size_of::<T>(), align_of::<T>(), offset_of!(T, field), ...]`: the
/// numbers that make a `#[repr(C)]` type's layout, for the checks of what
/// other code or other builds share with this one (the registry's zone,
/// Lua's `ndu_peer_t`).
macro_rules! layout {
    ($t:ty; $($field:ident),* $(,)?) => {
        [core::mem::size_of::<$t>(), core::mem::align_of::<$t>(), $(core::mem::offset_of!($t, $field)),*]
    };
}
pub(crate) use layout;

pub mod atomic_file;
pub mod balancers;
pub mod conf;
pub mod entry;
pub mod http_io;
pub mod log;
pub mod lua_c;
pub mod module_hooks;
pub mod peer_list;
pub mod peer_lock;
pub mod peer_stats;
pub mod probe_connection;
pub mod process;
pub mod shm_zone;
pub mod sockaddr;
pub mod stub_status;
pub mod timer;
pub mod upstreams;
pub mod variables;
pub mod version;

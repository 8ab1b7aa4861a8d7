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

/// FNV-1a's offset basis: where a [`fingerprint`] starts.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a's 64-bit prime.
pub const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a over the numbers of `layouts` ([`layout!`]s), from `hash`: what
/// a shared zone's name version is checked against at build time.
pub const fn fingerprint(mut hash: u64, layouts: &[&[usize]]) -> u64 {
    let mut i = 0;
    while i < layouts.len() {
        let mut j = 0;
        while j < layouts[i].len() {
            hash = (hash ^ layouts[i][j] as u64).wrapping_mul(FNV_PRIME);
            j += 1;
        }
        i += 1;
    }
    hash
}

pub mod atomic_file;
pub mod balancers;
pub mod conf;
pub mod entry;
pub mod holder;
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

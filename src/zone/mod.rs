//! Zone upstreams: editing their shared peer lists, freeing removed peers,
//! and the per-request hook that makes both safe.

pub mod ids;
pub mod peers;
pub mod reclaim;
pub mod request_hook;
pub mod upstream;

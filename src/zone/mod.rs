//! Zone upstreams: editing their shared peer lists, freeing removed peers,
//! the per-request hook that makes both safe, and their active health
//! checks.

pub mod health;
pub mod ids;
pub mod peers;
pub mod prober;
pub mod reclaim;
pub mod request_hook;
pub mod upstream;

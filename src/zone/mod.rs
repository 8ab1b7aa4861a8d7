//! Zone upstreams: editing their shared peer lists, freeing removed peers,
//! the per-request hook that makes both safe, and the health records of
//! the active health checks.

pub mod health;
pub mod ids;
pub mod peers;
pub mod reclaim;
pub mod tried_bitmap;
pub mod upstream;

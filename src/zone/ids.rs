//! Server IDs of the peers of a zone upstream or of a run-time upstream's
//! list: given under the lists' write locks (or before a list is
//! published), kept in the peer's record ([`crate::nginx::peer_stats`],
//! which reads and writes them through the locked lists' handles:
//! [`ensure_ids`] takes a [`crate::nginx::peer_lock::LockedLists`], which
//! only a write-lock guard, or code that vouches for it, makes).
//!
//! [`inherit`] stays an `unsafe fn` (the registry's lists are raw pointers,
//! held by its lock): its contract is in `nginx/peer_stats.rs`.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

pub use crate::nginx::peer_stats::{ensure_ids, inherit, InheritRoom};

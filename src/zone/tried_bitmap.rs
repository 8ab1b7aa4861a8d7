//! The `tried` bitmaps the request hook gives the requests of a zone
//! upstream ([`crate::zone::upstream::request_hook`]), sized for the most peers a list
//! of the zone can hold.
//!
//! Up to 64 words (`POOL_BITMAP_WORDS`) a bitmap comes zeroed from the
//! request's pool, as nginx's own. A larger one (a zone of megabytes, sized
//! for tens of thousands of peers) would cost every request an allocation
//! outside the pool and the zeroing of its full size: it is lent instead
//! from the worker's [`SpareBitmaps`] for the upstream and given back by the
//! request's pool cleanup, zeroed only as far as the balancers can have
//! set bits: below the most peers either list of the zone has had
//! ([`crate::zone::reclaim::ZoneState::lengths`], which only grow).
//! Its cost follows the longest the zone's lists have been, not the zone's
//! size, for as many requests of the upstream at once as the spares cover
//! (64, or fewer where 64 would take more than 1 MiB: 20 for a zone of
//! 256 MB).
//!
//! The bitmaps' memory (the request's pool, the worker's spares, the pool
//! cleanups that give them back) is [`crate::nginx::balancers`]'s: what is
//! here is what the request hook (`request_hook.rs`, which hands the bitmap
//! to the balancer's data) uses of it.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

pub use crate::nginx::balancers::{free_spares_with_pool, zeroed_bitmap, SpareBitmaps};

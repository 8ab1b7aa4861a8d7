//! The NGINX Plus REST API's upstream subset (`dynamic_upstream_api`):
//! its routes, the server objects clients send, the JSON shapes it
//! answers with (API version 9, served as 6 to 9), the difference a
//! declarative replace (`PUT .../servers`) applies, and per-peer
//! statistics as they are kept beside each peer.

pub mod body;
pub mod diff;
pub mod error;
pub mod ids;
pub mod route;
pub mod stats;
pub mod view;

pub use error::PlusError;
pub use route::{Endpoint, Route};
pub use stats::PeerStats;

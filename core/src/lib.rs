//! nginx-free logic of the dynamic upstream module: the vocabulary of
//! operations, the parsers of what clients send, validation, and the
//! renderers of what they get back. Unit-tested with `cargo test`; the
//! module crate is only the glue to nginx.

#![forbid(unsafe_code)]

pub mod accept;
pub mod address;
pub mod balancer;
pub mod dyups;
pub mod error;
pub mod health;
pub mod json;
pub mod name_set;
pub mod peer;
pub mod plus;
pub mod process;
pub mod prometheus;
pub mod query;
pub mod render;
pub mod revision;
pub mod state;

pub use address::Address;
pub use balancer::Balancer;
pub use error::ApiError;
pub use peer::{Param, PeerParams, ServerSpec};
pub use query::{Action, Format, QueryRequest};
pub use render::{PeerView, UpstreamView};

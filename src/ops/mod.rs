//! The operations every front end shares: change a zone upstream, replace
//! or delete a run-time upstream, the reload guard and the state files,
//! and the change log.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

pub mod change_log;
pub mod cycles;
pub mod dyups;
pub mod dyups_conf;
pub mod plus;
pub mod state_files;
pub mod zone;

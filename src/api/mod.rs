//! The front ends: the query-string API, the REST API, Lua and the C API,
//! and the content handlers of the admin locations.

pub mod c_api;
pub mod check_status;
pub mod handlers;
pub mod lua;
pub mod lua_ffi;
pub mod metrics;
pub mod plus;
pub mod query;
pub mod rest;

//! What the C functions behind Lua's `ngx.dynamic` and `ngx.dyups` do
//! (`ndu_*` in [`crate::nginx::lua_c`], which LuaJIT's FFI calls from the
//! wrappers in `src/api/lua/`). They run the same operations as the HTTP
//! APIs: same validation, locks, persistence and cross-worker visibility.
//!
//! Conventions: numbers come as doubles, negative meaning "not given";
//! every call returns 0 on success or the HTTP status the HTTP API would
//! answer, with the reason in `err`.

#![forbid(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types)]

use core::ffi::c_int;

use dynamic_upstream_core::render::Origin;
use dynamic_upstream_core::{Action, Address, ApiError, Param, PeerParams, PeerView, ServerSpec};

use crate::dyups::worker::is_front;
use crate::nginx::entry::request_guard;
use crate::nginx::log::Log;
use crate::nginx::lua_c::{LuaCalls, LuaPeer, PeerChange, PeersOut, TextOut};
use crate::nginx::process::in_running_process;
use crate::nginx::upstreams::Upstream;
use crate::ops::change_log::{log_refusal, Requester};
use crate::ops::dyups::{delete_upstream, update_upstream, Condition};
use crate::ops::zone::perform;

/// The calls the Lua packages are registered with.
pub struct Calls;

impl LuaCalls for Calls {
    fn list_zones(&self, zones: &mut TextOut<'_>, err: &mut TextOut<'_>) -> c_int {
        lua_call(err, || {
            // The zones describe_zone takes: each once, as the first
            // upstream that has it (the one describe_zone finds), unless the
            // REST API took that upstream over (describe_zone refuses it;
            // hunt 31, review 29).
            let names: Vec<String> = Upstream::with_running(|running| {
                let mut seen = std::collections::HashSet::new();
                running
                    .upstreams()
                    .iter()
                    .filter_map(|&u| u.zone_name().map(|zone| (zone, u)))
                    .filter(|(zone, u)| seen.insert(zone.clone()) && !is_front(*u))
                    .map(|(zone, _)| zone)
                    .collect()
            });
            zones.set_whole(&names.join("\n"));
            Ok(())
        })
    }

    fn describe_zone(&self, zone: &[u8], peers: &mut PeersOut<'_>, err: &mut TextOut<'_>) -> c_int {
        lua_call(err, || {
            let views = Upstream::with_running(|running| {
                perform(running, &text(zone), &Action::List, &Requester::internal("lua")).map(|z| z.peers_with_health())
            })?;
            peers.set(views.iter().map(lua_peer));
            Ok(())
        })
    }

    fn change_peer(&self, log: Log, change: &PeerChange<'_>, err: &mut TextOut<'_>) -> c_int {
        lua_call(err, || {
            let by = lua(log);
            self::change(&by, &text(change.zone), || peer_action(change))
        })
    }

    fn dyups_update(&self, log: Log, name: &[u8], body: &[u8], msg: &mut TextOut<'_>) -> c_int {
        dyups_status(msg, || update_upstream(&text(name), body, false, false, Condition::None, &lua(log)).map(drop))
    }

    fn dyups_delete(&self, log: Log, name: &[u8], msg: &mut TextOut<'_>) -> c_int {
        dyups_status(msg, || delete_upstream(&text(name), false, Condition::None, &lua(log)))
    }
}

/// Changes made through Lua: no client address at hand; logged where the
/// Lua code's own `ngx.log` lines go (`log`).
fn lua(log: Log) -> Requester {
    Requester::new(Origin::internal("lua"), log)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Applies the change `action` builds to the zone upstream `zone`; a
/// change refused while it is built is logged as any refusal.
fn change(by: &Requester, zone: &str, action: impl FnOnce() -> Result<Action, ApiError>) -> Result<(), ApiError> {
    let action = action().inspect_err(|e| log_refusal(by, zone, e))?;
    Upstream::with_running(|running| perform(running, zone, &action, by).map(drop))
}

/// Runs `body` in a panic barrier, turning errors into a status and a
/// message for Lua.
fn lua_call(err: &mut TextOut<'_>, body: impl FnOnce() -> Result<(), ApiError>) -> c_int {
    let mut outcome = Ok(());
    let rc = request_guard(|| {
        outcome = if in_running_process() {
            body()
        } else {
            Err(ApiError::new(500, "not_running", "not available here: call it from a worker (not init_by_lua)"))
        };
        0
    });
    match (rc, outcome) {
        (0, Ok(())) => 0,
        (0, Err(e)) => {
            err.set(&e.text);
            c_int::from(e.status)
        }
        _ => {
            err.set("internal error");
            500
        }
    }
}

/// A numeric option: negative means not given; otherwise it must be an
/// integer within the parameter's range.
fn option(param: Param, value: f64) -> Result<Option<u64>, ApiError> {
    if value < 0.0 && value.is_finite() {
        return Ok(None);
    }
    if !value.is_finite() || value.fract() != 0.0 || value > 1e12 {
        return param.parse_value("x").map(Some); // the parameter's own error
    }
    param.parse_value(&format!("{}", value as u64)).map(Some)
}

fn params(weight: f64, max_fails: f64, fail_timeout: f64, max_conns: f64) -> Result<PeerParams, ApiError> {
    Ok(PeerParams {
        weight: option(Param::Weight, weight)?,
        max_fails: option(Param::MaxFails, max_fails)?,
        fail_timeout: option(Param::FailTimeout, fail_timeout)?,
        max_conns: option(Param::MaxConns, max_conns)?,
    })
}

fn lua_peer(v: &PeerView) -> LuaPeer {
    let h = v.health.unwrap_or_default();
    let mut peer = LuaPeer::default();
    peer.set_name(&v.name);
    peer.weight = v.weight;
    peer.max_fails = v.max_fails as i64;
    peer.fail_timeout = v.fail_timeout;
    peer.max_conns = v.max_conns as i64;
    peer.conns = v.conns as i64;
    peer.fails = v.fails as i64;
    peer.current_weight = v.current_weight;
    peer.effective_weight = v.effective_weight;
    peer.accessed = v.accessed;
    peer.checked = v.checked;
    peer.rises = h.rises.into();
    peer.falls = h.falls.into();
    peer.last_check = h.last_check;
    peer.set_last_error(&h.last_error.map(|e| e.to_string()).unwrap_or_default());
    peer.backup = v.backup as i32;
    peer.down = v.down as i32;
    peer.health = match v.health {
        None => 0,
        Some(h) if !h.checked => 1,
        Some(h) if !h.down => 2,
        Some(_) => 3,
    };
    peer
}

/// `ndu_change_peer`'s `op`: what to do with the server (the same
/// numbers as `OP_*` in `lua/dynamic.lua`).
const OP_ADD: c_int = 0;
const OP_UPDATE: c_int = 1;
const OP_REMOVE: c_int = 2;

/// The action of `ndu_change_peer`: adding (`op` 0: `down` and `backup`
/// are 1 or 0), changing (1: `down` is 1 (down), 0 (up) or -1
/// (unchanged); `backup` is not used) or removing (2: neither are the
/// numbers) a server.
fn peer_action(c: &PeerChange<'_>) -> Result<Action, ApiError> {
    let server = Address::parse(&text(c.server))?;
    let params = || params(c.weight, c.max_fails, c.fail_timeout, c.max_conns);
    match c.op {
        OP_ADD => {
            let mut spec = ServerSpec::new(server).with_params(&params()?);
            spec.down = c.down > 0;
            spec.backup = c.backup > 0;
            Ok(Action::Add(spec))
        }
        OP_UPDATE => {
            let down = match c.down {
                1 => Some(true),
                0 => Some(false),
                _ => None,
            };
            Ok(Action::Update { server, params: params()?, down })
        }
        OP_REMOVE => Ok(Action::Remove { server }),
        op => Err(ApiError::new(500, "internal", format!("unknown peer operation {op}"))),
    }
}

fn dyups_status(msg: &mut TextOut<'_>, body: impl FnOnce() -> Result<(), ApiError>) -> c_int {
    match lua_call(msg, body) {
        0 => {
            msg.set("success");
            200
        }
        status => status,
    }
}

//! The paths of the API, relative to its location (`location /api`):
//! `/` lists the versions; `/N/...` the endpoints of version N.

use super::PlusError;

/// The API versions served (with the same handlers: the upstream subset
/// did not change between them).
pub const VERSIONS: [u32; 4] = [6, 7, 8, 9];

/// What a path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The location itself: the list of versions.
    Versions,
    /// `/N/`: the root endpoints.
    Root,
    Nginx,
    Processes,
    Connections,
    /// `/9/workers` (API version 9 on): per-worker statistics, which
    /// open-source nginx does not keep: an empty array.
    Workers,
    /// `/N/http/`: the http endpoints.
    Http,
    HttpRequests,
    /// An endpoint of a feature this module does not have (server zones,
    /// caches, `/ssl`, ...): an empty object, as NGINX Plus answers when
    /// none is configured.
    Empty,
    Upstreams,
    Upstream(String),
    Servers(String),
    Server(String, u64),
}

/// A parsed path: the version (0 for [`Endpoint::Versions`]) and endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub version: u32,
    pub endpoint: Endpoint,
}

/// The root endpoints this module serves (`/N/`), as NGINX Plus lists
/// them: `workers` from API version 9 on.
pub fn root_endpoints(version: u32) -> &'static [&'static str] {
    const ENDPOINTS: [&str; 8] = ["nginx", "processes", "connections", "slabs", "http", "resolvers", "ssl", "workers"];
    if version >= 9 {
        &ENDPOINTS
    } else {
        &ENDPOINTS[..7]
    }
}

/// The http endpoints this module serves (`/N/http/`).
pub const HTTP_ENDPOINTS: [&str; 8] =
    ["requests", "server_zones", "location_zones", "caches", "limit_conns", "limit_reqs", "keyvals", "upstreams"];

impl Route {
    /// Parses the part of the URI after the location's prefix. Empty
    /// segments are ignored (`/9/http/upstreams/` is `/9/http/upstreams`).
    pub fn parse(rest: &str) -> Result<Route, PlusError> {
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let Some((version, path)) = segments.split_first() else {
            return Ok(Route { version: 0, endpoint: Endpoint::Versions });
        };
        let version = version
            .parse::<u32>()
            .ok()
            .filter(|v| VERSIONS.contains(v) && !version.starts_with('0'))
            .ok_or_else(PlusError::unknown_version)?;
        let endpoint = match path {
            [] => Endpoint::Root,
            ["nginx"] => Endpoint::Nginx,
            ["processes"] => Endpoint::Processes,
            ["connections"] => Endpoint::Connections,
            ["workers"] if version >= 9 => Endpoint::Workers,
            ["slabs"] | ["resolvers"] | ["ssl"] => Endpoint::Empty,
            ["http"] => Endpoint::Http,
            ["http", "requests"] => Endpoint::HttpRequests,
            ["http", "server_zones" | "location_zones" | "caches" | "limit_conns" | "limit_reqs" | "keyvals"] => {
                Endpoint::Empty
            }
            ["http", "upstreams"] => Endpoint::Upstreams,
            ["http", "upstreams", name] => Endpoint::Upstream(name.to_string()),
            ["http", "upstreams", name, "servers"] => Endpoint::Servers(name.to_string()),
            ["http", "upstreams", name, "servers", id] => Endpoint::Server(name.to_string(), parse_id(id)?),
            _ => return Err(PlusError::path_not_found()),
        };
        Ok(Route { version, endpoint })
    }
}

/// The upstream a request of `method` to `rest` (the path after the
/// location) asks to change: its servers (POST, PUT) or one of them (PATCH,
/// DELETE), whatever the rest of the path (a bad server ID, an unknown
/// version): for the change log.
pub fn changed_upstream<'p>(method: &str, rest: &'p str) -> Option<&'p str> {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        ("POST" | "PUT", [_, "http", "upstreams", name, "servers"])
        | ("PATCH" | "DELETE", [_, "http", "upstreams", name, "servers", _]) => Some(name),
        _ => None,
    }
}

/// A server ID: a decimal integer.
fn parse_id(text: &str) -> Result<u64, PlusError> {
    text.parse::<u64>().ok().filter(|_| text.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| {
        PlusError::new(400, "UpstreamBadServerId", format!("invalid server ID \"{}\"", crate::address::shown(text)))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn changed_upstreams() {
        assert_eq!(changed_upstream("POST", "/9/http/upstreams/b/servers"), Some("b"));
        assert_eq!(changed_upstream("PUT", "9/http/upstreams/b/servers/"), Some("b"));
        assert_eq!(changed_upstream("PATCH", "/9/http/upstreams/b/servers/abc"), Some("b"));
        assert_eq!(changed_upstream("DELETE", "/10/http/upstreams/b/servers/1"), Some("b"));
        assert_eq!(changed_upstream("GET", "/9/http/upstreams/b/servers/1"), None);
        assert_eq!(changed_upstream("PATCH", "/9/http/upstreams/b/servers"), None);
        assert_eq!(changed_upstream("POST", "/9/http/upstreams/b"), None);
    }

    use super::*;

    fn endpoint(path: &str) -> Endpoint {
        Route::parse(path).unwrap().endpoint
    }

    #[test]
    fn versions_and_roots() {
        assert_eq!(Route::parse("").unwrap(), Route { version: 0, endpoint: Endpoint::Versions });
        assert_eq!(endpoint("/"), Endpoint::Versions);
        for v in VERSIONS {
            assert_eq!(Route::parse(&format!("/{v}/")).unwrap(), Route { version: v, endpoint: Endpoint::Root });
            assert_eq!(Route::parse(&format!("{v}")).unwrap().endpoint, Endpoint::Root);
        }
        for bad in ["/5", "/10", "/x/nginx", "/09/nginx", "/-9"] {
            assert_eq!(Route::parse(bad).unwrap_err().code, "UnknownVersion", "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("/9/nginx"), Endpoint::Nginx);
        assert_eq!(endpoint("/8/processes"), Endpoint::Processes);
        assert_eq!(endpoint("/7/connections/"), Endpoint::Connections);
        assert_eq!(endpoint("/6/http"), Endpoint::Http);
        assert_eq!(endpoint("/9/http/requests"), Endpoint::HttpRequests);
        for empty in
            ["/9/ssl", "/9/slabs", "/9/resolvers", "/9/http/caches", "/9/http/server_zones/", "/9/http/keyvals"]
        {
            assert_eq!(endpoint(empty), Endpoint::Empty, "{empty}");
        }
        assert_eq!(endpoint("/9/http/upstreams/"), Endpoint::Upstreams);
        assert_eq!(endpoint("/9/http/upstreams/b"), Endpoint::Upstream("b".into()));
        assert_eq!(endpoint("/9/http/upstreams/b/servers/"), Endpoint::Servers("b".into()));
        assert_eq!(endpoint("/9/http/upstreams/b/servers/12/"), Endpoint::Server("b".into(), 12));
        assert_eq!(endpoint("//9//http//upstreams//b"), Endpoint::Upstream("b".into()));
        assert_eq!(endpoint("/9/workers/"), Endpoint::Workers);
        assert_eq!(root_endpoints(9).last(), Some(&"workers"));
        assert!(!root_endpoints(8).contains(&"workers"));
    }

    #[test]
    fn unknown_paths_and_ids() {
        for bad in [
            "/9/stream/upstreams",
            "/9/http/upstreams/b/x",
            "/8/workers",
            "/9/workers/0",
            "/9/nginx/x",
            "/9/http/upstreams/b/servers/1/2",
        ] {
            let e = Route::parse(bad).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (404, "PathNotFound"), "{bad}");
        }
        for bad in ["x", "-1", "+1", "1.5", "99999999999999999999999"] {
            let e = Route::parse(&format!("/9/http/upstreams/b/servers/{bad}")).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "UpstreamBadServerId"), "{bad}");
        }
    }
}

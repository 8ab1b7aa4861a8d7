//! Errors as NGINX Plus shapes them:
//! `{"error":{"status":S,"text":"...","code":"..."},"request_id":"...","href":"..."}`.

use serde::Serialize;

use crate::error::ApiError;

/// Where NGINX Plus's errors point.
pub const HREF: &str = "https://nginx.org/en/docs/http/ngx_http_api_module.html";

/// An error of the Plus API: its HTTP status, NGINX Plus's code (e.g.
/// `UpstreamNotFound`) and a one-line text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlusError {
    pub status: u16,
    pub code: String,
    pub text: String,
}

impl PlusError {
    pub fn new(status: u16, code: &str, text: impl Into<String>) -> Self {
        Self { status, code: code.to_string(), text: text.into() }
    }

    pub fn path_not_found() -> Self {
        Self::new(404, "PathNotFound", "path not found")
    }

    pub fn unknown_version() -> Self {
        Self::new(404, "UnknownVersion", "unknown version")
    }

    pub fn method_not_supported() -> Self {
        Self::new(405, "MethodNotSupported", "method not supported")
    }

    pub fn method_disabled() -> Self {
        Self::new(
            405,
            "MethodDisabled",
            "method disabled: this location is read-only (dynamic_upstream_api write=on enables changes)",
        )
    }

    pub fn upstream_not_found(name: &str) -> Self {
        Self::new(404, "UpstreamNotFound", format!("upstream \"{}\" not found", crate::address::shown(name)))
    }

    pub fn server_not_found(id: u64) -> Self {
        Self::new(404, "UpstreamServerNotFound", format!("server with ID \"{id}\" does not exist"))
    }

    pub fn format(text: impl Into<String>) -> Self {
        Self::new(400, "UpstreamConfFormatError", text)
    }

    /// The body of the answer; `request_id` is the request's `$request_id`.
    pub fn json(&self, request_id: &str) -> String {
        #[derive(Serialize)]
        struct Inner<'a> {
            status: u16,
            text: &'a str,
            code: &'a str,
        }
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
            request_id: &'a str,
            href: &'a str,
        }
        let body =
            Outer { error: Inner { status: self.status, text: &self.text, code: &self.code }, request_id, href: HREF };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// The errors the module's shared operations answer (query-string API
/// codes), as NGINX Plus answers the same faults: the status may differ
/// (an existing server is 400 for ngx_dynamic_upstream, 409 `EntryExists`
/// for NGINX Plus); codes NGINX Plus has no equivalent for are the
/// module's own in Plus's spelling (`balancer_fixed_at_start` becomes
/// `BalancerFixedAtStart`). The text stays the module's.
impl From<ApiError> for PlusError {
    fn from(e: ApiError) -> Self {
        let (status, code) = match e.code {
            "server_exists" => (409, "EntryExists".to_string()),
            "server_not_found" => (404, "UpstreamServerNotFound".to_string()),
            "upstream_not_found" => (404, "UpstreamNotFound".to_string()),
            "zone_full" | "too_many_peers" => (507, "UpstreamOutOfMemory".to_string()),
            "no_zone" => (400, "UpstreamStatic".to_string()),
            "last_peer" => (400, "UpstreamServerImmutable".to_string()),
            "backup_not_allowed" | "backup_limit" => (400, "UpstreamNoBackup".to_string()),
            "weight_total" | "chash_table" => (400, "UpstreamBadWeight".to_string()),
            "invalid_address" => (400, "UpstreamBadAddress".to_string()),
            other => (e.status, camel_case(other)),
        };
        let text = e.text.strip_prefix("add server failed: ").unwrap_or(&e.text).to_string();
        Self { status, code, text }
    }
}

/// `balancer_fixed_at_start` → `BalancerFixedAtStart`.
fn camel_case(code: &str) -> String {
    code.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_nginx_plus() {
        let e = PlusError::upstream_not_found("b");
        assert_eq!(
            e.json("0123abcd"),
            r#"{"error":{"status":404,"text":"upstream \"b\" not found","code":"UpstreamNotFound"},"request_id":"0123abcd","href":"https://nginx.org/en/docs/http/ngx_http_api_module.html"}"#
        );
    }

    #[test]
    fn module_errors_map_to_plus_codes() {
        let e: PlusError = ApiError::bad_request("server_exists", "server 1.2.3.4:80 already exists").into();
        assert_eq!((e.status, e.code.as_str()), (409, "EntryExists"));
        let e: PlusError = ApiError::no_room("z", 65536).into();
        assert_eq!((e.status, e.code.as_str()), (507, "UpstreamOutOfMemory"));
        let e: PlusError = ApiError::conflict("balancer_fixed_at_start", "x").into();
        assert_eq!((e.status, e.code.as_str()), (409, "BalancerFixedAtStart"));
        let e: PlusError = ApiError::bad_request("invalid_body", "add server failed: no server given").into();
        assert_eq!((e.code.as_str(), e.text.as_str()), ("InvalidBody", "no server given"));
    }
}

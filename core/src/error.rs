//! Errors of the admin APIs: each carries the HTTP status it answers with and
//! a one-line reason.

use thiserror::Error;

/// A request the API refuses. Nothing was changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{text}")]
pub struct ApiError {
    /// HTTP status code (4xx/5xx).
    pub status: u16,
    /// Stable machine-readable code, e.g. `invalid_parameter`.
    pub code: &'static str,
    /// One line saying what is wrong, for people.
    pub text: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, text: impl Into<String>) -> Self {
        Self { status, code, text: text.into() }
    }

    pub fn bad_request(code: &'static str, text: impl Into<String>) -> Self {
        Self::new(400, code, text)
    }

    pub fn not_found(code: &'static str, text: impl Into<String>) -> Self {
        Self::new(404, code, text)
    }

    pub fn conflict(code: &'static str, text: impl Into<String>) -> Self {
        Self::new(409, code, text)
    }

    /// A change in a worker whose configuration a reload is replacing,
    /// and whose changes the new workers would not see.
    pub fn reloading() -> Self {
        Self::new(
            503,
            "reloading",
            "nginx is reloading and this worker's configuration is being replaced: retry the request",
        )
    }

    /// A change in a worker of an nginx whose state file another nginx
    /// (a binary upgrade's new one) has read since: the other would never
    /// see it.
    pub fn state_file_taken_over(path: &str) -> Self {
        Self::new(
            503,
            "taken_over",
            format!(
                "the state file \"{path}\" was taken over by another nginx (a binary upgrade's new one): this \
                 worker changes nothing; retry the request (if no other nginx runs any more, its start failed or it \
                 was stopped to roll back: reload this one first)"
            ),
        )
    }

    /// A change of a run-time upstream in an nginx whose registry is older
    /// than its state file: another nginx claimed the file meanwhile (a
    /// binary upgrade rolled back) and may have changed it.
    pub fn state_file_newer(path: &str) -> Self {
        Self::new(
            503,
            "state_file_newer",
            format!(
                "the state file \"{path}\" may hold changes of another nginx (a binary upgrade that was rolled \
                 back) that this nginx's run-time upstreams lack: restart nginx to load them; until then their \
                 changes are refused"
            ),
        )
    }

    /// The zone's slab has no room left.
    pub fn no_room(zone: &str, size: usize) -> Self {
        Self::new(507, "zone_full", format!("shared memory zone \"{zone}\" ({}) has no room left", human_size(size)))
    }

    /// The dyups zone (`dyups_shm_zone_size`) has no room left: what to
    /// change, and what changing it does.
    pub fn dyups_full(zone: &str, size: usize) -> Self {
        let mut e = Self::no_room(zone, size);
        e.text.push_str(
            ": raise dyups_shm_zone_size and reload; a new size makes a new zone, which starts with only the \
             upstreams saved in dyups_upstream_conf",
        );
        e
    }

    /// A zone upstream the REST API replaced or deleted: the query API
    /// and Lua's `ngx.dynamic` leave it alone until a restart finds no
    /// entry for it in `file` (the `dyups_upstream_conf`, if any).
    pub fn managed_by_dyups(name: &str, file: Option<&str>) -> Self {
        let remove = file.map(|f| format!("remove its entry from {f} and ")).unwrap_or_default();
        Self::conflict(
            "managed_by_dyups",
            format!(
                "upstream \"{name}\" is managed through the REST API since it was replaced or deleted there: to \
                 manage it here again, {remove}restart nginx (a reload keeps the REST API's copy)"
            ),
        )
    }

    /// A change asked of a read-only location (`directive` is on).
    pub fn read_only(directive: &str) -> Self {
        Self::new(403, "read_only", format!("this location only lists upstreams ({directive} on)"))
    }
}

/// The reason phrase nginx uses for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        409 => "Conflict",
        413 => "Request Entity Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Error",
    }
}

/// `131072` → `128k`, `2097152` → `2m`, as nginx's config would write them.
pub fn human_size(size: usize) -> String {
    const K: usize = 1024;
    const M: usize = 1024 * 1024;
    if size >= M && size % M == 0 {
        format!("{}m", size / M)
    } else if size >= K && size % K == 0 {
        format!("{}k", size / K)
    } else {
        size.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_nginx_config() {
        assert_eq!(human_size(128 * 1024), "128k");
        assert_eq!(human_size(2 * 1024 * 1024), "2m");
        assert_eq!(human_size(1000), "1000");
    }

    #[test]
    fn no_room_names_zone_and_size() {
        let e = ApiError::no_room("backends", 64 * 1024);
        assert_eq!(e.status, 507);
        assert_eq!(e.text, "shared memory zone \"backends\" (64k) has no room left");
        let e = ApiError::dyups_full("d", 2 * 1024 * 1024);
        assert!(e.text.starts_with("shared memory zone \"d\" (2m) has no room left: raise dyups_shm_zone_size"));
    }

    #[test]
    fn managed_by_dyups_says_how_to_hand_back() {
        let e = ApiError::managed_by_dyups("b", Some("/var/lib/d.conf"));
        assert_eq!(e.status, 409);
        assert!(e.text.ends_with("manage it here again, remove its entry from /var/lib/d.conf and restart nginx (a reload keeps the REST API's copy)"));
        assert!(ApiError::managed_by_dyups("b", None).text.contains("again, restart nginx"));
    }
}

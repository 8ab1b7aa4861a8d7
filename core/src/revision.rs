//! Revisions sent as `ETag` and taken back in `If-Match`: the NGINX Plus
//! API's conditional changes and dyups' (the same numbers, study 54).

/// What an `If-Match` header asks.
#[derive(Debug, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any revision.
    Any,
    /// `"N"` (also `W/"N"` or a bare N): the revision N.
    Revision(u64),
    /// Not a revision the module gives: matches none.
    Invalid,
}

impl IfMatch {
    pub fn parse(value: &str) -> IfMatch {
        let value = value.trim();
        if value == "*" {
            return IfMatch::Any;
        }
        let tag = value.strip_prefix("W/").unwrap_or(value).trim_matches('"');
        tag.parse::<u64>().map_or(IfMatch::Invalid, IfMatch::Revision)
    }
}

/// The `ETag` value of a revision.
pub fn etag(revision: u64) -> String {
    format!("\"{revision}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_etag_writes() {
        assert_eq!(IfMatch::parse(&etag(1_764_000_000_000_123)), IfMatch::Revision(1_764_000_000_000_123));
        assert_eq!(IfMatch::parse(" W/\"12\" "), IfMatch::Revision(12));
        assert_eq!(IfMatch::parse("12"), IfMatch::Revision(12));
        assert_eq!(IfMatch::parse("*"), IfMatch::Any);
        for invalid in ["", "\"\"", "abc", "\"-1\"", "\"1\", \"2\"", "\"18446744073709551616\""] {
            assert_eq!(IfMatch::parse(invalid), IfMatch::Invalid, "{invalid}");
        }
    }
}

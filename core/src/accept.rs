//! Which format a client of the text APIs (the query-string API, dyups'
//! listings) asked for with its `Accept` header. The modules they are
//! compatible with always answer text, and HTTP client libraries send
//! JSON in their default `Accept` beside text (axios:
//! `application/json, text/plain, */*`): JSON only where the client
//! prefers it to text (hunt 34: any mention of `application/json` did).

/// Whether `accept` gives `application/json` a higher quality than
/// `text/plain`, each judged by its most specific media range
/// (`type/subtype`, then `type/*`, then `*/*`; RFC 9110, 12.5.1).
pub fn prefers_json(accept: &[u8]) -> bool {
    let accept = String::from_utf8_lossy(accept);
    let json = quality(&accept, "application", "json");
    json > 0 && json > quality(&accept, "text", "plain")
}

/// The quality `accept` gives `kind/sub`, in thousandths (0: none).
fn quality(accept: &str, kind: &str, sub: &str) -> u16 {
    let mut best: Option<(u8, u16)> = None; // (specificity, quality)
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let Some((k, s)) = media.split_once('/') else { continue };
        let specificity = match (k.trim(), s.trim()) {
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) => 3,
            (k, "*") if k.eq_ignore_ascii_case(kind) => 2,
            ("*", "*") => 1,
            _ => continue,
        };
        let mut q = Some(1000);
        for param in parts {
            if let Some((name, value)) = param.split_once('=') {
                if name.trim().eq_ignore_ascii_case("q") {
                    q = parse_quality(value.trim());
                }
            }
        }
        // A range with an invalid weight is ignored.
        let Some(q) = q else { continue };
        if best.map_or(true, |(spec, bq)| specificity > spec || (specificity == spec && q > bq)) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// `0`, `0.5`, `1.000`: RFC 9110's weight, in thousandths.
fn parse_quality(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_only_where_preferred_to_text() {
        for accept in [
            "application/json",
            "Application/JSON",
            "text/html, application/json;q=0.9",
            "application/json, */*;q=0.8",
            "application/*",
            "text/plain;q=0.5, application/json",
            "application/json;q=0.2, text/plain;q=0.1",
        ] {
            assert!(prefers_json(accept.as_bytes()), "{accept}");
        }
        for accept in [
            "",
            "*/*",
            "text/plain",
            "application/json, text/plain, */*",
            "text/plain;q=1, application/json;q=0.1",
            "text/plain, application/json, application/*+json, */*",
            "application/json;q=0",
            "application/json;q=0, */*",
            "application/problem+json",
            "text/*, application/json;q=0.5",
            "application/json;q=2",
            "application/json;q=0.0001",
            "application/json;q=x",
            "\u{ff}",
        ] {
            assert!(!prefers_json(accept.as_bytes()), "{accept}");
        }
    }

    #[test]
    fn qualities() {
        assert_eq!(parse_quality("0"), Some(0));
        assert_eq!(parse_quality("0.5"), Some(500));
        assert_eq!(parse_quality("0.05"), Some(50));
        assert_eq!(parse_quality("1.000"), Some(1000));
        assert_eq!(parse_quality("1.001"), None);
        assert_eq!(parse_quality(".5"), None);
        assert_eq!(parse_quality("0.+5"), None);
    }
}

//! A set of names (byte strings) in one buffer: a list of thousands of
//! peers costs a few allocations, not one per name, and a lookup is a
//! binary search.

/// Names pushed in any order; [`NameSet::sort`] before [`NameSet::contains`].
#[derive(Debug, Default)]
pub struct NameSet {
    bytes: Vec<u8>,
    /// Each name's start and end in `bytes`.
    spans: Vec<(usize, usize)>,
    sorted: bool,
}

impl NameSet {
    pub fn push(&mut self, name: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.spans.push((start, self.bytes.len()));
        self.sorted = false;
    }

    pub fn sort(&mut self) {
        let bytes = &self.bytes;
        self.spans.sort_unstable_by(|a, b| bytes[a.0..a.1].cmp(&bytes[b.0..b.1]));
        self.sorted = true;
    }

    /// Whether `name` was pushed (the set sorted since).
    pub fn contains(&self, name: &[u8]) -> bool {
        debug_assert!(self.sorted, "NameSet::contains before sort");
        self.spans.binary_search_by(|&(start, end)| self.bytes[start..end].cmp(name)).is_ok()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&[u8]]) -> NameSet {
        let mut set = NameSet::default();
        for name in names {
            set.push(name);
        }
        set.sort();
        set
    }

    #[test]
    fn finds_exactly_the_names_pushed() {
        let unix = [b"unix:/".as_slice(), &[b'a'; 106]].concat();
        let s = set(&[b"127.0.0.1:80", b"[::1.2.3.4]:80", &unix, b"127.0.0.1:80", b"", b"10.0.0.1:8080"]);
        assert_eq!(s.len(), 6);
        for name in [b"127.0.0.1:80".as_slice(), b"[::1.2.3.4]:80", &unix, b"", b"10.0.0.1:8080"] {
            assert!(s.contains(name), "{name:?}");
        }
        // A prefix, an extension, another spelling of the same address.
        for name in [b"127.0.0.1:8".as_slice(), b"127.0.0.1:800", b"[::102:304]:80", &unix[..unix.len() - 1]] {
            assert!(!s.contains(name), "{name:?}");
        }
    }

    #[test]
    fn an_empty_set_has_nothing() {
        let s = set(&[]);
        assert!(s.is_empty());
        assert!(!s.contains(b""));
        assert!(!s.contains(b"127.0.0.1:80"));
    }
}

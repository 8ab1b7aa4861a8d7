//! A JSON value that keeps objects as ordered key lists and refuses
//! duplicate keys (serde_json's `Value` silently keeps the last one, so
//! `{"weight":1,"weight":2}` would mean weight 2, where a query string or
//! a text body with the parameter twice is refused).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Up to this many keys, an object's keys are checked for duplicates by
/// comparing each with the earlier ones; beyond, through a hash set.
const SCANNED_KEYS: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// Integers that fit; anything else numeric (negative, fractional,
    /// too large) is kept as its text for the error message.
    Unsigned(u64),
    OtherNumber(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Unsigned(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(u64::try_from(v).map(Json::Unsigned).unwrap_or_else(|_| Json::OtherNumber(v.to_string())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::OtherNumber(v.to_string()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields: Vec<(String, Json)> = Vec::new();
        // The keys seen, once the object has more than a few: comparing
        // each key with every earlier one cost O(K²) (a 1 MiB body of
        // distinct keys kept a worker busy for 20 s); a small object is
        // still only scanned, with no allocation.
        let mut seen: Option<HashSet<String>> = None;
        while let Some(key) = map.next_key::<String>()? {
            let duplicate = match &mut seen {
                Some(seen) => !seen.insert(key.clone()),
                None => fields.iter().any(|(k, _)| *k == key),
            };
            if duplicate {
                // Error texts are echoed to clients: no raw control characters.
                return Err(de::Error::custom(format!("duplicate key \"{}\"", crate::address::shown(&key))));
            }
            let value = map.next_value()?;
            fields.push((key, value));
            if seen.is_none() && fields.len() == SCANNED_KEYS {
                seen = Some(fields.iter().map(|(k, _)| k.clone()).collect());
            }
        }
        Ok(Json::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let v = Json::parse(r#"{"a":[1,-2,1.5,"x",true,null]}"#).unwrap();
        let Some(Json::Array(items)) = v.get("a") else { panic!() };
        assert_eq!(items[0], Json::Unsigned(1));
        assert_eq!(items[1], Json::OtherNumber("-2".into()));
        assert_eq!(items[2], Json::OtherNumber("1.5".into()));
        assert_eq!(items[5], Json::Null);
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(Json::parse(r#"{"a":1,"a":2}"#).unwrap_err().to_string().contains("duplicate key \"a\""));
        assert!(Json::parse(r#"{"s":[{"w":1,"w":1}]}"#).is_err());
        assert!(Json::parse(r#"{"a":{"b":1},"b":{"b":2}}"#).is_ok());
        // Found by the fuzzer: the key used to be echoed raw.
        let e = Json::parse("{\"a\\rb\":1,\"a\\rb\":2}").unwrap_err().to_string();
        assert!(!e.chars().any(char::is_control), "{e}");
    }

    fn object_text(keys: &[String]) -> String {
        let fields: Vec<String> = keys.iter().map(|k| format!("\"{k}\":0")).collect();
        format!("{{{}}}", fields.join(","))
    }

    /// Duplicates are refused with the same error whether the object is
    /// small (scanned) or large (hashed), wherever the second one is.
    #[test]
    fn duplicate_keys_are_refused_in_objects_of_any_size() {
        for len in [2, SCANNED_KEYS - 1, SCANNED_KEYS, SCANNED_KEYS + 1, 100] {
            let keys: Vec<String> = (0..len).map(|i| format!("k{i}")).collect();
            assert!(Json::parse(&object_text(&keys)).is_ok(), "{len}");
            for first in [0, len / 2, len - 1] {
                for at in [first + 1, len] {
                    let mut with = keys.clone();
                    with.insert(at, keys[first].clone());
                    let e = Json::parse(&object_text(&with)).unwrap_err().to_string();
                    assert!(e.starts_with(&format!("duplicate key \"k{first}\" at line 1 column ")), "{len} {at}: {e}");
                }
            }
        }
        // Past the scanned keys too, the key is echoed without control characters.
        let mut keys: Vec<String> = (0..=SCANNED_KEYS).map(|i| format!("k{i}")).collect();
        keys.extend(["a\\rb".to_string(), "a\\rb".to_string()]);
        let e = Json::parse(&object_text(&keys)).unwrap_err().to_string();
        assert!(e.starts_with("duplicate key \"a?b\""), "{e}");
    }

    /// A large object of distinct keys (hunt 19 F2: 116,506 keys in 1 MiB)
    /// is read whole, its keys in order; one duplicate at its end is found.
    #[test]
    fn large_objects_are_accepted() {
        let keys: Vec<String> = (0..120_000).map(|i| format!("{i:06}")).collect();
        let Json::Object(fields) = Json::parse(&object_text(&keys)).unwrap() else { panic!() };
        assert!(fields.iter().map(|(k, _)| k).eq(keys.iter()));
        let mut with = keys.clone();
        with.push("000000".to_string());
        assert!(Json::parse(&object_text(&with)).unwrap_err().to_string().starts_with("duplicate key \"000000\""));
    }
}

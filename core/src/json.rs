//! A JSON value that keeps objects as ordered key lists and refuses
//! duplicate keys (serde_json's `Value` silently keeps the last one, so
//! `{"weight":1,"weight":2}` would mean weight 2, where a query string or
//! a text body with the parameter twice is refused).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

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
        while let Some(key) = map.next_key::<String>()? {
            if fields.iter().any(|(k, _)| *k == key) {
                // Error texts are echoed to clients: no raw control characters.
                return Err(de::Error::custom(format!("duplicate key \"{}\"", crate::address::shown(&key))));
            }
            let value = map.next_value()?;
            fields.push((key, value));
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
}

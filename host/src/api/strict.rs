//! A serde [`Deserializer`] adapter that reads a struct from an object only.
//!
//! serde's derived structs also accept an array of their fields in order, so
//! through a plain deserializer `["thread.created", {}]` is an event and
//! `"limits": [1000]` sets `fuel`. No client means that: through [`Strict`],
//! at any depth, an array where an object is expected is the usual
//! `invalid type: sequence, expected struct …` error. Everything else is
//! passed to the inner deserializer unchanged.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// Wraps a deserializer so that structs (and struct variants) are read from
/// objects only.
pub struct Strict<D>(pub D);

/// A visitor whose nested deserializers are wrapped in [`Strict`].
struct Wrap<V>(V);

/// A seed that deserializes through [`Strict`].
struct Seed<S>(S);

/// A seed that reads a struct variant's fields from an object.
struct StructFields<V>(V);

macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method(Wrap(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_option deserialize_unit
        deserialize_seq deserialize_map deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
    }

    /// The point of the adapter: a struct is read as a map, which refuses a
    /// sequence.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Wrap(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrap(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident: $ty:ty)*) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<V::Value, E> {
            self.0.$method(value)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(formatter)
    }

    forward_visit! {
        visit_bool: bool
        visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64 visit_i128: i128
        visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64 visit_u128: u128
        visit_f32: f32 visit_f64: f64 visit_char: char
        visit_str: &str visit_borrowed_str: &'de str visit_string: String
        visit_bytes: &[u8] visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(Strict(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(Strict(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Wrap(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Wrap(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(Wrap(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Strict(deserializer))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Seed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<A> {
    type Error = A::Error;
    type Variant = Wrap<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        self.0
            .variant_seed(Seed(seed))
            .map(|(value, variant)| (value, Wrap(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }

    /// A struct variant's fields are read from an object, like a struct's.
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.newtype_variant_seed(StructFields(visitor))
    }
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for StructFields<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        deserializer.deserialize_map(Wrap(self.0))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::{Map, Value};

    use super::*;
    use crate::domain::automation::NewAutomation;
    use crate::domain::event::IncomingEvent;

    fn strict<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let value = T::deserialize(Strict(&mut deserializer))?;
        deserializer.end()?;
        Ok(value)
    }

    #[test]
    fn a_struct_is_read_from_an_object_only() {
        let event: IncomingEvent =
            strict(r#"{"trigger": "thread.created", "payload": {"n": 1}}"#).unwrap();
        assert_eq!(event.trigger, "thread.created");
        // What serde's derive takes from a plain deserializer…
        let fields = r#"["thread.created", {"n": 1}, null]"#;
        assert!(serde_json::from_str::<IncomingEvent>(fields).is_ok());
        // …and what the adapter refuses.
        let error = strict::<IncomingEvent>(fields).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("invalid type: sequence, expected struct IncomingEvent"),
            "{error}"
        );
    }

    #[test]
    fn nested_structs_are_strict_too() {
        let body = r#"{"name": "n", "type": "trigger", "limits": [1000]}"#;
        assert!(serde_json::from_str::<NewAutomation>(body).is_ok());
        let error = strict::<NewAutomation>(body).unwrap_err();
        assert!(error.to_string().contains("expected struct"), "{error}");
        let fine = r#"{"name": "n", "type": "trigger", "limits": {"fuel": 1000}, "retry": {"max_attempts": 2}}"#;
        let automation: NewAutomation = strict(fine).unwrap();
        assert_eq!(automation.limits.unwrap().fuel, Some(1000));
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum Shape {
        Point,
        Circle(u32),
        Rect { w: u32, h: u32 },
    }

    #[test]
    fn enums_pass_and_struct_variants_want_objects() {
        assert_eq!(strict::<Shape>(r#""Point""#).unwrap(), Shape::Point);
        assert_eq!(
            strict::<Shape>(r#"{"Circle": 2}"#).unwrap(),
            Shape::Circle(2)
        );
        assert_eq!(
            strict::<Shape>(r#"{"Rect": {"w": 1, "h": 2}}"#).unwrap(),
            Shape::Rect { w: 1, h: 2 }
        );
        assert!(serde_json::from_str::<Shape>(r#"{"Rect": [1, 2]}"#).is_ok());
        assert!(strict::<Shape>(r#"{"Rect": [1, 2]}"#).is_err());
    }

    #[test]
    fn json_values_and_exact_numbers_pass_unchanged() {
        let text = r#"{"big": 1234567890123456789012345678901234567890, "tiny": 1e-400, "list": [1, -0, 2.50], "none": null, "s": "é\u0000"}"#;
        let value: Map<String, Value> = strict(text).unwrap();
        assert_eq!(
            Value::Object(value),
            serde_json::from_str::<Value>(text).unwrap()
        );
        let written = strict::<Value>(text).unwrap().to_string();
        for number in [
            "1234567890123456789012345678901234567890",
            "1e-400",
            "-0",
            "2.50",
        ] {
            assert!(written.contains(number), "{number} in {written}");
        }
        assert!(strict::<Value>("1 2").is_err());
    }
}

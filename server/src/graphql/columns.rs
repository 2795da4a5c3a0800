//! Objects in a page, served in one pass when the selection asks only for
//! their stored columns.
//!
//! async-graphql resolves each field of a derived object through a boxed
//! future of its own and gathers them in a `FuturesUnordered`. A page of 50
//! functions with seven fields is 350 such futures, and they were the
//! largest share of the list's server time that async-graphql's typed
//! objects can avoid (BENCHMARKS.md, "List query"). [`Listed`] builds such a
//! selection's value directly, each field with the conversion its resolver
//! would return (for scalars and enums, `InputType::to_value`, or
//! [`timestamp_value`] and [`uuid_value`], which write the same text for
//! less). Any other
//! selection (a fragment, a directive, a field with a resolver of its own)
//! goes to the derived object unchanged, so the two paths cannot disagree on
//! anything but speed; `tests` checks that they agree.
//!
//! This relies on the schema having no extensions (see
//! [`super::operation`]): an extension's per-field hooks are not called on
//! this path.

use std::borrow::Cow;
use std::cell::RefCell;

use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::Entry;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, InputType as _, Name, OutputType, Positioned, ServerResult, Value,
};
use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use uuid::Uuid;

/// An object whose plain fields are stored values.
pub trait Columns: OutputType {
    /// The value of the field `name` when it is a stored value without
    /// arguments, exactly as the derived object resolves it; `None` for a
    /// field with a resolver of its own.
    fn column(&self, name: &str) -> Option<Value>;
}

/// `T` as an item of a list: the same GraphQL type, resolved in one pass
/// when its selection allows.
pub struct Listed<T>(pub T);

impl<T: Columns> Listed<T> {
    /// The object's value, if every selected field is a column.
    fn columns(&self, ctx: &ContextSelectionSet<'_>) -> Option<Value> {
        let selection = &ctx.item.node.items;
        SHAPE.with_borrow_mut(|shape| {
            if !shape.as_ref().is_some_and(|shape| shape.fits(selection)) {
                *shape = Some(Shape::of(selection)?);
            }
            let shape = shape.as_ref()?;
            let mut object = shape.object.clone();
            for (field, slot) in shape.fields.iter().zip(&shape.slots) {
                let Some(slot) = *slot else { continue };
                let value = match field.name.as_str() {
                    "__typename" => Value::String(self.0.introspection_type_name().into_owned()),
                    name => self.0.column(name)?,
                };
                if let Some((_, entry)) = object.get_index_mut(slot) {
                    *entry = value;
                }
            }
            Some(Value::Object(object))
        })
    }
}

thread_local! {
    /// The shape of the selection this thread served last: the items of a
    /// page share one selection, and a page is resolved on one thread.
    static SHAPE: RefCell<Option<Shape>> = const { RefCell::new(None) };
}

/// The object a selection of plain fields makes, with its keys hashed once.
///
/// An item's object is a clone of [`Shape::object`] with the values put in
/// by position: a clone copies the keys' hashes, where inserting each key
/// hashes it again (SipHash; with the map's insertions, 6 % of a list
/// request's server instructions for a page of 50, BENCHMARKS.md session
/// 19). A shape is reused only for a selection it [`fits`](Shape::fits):
/// the same response keys of the same fields in the same order.
struct Shape {
    fields: Vec<ShapeField>,
    /// Per field, the index of its value in `object`; `None` for a repeated
    /// response key, whose first field answers (the validator refuses two
    /// different fields under one key).
    slots: Vec<Option<usize>>,
    /// The response keys, each with `null`.
    object: IndexMap<Name, Value>,
}

struct ShapeField {
    key: Name,
    name: Name,
}

impl Shape {
    /// `None` when a selection is not only plain fields: a fragment, or a
    /// directive other than @skip and @include (those are gone by now),
    /// goes to the derived object.
    fn of(selection: &[Positioned<Selection>]) -> Option<Self> {
        let mut shape = Self {
            fields: Vec::with_capacity(selection.len()),
            slots: Vec::with_capacity(selection.len()),
            object: IndexMap::with_capacity(selection.len()),
        };
        for item in selection {
            let field = plain_field(item)?;
            let key = field.response_key().node.clone();
            let entry = shape.object.entry(key.clone());
            let slot = match entry {
                Entry::Occupied(_) => None,
                Entry::Vacant(vacant) => {
                    let slot = vacant.index();
                    vacant.insert(Value::Null);
                    Some(slot)
                }
            };
            shape.slots.push(slot);
            shape.fields.push(ShapeField {
                key,
                name: field.name.node.clone(),
            });
        }
        Some(shape)
    }

    fn fits(&self, selection: &[Positioned<Selection>]) -> bool {
        selection.len() == self.fields.len()
            && selection.iter().zip(&self.fields).all(|(item, known)| {
                plain_field(item).is_some_and(|field| {
                    same_name(&field.response_key().node, &known.key)
                        && same_name(&field.name.node, &known.name)
                })
            })
    }
}

/// Names of one document share their text, so most comparisons end at the
/// pointer.
fn same_name(a: &Name, b: &Name) -> bool {
    std::ptr::eq(a.as_str(), b.as_str()) || a == b
}

fn plain_field(selection: &Positioned<Selection>) -> Option<&Field> {
    match &selection.node {
        Selection::Field(field) if field.node.directives.is_empty() => Some(&field.node),
        _ => None,
    }
}

/// A timestamp as async-graphql's `DateTime<Utc>` scalar writes it
/// (chrono's `to_rfc3339`: the fraction of a second in 3, 6 or 9 digits or
/// none, and `+00:00`), written without `core::fmt`: two per function in a
/// page of 50 were 6 % of a list request's server instructions
/// (BENCHMARKS.md, session 19). Years outside 0–9999 and leap seconds are
/// left to chrono.
pub fn timestamp_value(at: &DateTime<Utc>) -> Value {
    let (date, time) = (at.date_naive(), at.time());
    let nanos = time.nanosecond();
    let Ok(year @ 0..=9999) = u32::try_from(date.year()) else {
        return at.to_value();
    };
    if nanos >= 1_000_000_000 {
        return at.to_value();
    }
    let mut head = *b"0000-00-00T00:00:00";
    put_digits(&mut head[0..4], year);
    put_digits(&mut head[5..7], date.month());
    put_digits(&mut head[8..10], date.day());
    put_digits(&mut head[11..13], time.hour());
    put_digits(&mut head[14..16], time.minute());
    put_digits(&mut head[17..19], time.second());
    let mut text = Vec::with_capacity(35);
    text.extend_from_slice(&head);
    if nanos != 0 {
        let mut fraction = *b".000000000";
        put_digits(&mut fraction[1..], nanos);
        let digits = if nanos % 1_000_000 == 0 {
            3
        } else if nanos % 1_000 == 0 {
            6
        } else {
            9
        };
        text.extend_from_slice(&fraction[..=digits]);
    }
    text.extend_from_slice(b"+00:00");
    String::from_utf8(text).map_or_else(|_| at.to_value(), Value::String)
}

/// `value`'s last decimal digits into `out`, zero-padded to its length.
fn put_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// A UUID as async-graphql's scalar writes it (hyphenated, lower case), in
/// one allocation of its size.
pub fn uuid_value(id: &Uuid) -> Value {
    Value::String(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .to_owned(),
    )
}

impl<T: Columns> OutputType for Listed<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match self.columns(ctx) {
            Some(value) => Ok(value),
            None => self.0.resolve(ctx, field).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, Value};
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::Listed;
    use crate::graphql::types::{Function, FunctionStatus};

    fn function(wasm_size: Option<i32>, description: Option<&str>) -> Function {
        Function {
            id: Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
            name: "add \"quoted\" ✓".into(),
            description: description.map(Into::into),
            language: "assemblyscript".into(),
            source: "export function handle(input: string): string { return input; }\n".into(),
            status: FunctionStatus::Ready,
            compile_error: None,
            wasm_size,
            revision: 3,
            deployed_revision: Some(2),
            created_at: Utc.with_ymd_and_hms(2026, 12, 4, 5, 6, 7).unwrap(),
            updated_at: Utc.timestamp_micros(1_796_360_000_123_456).unwrap(),
        }
    }

    fn functions() -> Vec<Function> {
        vec![function(Some(27_500), Some("adds")), function(None, None)]
    }

    struct Query;

    #[Object]
    impl Query {
        async fn derived(&self) -> Vec<Function> {
            functions()
        }

        async fn listed(&self) -> Vec<Listed<Function>> {
            functions().into_iter().map(Listed).collect()
        }
    }

    /// `selection` on both paths, each as the JSON text a client receives
    /// (in the selection's order).
    async fn both(selection: &str) -> (String, String) {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let mut query = format!("{{ derived {selection} listed {selection} }}");
        if selection.contains("...F") {
            query.push_str(" fragment F on Function { name revision }");
        }
        let response = schema.execute(query).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let Value::Object(data) = response.data else {
            panic!("no data");
        };
        let text = |field: &str| serde_json::to_string(&data[field]).unwrap();
        (text("derived"), text("listed"))
    }

    #[tokio::test]
    async fn every_column_is_served_as_the_derived_object_serves_it() {
        let all = "{ id name description language source status compileError wasmSize \
                   revision deployedRevision createdAt updatedAt __typename }";
        let (derived, listed) = both(all).await;
        assert_eq!(derived, listed);
        assert!(listed.starts_with(r#"[{"id":"12345678-9abc-def0-1234-56789abcdef0","name":"add \"quoted\" ✓","description":"adds","#), "{listed}");
        assert!(listed.contains(r#""status":"READY""#), "{listed}");
        assert!(listed.contains(r#""wasmSize":null"#), "{listed}");
    }

    #[tokio::test]
    async fn aliases_repeats_and_fragments_answer_as_the_derived_object() {
        for selection in [
            "{ a: id b: id id __typename t: __typename }",
            "{ id ...F }",
            "{ ... on Function { id status } name }",
            "{ name @include(if: true) revision @skip(if: true) }",
            // The same response keys over other fields, one after the other.
            "{ x: name y: id }",
            "{ x: id y: name }",
            "{ x: id }",
        ] {
            let (derived, listed) = both(selection).await;
            assert_eq!(derived, listed, "{selection}");
        }
    }

    #[test]
    fn timestamps_and_ids_are_written_as_their_scalars_write_them() {
        use async_graphql::InputType as _;
        use chrono::{DateTime, NaiveDate};

        use super::{timestamp_value, uuid_value};

        let day = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let mut times = Vec::new();
        for nanos in [
            0,
            1,
            999_999_999,
            5_000_000,
            120_000_000,
            771_082_000,
            1_000,
            123_456_789,
            1_000_000_000, // a leap second
            1_999_999_999,
        ] {
            let time = day.and_hms_nano_opt(23, 59, 59, nanos).unwrap();
            times.push(time.and_utc());
        }
        times.push(Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap());
        times.push(Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap());
        times.push(Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap());
        times.push(Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap());
        times.push(DateTime::UNIX_EPOCH);
        times.push(Utc.timestamp_micros(1_796_360_000_123_456).unwrap());
        for at in times {
            assert_eq!(timestamp_value(&at), at.to_value(), "{at:?}");
        }

        for id in [
            Uuid::nil(),
            Uuid::max(),
            Uuid::new_v4(),
            Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
        ] {
            assert_eq!(uuid_value(&id), id.to_value());
        }
    }
}

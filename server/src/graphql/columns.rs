//! Objects in a page, served in one pass when the selection asks only for
//! their stored columns.
//!
//! async-graphql resolves each field of a derived object through a boxed
//! future of its own and gathers them in a `FuturesUnordered`. A page of 50
//! functions with seven fields is 350 such futures, and they were the
//! largest share of the list's server time that async-graphql's typed
//! objects can avoid (BENCHMARKS.md, "List query"). [`Listed`] builds such a
//! selection's value directly, each field with the conversion its resolver
//! would return (for scalars and enums, `InputType::to_value`). Any other
//! selection (a fragment, a directive, a field with a resolver of its own)
//! goes to the derived object unchanged, so the two paths cannot disagree on
//! anything but speed; `tests` checks that they agree.
//!
//! This relies on the schema having no extensions (see
//! [`super::operation`]): an extension's per-field hooks are not called on
//! this path.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value};

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
        let items = &ctx.item.node.items;
        let mut object = IndexMap::with_capacity(items.len());
        for selection in items {
            let Selection::Field(field) = &selection.node else {
                return None;
            };
            let field = &field.node;
            // @skip and @include are gone by now; any other directive is
            // applied by the derived path.
            if !field.directives.is_empty() {
                return None;
            }
            let value = match field.name.node.as_str() {
                "__typename" => Value::String(self.0.introspection_type_name().into_owned()),
                name => self.0.column(name)?,
            };
            // A repeated response key selects the same column again (the
            // validator refuses two different fields under one key).
            object
                .entry(field.response_key().node.clone())
                .or_insert(value);
        }
        Some(Value::Object(object))
    }
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
        ] {
            let (derived, listed) = both(selection).await;
            assert_eq!(derived, listed, "{selection}");
        }
    }
}

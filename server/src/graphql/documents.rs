//! Parsed documents of the queries this process has seen, so a client that
//! sends the same query text again (every dashboard, load generator and
//! `executeFunction` caller does) skips the parse. Only the parse is cached:
//! depth, complexity and the validation rules still run on every request,
//! against its own variables.
//!
//! Bounded twice: [`CAPACITY`] documents, least recently used forgotten first,
//! and only query texts up to [`MAX_CACHED_QUERY`] bytes, so a client sending
//! endless distinct or huge queries costs evictions, never memory.

use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;
use lru::LruCache;

/// Distinct query texts remembered.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(256).expect("non-zero");
/// Longer query texts are parsed every time.
const MAX_CACHED_QUERY: usize = 4096;

static DOCUMENTS: LazyLock<Mutex<LruCache<String, Arc<ExecutableDocument>>>> =
    LazyLock::new(|| Mutex::new(LruCache::new(CAPACITY)));

/// The request's parsed document: from the cache when this text was parsed
/// before, otherwise parsed now (and remembered when it parsed). A query
/// that does not parse is left for the schema to report.
pub fn parse(request: &mut Request) -> Option<&ExecutableDocument> {
    if request.query.len() <= MAX_CACHED_QUERY {
        let cached = lock().get(request.query.as_str()).cloned();
        match cached {
            Some(document) => request.set_parsed_query(ExecutableDocument::clone(&document)),
            None => {
                let document = Arc::new(request.parsed_query().ok()?.clone());
                lock().put(request.query.clone(), document);
            }
        }
    }
    request.parsed_query().ok()
}

fn lock() -> std::sync::MutexGuard<'static, LruCache<String, Arc<ExecutableDocument>>> {
    DOCUMENTS.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_seen_before_gets_an_equal_document() {
        let query = "query Seen { functions(first: 3) { totalCount } }";
        let first = format!("{:?}", parse(&mut Request::new(query)).expect("parses"));
        assert!(lock().contains(query));
        let again = format!("{:?}", parse(&mut Request::new(query)).expect("parses"));
        assert_eq!(first, again);
    }

    #[test]
    fn queries_that_do_not_parse_or_are_too_long_are_not_remembered() {
        let broken = "query Broken { functions(";
        assert!(parse(&mut Request::new(broken)).is_none());
        assert!(!lock().contains(broken));

        let long = format!("{{ {} }}", "__typename ".repeat(MAX_CACHED_QUERY / 10));
        assert!(parse(&mut Request::new(long.as_str())).is_some());
        assert!(!lock().contains(long.as_str()));
    }
}

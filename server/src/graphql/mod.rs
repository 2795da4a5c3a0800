//! The GraphQL API: schema assembly and the state its resolvers share. Types
//! live in [`types`], operations in [`query`], [`mutation`] and
//! [`subscription`], batching in [`loaders`], parsed documents in
//! [`documents`], pages served in one pass in [`columns`], and the mapping
//! of failures to the contract's error codes in [`error`].

pub mod analytics;
pub mod columns;
pub mod documents;
pub mod error;
pub mod loaders;
pub mod metrics;
pub mod mutation;
pub mod operation;
pub mod query;
pub mod subscription;
pub mod types;

use async_graphql::Schema;
use async_graphql::dataloader::DataLoader;
use sea_orm::DatabaseConnection;

use crate::config::ApiSettings;
use crate::db::KeptConnections;
use crate::events::EventBus;
use crate::executions::Executor;
use crate::functions::FunctionLimits;

/// Query complexity of a field that reads the database, on top of what it
/// selects: a plain field costs 1, so without this a few thousand aliases of a
/// database lookup fit under the complexity limit and cost as many round trips.
pub const DB_FIELD_COST: usize = 10;

pub type AppSchema =
    Schema<query::QueryRoot, mutation::MutationRoot, subscription::SubscriptionRoot>;

/// What resolvers reach through the context.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// The API's reads (single statements), on connections kept between them.
    pub reads: KeptConnections,
    pub executor: Executor,
    pub events: EventBus,
    pub function_limits: FunctionLimits,
}

pub fn build_schema(state: AppState, settings: &ApiSettings) -> AppSchema {
    let reads = state.reads.clone();
    Schema::build(
        query::QueryRoot,
        mutation::MutationRoot,
        subscription::SubscriptionRoot,
    )
    .data(DataLoader::new(
        loaders::Functions(reads.clone()),
        tokio::spawn,
    ))
    .data(DataLoader::new(
        loaders::ExecutionPages(reads),
        tokio::spawn,
    ))
    .data(state)
    .limit_depth(settings.max_query_depth)
    .limit_complexity(settings.max_query_complexity)
    // No extensions: error codes and metrics are added by the transports
    // (see `operation`).
    .finish()
}

/// The schema's SDL without any state (what `schema.graphql` holds).
pub fn sdl() -> String {
    Schema::build(
        query::QueryRoot,
        mutation::MutationRoot,
        subscription::SubscriptionRoot,
    )
    .finish()
    .sdl()
}

//! ProjectNIL server: AssemblyScript functions compiled to WebAssembly through
//! pgmq queues and run in wasmtime, behind a GraphQL API with live subscriptions.
//! `main.rs` only parses the command line; [`app`] wires the pieces together.

pub mod analytics;
pub mod app;
pub mod auth;
pub mod compile;
pub mod config;
pub mod db;
pub mod events;
pub mod executions;
pub mod functions;
pub mod graphql;
pub mod http;
pub mod maintenance;
pub mod metrics;
pub mod pagination;
pub mod queue;
pub mod rest;
pub mod runtime;
pub mod storable;
pub mod telemetry;

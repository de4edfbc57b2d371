//! Functions that `function` nodes with `action: "custom"` call by name.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use crate::context::Context;

/// Why a registered function failed; the node fails with this message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FunctionError(pub String);

impl From<String> for FunctionError {
    fn from(message: String) -> Self {
        FunctionError(message)
    }
}

impl From<&str> for FunctionError {
    fn from(message: &str) -> Self {
        FunctionError(message.to_owned())
    }
}

type SyncFn = dyn Fn(&Context, &Map<String, Value>) -> Result<Value, FunctionError> + Send + Sync;
type AsyncFn =
    dyn Fn(&Context, &Map<String, Value>) -> BoxFuture<'static, Result<Value, FunctionError>> + Send + Sync;

#[derive(Clone)]
enum Function {
    Sync(Arc<SyncFn>),
    Async(Arc<AsyncFn>),
}

/// Named functions for `function` nodes with `action: "custom"`.
///
/// A function gets the run's context and the node's configuration and returns
/// the node's output. Async functions read what they need from the context
/// first, then return a future that owns its data:
///
/// ```
/// use roomkit_graph::FunctionRegistry;
/// use serde_json::json;
///
/// let mut registry = FunctionRegistry::new();
/// registry.register("calculate_priority", |context, _config| {
///     let critical = context.get("triage.output.severity") == Some(&json!("critical"));
///     Ok(json!({"priority": if critical { "P1" } else { "P2" }}))
/// });
/// registry.register_async("lookup_owner", |context, _config| {
///     let team = context.get("triage.output.team").cloned();
///     async move { Ok(json!({"owner": team})) }
/// });
/// assert!(registry.contains("lookup_owner"));
/// ```
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    functions: HashMap<String, Function>,
}

impl FunctionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        FunctionRegistry::default()
    }

    /// Registers a synchronous function under `name`, replacing any other.
    pub fn register<F>(&mut self, name: &str, function: F) -> &mut Self
    where
        F: Fn(&Context, &Map<String, Value>) -> Result<Value, FunctionError> + Send + Sync + 'static,
    {
        self.functions.insert(name.to_owned(), Function::Sync(Arc::new(function)));
        self
    }

    /// Registers an asynchronous function under `name`, replacing any other.
    pub fn register_async<F, Fut>(&mut self, name: &str, function: F) -> &mut Self
    where
        F: Fn(&Context, &Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, FunctionError>> + Send + 'static,
    {
        let boxed = move |context: &Context, config: &Map<String, Value>| -> BoxFuture<'static, _> {
            Box::pin(function(context, config))
        };
        self.functions.insert(name.to_owned(), Function::Async(Arc::new(boxed)));
        self
    }

    /// Whether a function is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// Calls the function `name`; `None` when there is none.
    pub(crate) async fn call(
        &self,
        name: &str,
        context: &Context,
        config: &Map<String, Value>,
    ) -> Option<Result<Value, FunctionError>> {
        Some(match self.functions.get(name)? {
            Function::Sync(function) => function(context, config),
            Function::Async(function) => function(context, config).await,
        })
    }
}

impl fmt::Debug for FunctionRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.functions.keys().collect();
        names.sort();
        f.debug_struct("FunctionRegistry").field("functions", &names).finish()
    }
}

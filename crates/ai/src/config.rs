//! Agents and providers: the agents file, and [`Agents`], what the AI nodes
//! call models through.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::duration_text;
use crate::error::AgentsError;
use crate::message::ToolSpec;
use crate::pace::Pace;
use crate::retry::RetryPolicy;

/// The wire format a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// An OpenAI-compatible chat completions endpoint: OpenAI, Ollama, vLLM,
    /// LM Studio... (`POST {base_url}/chat/completions`, `Authorization: Bearer`).
    #[serde(rename = "openai")]
    OpenAi,
    /// The Anthropic Messages API (`POST {base_url}/v1/messages`, `x-api-key`).
    Anthropic,
}

impl ProviderKind {
    /// The base URL used when a provider gives none.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
        }
    }
}

/// A named model provider: where it is, how to authenticate, how long to wait
/// and how to retry.
///
/// The API key is never part of the configuration: `api_key_env` names the
/// environment variable read when a request is sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The wire format.
    pub kind: ProviderKind,
    /// Where the API is (see [`ProviderKind::default_base_url`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The environment variable holding the API key; none sends no key (a
    /// local Ollama, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// How long one call may take, streamed answer included (default 120 s).
    #[serde(default = "default_timeout", with = "duration_text")]
    pub timeout: Duration,
    /// How 429 and 5xx answers are retried.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// At most this many requests a minute to the provider from this
    /// process, all its runs together (retries count), spread evenly; none:
    /// no pacing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<NonZeroU32>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(120)
}

impl ProviderConfig {
    /// A provider of `kind` at its default URL, with no key, the default
    /// timeout and retries.
    pub fn new(kind: ProviderKind) -> Self {
        ProviderConfig {
            kind,
            base_url: None,
            api_key_env: None,
            timeout: default_timeout(),
            retry: RetryPolicy::default(),
            requests_per_minute: None,
        }
    }

    /// Sets the base URL.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// Names the environment variable holding the API key.
    pub fn with_api_key_env(mut self, env: impl Into<String>) -> Self {
        self.api_key_env = Some(env.into());
        self
    }

    /// Sets the timeout of each call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Paces requests to at most `requests` a minute from this process.
    pub fn with_requests_per_minute(mut self, requests: NonZeroU32) -> Self {
        self.requests_per_minute = Some(requests);
        self
    }

    /// The base URL without a trailing slash.
    pub(crate) fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or(self.kind.default_base_url()).trim_end_matches('/')
    }
}

/// One agent: a model on a provider with its instructions and tools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's id, as nodes name it in `agent_id`.
    pub id: String,
    /// The provider's name in the file's `providers`.
    pub provider: String,
    /// The model, as the provider names it.
    pub model: String,
    /// What the agent does, shown to supervisors and swarms that hand work to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The most tokens one reply may have (Anthropic requires one: 1024 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The function tools the agent may call (each needs a function registered
    /// with [`Agents::with_tool`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
}

impl AgentConfig {
    /// An agent with no system prompt, sampling settings or tools.
    pub fn new(id: impl Into<String>, provider: impl Into<String>, model: impl Into<String>) -> Self {
        AgentConfig {
            id: id.into(),
            provider: provider.into(),
            model: model.into(),
            description: None,
            system_prompt: None,
            temperature: None,
            max_tokens: None,
            tools: Vec::new(),
        }
    }

    /// Sets the system prompt.
    pub fn with_system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = Some(prompt.into());
        self
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the temperature.
    pub fn with_temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the reply's token limit.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Adds a function tool.
    pub fn with_tool(mut self, tool: ToolSpec) -> Self {
        self.tools.push(tool);
        self
    }
}

/// The contents of an agents file: named providers and the agents using them.
///
/// ```
/// use roomkit_graph_ai::AgentsConfig;
///
/// let config = AgentsConfig::from_json(r#"{
///   "providers": {
///     "local": {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1", "timeout": "60s"},
///     "claude": {"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY",
///                "retry": {"max_attempts": 5, "initial_backoff": "500ms"}}
///   },
///   "agents": [
///     {"id": "triage-agent", "provider": "local", "model": "llama3.2",
///      "system_prompt": "You triage bug reports.", "temperature": 0.2, "max_tokens": 512},
///     {"id": "writer", "provider": "claude", "model": "claude-sonnet-4-5",
///      "tools": [{"name": "lookup", "description": "Finds a user",
///                 "parameters": {"type": "object", "properties": {"email": {"type": "string"}}}}]}
///   ]
/// }"#)?;
/// assert_eq!(config.agents[0].provider, "local");
/// assert_eq!(config.providers["local"].timeout.as_secs(), 60);
/// assert_eq!(config.providers["claude"].retry.max_attempts, 5);
/// # Ok::<(), roomkit_graph_ai::AgentsError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AgentsConfig {
    /// Providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The agents.
    pub agents: Vec<AgentConfig>,
}

impl AgentsConfig {
    /// Reads an agents file's text. Mistakes name their place: the line and
    /// column of bad JSON, the agent or provider and field of a bad value.
    pub fn from_json(text: &str) -> Result<Self, AgentsError> {
        let value: Value = serde_json::from_str(text).map_err(|e| AgentsError::Syntax {
            line: e.line(),
            column: e.column(),
            message: strip_position(&e),
        })?;
        AgentsConfig::from_value(&value)
    }

    /// Reads an agents file's JSON value.
    pub fn from_value(value: &Value) -> Result<Self, AgentsError> {
        let invalid = |at: String, message: String| AgentsError::Invalid { at, message };
        let Some(root) = value.as_object() else {
            return Err(invalid("agents file".into(), "must be a JSON object".into()));
        };
        if let Some(key) = root.keys().find(|key| !matches!(key.as_str(), "providers" | "agents")) {
            return Err(invalid(
                "agents file".into(),
                format!("unknown field `{key}`, expected `providers` or `agents`"),
            ));
        }
        let mut config = AgentsConfig::default();
        match root.get("providers") {
            None => {}
            Some(Value::Object(providers)) => {
                for (name, provider) in providers {
                    let parsed = ProviderConfig::deserialize(provider)
                        .map_err(|e| invalid(format!("providers.{name}"), e.to_string()))?;
                    config.providers.insert(name.clone(), parsed);
                }
            }
            Some(_) => {
                return Err(invalid("providers".into(), "must be an object of named providers".into()));
            }
        }
        match root.get("agents") {
            None => {}
            Some(Value::Array(agents)) => {
                for (i, agent) in agents.iter().enumerate() {
                    let at = match agent.get("id").and_then(Value::as_str) {
                        Some(id) => format!("agents[{i}] ({id:?})"),
                        None => format!("agents[{i}]"),
                    };
                    config
                        .agents
                        .push(AgentConfig::deserialize(agent).map_err(|e| invalid(at, e.to_string()))?);
                }
            }
            Some(_) => return Err(invalid("agents".into(), "must be an array of agents".into())),
        }
        Ok(config)
    }
}

impl<'de> Deserialize<'de> for AgentsConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        AgentsConfig::from_value(&value).map_err(serde::de::Error::custom)
    }
}

/// serde_json's message without its " at line L column C" suffix (kept in
/// [`AgentsError::Syntax`]'s own fields).
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// A function an agent's tool call runs: JSON arguments in, JSON result (or an
/// error message shown to the model) out.
pub(crate) type ToolFunction = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// Reads an environment variable (replaceable, so tests and embedders can
/// supply keys without touching the process environment).
type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Everything the AI nodes need: the checked agents and providers, the
/// functions behind the agents' tools, and one shared HTTP client.
///
/// ```
/// use roomkit_graph_ai::{AgentConfig, Agents, AgentsConfig, ProviderConfig, ProviderKind};
/// use serde_json::json;
///
/// let mut config = AgentsConfig::default();
/// config.providers.insert(
///     "local".into(),
///     ProviderConfig::new(ProviderKind::OpenAi).with_base_url("http://127.0.0.1:11434/v1"),
/// );
/// config.agents.push(AgentConfig::new("helper", "local", "llama3.2").with_system_prompt("Be brief."));
///
/// let agents = Agents::new(config)?
///     .with_tool("add", |args| async move {
///         Ok(json!(args["a"].as_i64().unwrap_or(0) + args["b"].as_i64().unwrap_or(0)))
///     });
/// assert!(agents.agent("helper").is_some());
/// assert!(agents.agent("nobody").is_none());
/// # Ok::<(), roomkit_graph_ai::AgentsError>(())
/// ```
#[derive(Clone)]
pub struct Agents {
    config: AgentsConfig,
    by_id: HashMap<String, usize>,
    tools: HashMap<String, ToolFunction>,
    env: EnvLookup,
    pub(crate) http: reqwest::Client,
    /// The pace of each provider with `requests_per_minute`, shared by every
    /// call of the process.
    paces: HashMap<String, Arc<Pace>>,
}

impl fmt::Debug for Agents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tools: Vec<&String> = self.tools.keys().collect();
        tools.sort();
        f.debug_struct("Agents").field("config", &self.config).field("tool_functions", &tools).finish()
    }
}

impl Agents {
    /// Checks `config` (every agent's provider declared, ids unique) and sets
    /// up the HTTP client. API keys are read from the process environment.
    pub fn new(config: AgentsConfig) -> Result<Self, AgentsError> {
        let mut by_id = HashMap::with_capacity(config.agents.len());
        for (i, agent) in config.agents.iter().enumerate() {
            if !config.providers.contains_key(&agent.provider) {
                return Err(AgentsError::UnknownProvider {
                    agent: agent.id.clone(),
                    provider: agent.provider.clone(),
                    known: config.providers.keys().cloned().collect(),
                });
            }
            if by_id.insert(agent.id.clone(), i).is_some() {
                return Err(AgentsError::DuplicateAgent(agent.id.clone()));
            }
        }
        let http = reqwest::Client::builder().build().map_err(|e| AgentsError::Client(e.to_string()))?;
        let paces = config
            .providers
            .iter()
            .filter_map(|(name, provider)| {
                Some((name.clone(), Arc::new(Pace::per_minute(provider.requests_per_minute?))))
            })
            .collect();
        Ok(Agents {
            config,
            by_id,
            tools: HashMap::new(),
            env: Arc::new(|name| std::env::var(name).ok()),
            http,
            paces,
        })
    }

    /// Reads and checks an agents file's text (see [`AgentsConfig::from_json`]).
    ///
    /// ```
    /// use roomkit_graph_ai::{Agents, AgentsError};
    ///
    /// let error = Agents::from_json(r#"{"providers": {}, "agents": [{"id": "a", "provider": "x", "model": "m"}]}"#)
    ///     .unwrap_err();
    /// assert!(matches!(error, AgentsError::UnknownProvider { .. }));
    /// let error = Agents::from_json("{\n  \"agents\": [,]\n}").unwrap_err();
    /// assert!(matches!(error, AgentsError::Syntax { line: 2, .. }), "{error}");
    /// ```
    pub fn from_json(text: &str) -> Result<Self, AgentsError> {
        Agents::new(AgentsConfig::from_json(text)?)
    }

    /// Reads and checks the agents file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AgentsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| AgentsError::Read { path: path.to_owned(), source })?;
        Agents::from_json(&text)
    }

    /// Registers the function behind the tool `name` (for every agent that
    /// declares a tool of that name). Its `Err` text is shown to the model as
    /// the tool's result, marked as an error.
    pub fn with_tool<F, Fut>(mut self, name: impl Into<String>, function: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        self.tools.insert(name.into(), Arc::new(move |args| Box::pin(function(args))));
        self
    }

    /// Reads API keys through `lookup` instead of the process environment.
    pub fn with_env_lookup(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env = Arc::new(lookup);
        self
    }

    /// The checked configuration.
    pub fn config(&self) -> &AgentsConfig {
        &self.config
    }

    /// The agent `id`.
    pub fn agent(&self, id: &str) -> Option<&AgentConfig> {
        self.by_id.get(id).map(|&i| &self.config.agents[i])
    }

    /// The ids of every agent, in file order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.config.agents.iter().map(|agent| agent.id.as_str())
    }

    /// The provider `name`.
    pub(crate) fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.config.providers.get(name)
    }

    /// The pace of provider `name`, when it has one.
    pub(crate) fn pace(&self, name: &str) -> Option<&Pace> {
        self.paces.get(name).map(Arc::as_ref)
    }

    /// The function behind tool `name`.
    pub(crate) fn tool_function(&self, name: &str) -> Option<&ToolFunction> {
        self.tools.get(name)
    }

    /// Whether a function is registered for tool `name`.
    pub fn has_tool_function(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    /// Reads an environment variable.
    pub(crate) fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        Agents::from_json(text).unwrap_err().to_string()
    }

    #[test]
    fn mistakes_in_an_agents_file_name_their_place() {
        assert_eq!(
            error_of("{\n  \"providers\": {\n    \"p\": {\"kind\": \"openai\",}\n  }\n}"),
            "agents file is not valid JSON at line 3, column 28: trailing comma"
        );
        let file = |provider: &str, agent: &str| {
            format!(r#"{{"providers": {{"p": {provider}}}, "agents": [{agent}]}}"#)
        };
        let ok_provider = r#"{"kind": "openai"}"#;
        assert_eq!(
            error_of(&file(ok_provider, r#"{"id": "triage", "provider": "p"}"#)),
            "agents[0] (\"triage\"): missing field `model`"
        );
        assert!(
            error_of(&file(ok_provider, r#"{"id": "t", "provider": "p", "model": "m", "temprature": 1}"#))
                .starts_with("agents[0] (\"t\"): unknown field `temprature`, expected one of")
        );
        assert_eq!(
            error_of(&file(r#"{"kind": "azure"}"#, "")),
            "providers.p: unknown variant `azure`, expected `openai` or `anthropic`"
        );
        assert!(
            error_of(&file(r#"{"kind": "openai", "timeout": "soon"}"#, ""))
                .starts_with("providers.p: invalid duration \"soon\"")
        );
        assert!(
            error_of(&file(r#"{"kind": "openai", "retry": {"max_attempts": "3"}}"#, ""))
                .starts_with("providers.p: invalid type")
        );
        assert_eq!(
            error_of(&file(ok_provider, r#"{"id": "t", "provider": "q", "model": "m"}"#)),
            "agent \"t\" uses provider \"q\", which is not declared (declared: p)"
        );
        assert_eq!(
            error_of(&file(
                ok_provider,
                r#"{"id": "t", "provider": "p", "model": "m"}, {"id": "t", "provider": "p", "model": "n"}"#
            )),
            "agent id \"t\" is declared twice: every agent needs its own id"
        );
        assert_eq!(
            error_of(r#"{"agent": []}"#),
            "agents file: unknown field `agent`, expected `providers` or `agents`"
        );
        let missing = Agents::load("/nonexistent/agents.json").unwrap_err();
        assert!(
            missing.to_string().starts_with("cannot read agents file /nonexistent/agents.json"),
            "{missing}"
        );
    }

    #[test]
    fn a_file_reads_back_as_written_with_defaults_filled_in() {
        let agents = Agents::from_json(
            r#"{"providers": {"p": {"kind": "anthropic", "api_key_env": "K", "timeout": "30s"}},
                "agents": [{"id": "a", "provider": "p", "model": "m", "tools": [{"name": "t"}]}]}"#,
        )
        .unwrap();
        let provider = &agents.config().providers["p"];
        assert_eq!(provider.timeout, Duration::from_secs(30));
        assert_eq!(provider.retry, RetryPolicy::default());
        assert_eq!(provider.base_url(), "https://api.anthropic.com");
        assert_eq!(agents.agent("a").unwrap().tools[0].parameters, crate::message::no_parameters());
        let path = std::env::temp_dir().join(format!("roomkit-agents-{}.json", std::process::id()));
        std::fs::write(&path, serde_json::to_string_pretty(agents.config()).unwrap()).unwrap();
        let loaded = Agents::load(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(loaded.unwrap().config(), agents.config());
        let written = serde_json::to_value(agents.config()).unwrap();
        let again = AgentsConfig::from_value(&written).unwrap();
        assert_eq!(&again, agents.config());
    }
}

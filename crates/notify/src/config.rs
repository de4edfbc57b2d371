//! The configured channels, by name, built in code or read from a JSON file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lettre::message::Mailbox;
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::channel::Channel;
use crate::email::EmailChannel;
use crate::error::{ChannelsError, ConfigError};
use crate::secret::Secret;
use crate::slack::SlackChannel;
use crate::webhook::WebhookChannel;

/// The channels notification nodes can name.
///
/// A node's `channel` is looked up by name first; a name that is no
/// configured channel but a kind (`slack`, `email`, `webhook`) stands for the
/// one channel of that kind, so the seed's `{"channel": "slack"}` works with
/// any single Slack channel.
///
/// # The channels file
///
/// ```json
/// {
///   "channels": {
///     "ops-slack": {"kind": "slack", "webhook_url_env": "SLACK_WEBHOOK_URL"},
///     "hooks": {
///       "kind": "webhook",
///       "url": "https://hooks.example.com/roomkit",
///       "headers": {"Authorization": {"env": "HOOKS_TOKEN"}, "X-Team": "ops"}
///     },
///     "mail": {
///       "kind": "email",
///       "smtp_host": "smtp.example.com",
///       "smtp_port": 587,
///       "tls": "starttls",
///       "username_env": "SMTP_USER",
///       "password_env": "SMTP_PASSWORD",
///       "from": "Workflows <robot@example.com>",
///       "to": ["oncall@example.com"]
///     }
///   }
/// }
/// ```
///
/// | kind | fields |
/// |---|---|
/// | `webhook` | `url` or `url_env`; `headers`: name → value or `{"env": VAR}` |
/// | `slack` | `webhook_url` or `webhook_url_env` |
/// | `email` | `smtp_host`, `from` (required); `smtp_port` (by `tls`: 587, 465, 25); `tls`: `starttls` (default), `tls` or `none`; `username`/`username_env` with `password`/`password_env`; `to`: an address or a list; `ca_file`: PEM certificates to trust besides the web roots (a relative path is read from the file's folder) |
///
/// Every `…_env` field names an environment variable read when the file is
/// loaded; a variable that is unset (or empty) is an error naming the channel,
/// the field and the variable. Unknown fields are errors too: a typo does not
/// silently drop a setting.
///
/// # Built in code
///
/// ```
/// use roomkit_graph_notify::{Channels, SlackChannel};
///
/// let channels = Channels::new()
///     .with("ops-slack", SlackChannel::new("https://hooks.slack.com/services/T0/B0/X".parse()?));
/// let (name, channel) = channels.resolve("slack")?;
/// assert_eq!((name, channel.kind()), ("ops-slack", "slack"));
/// assert!(channels.resolve("pager").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct Channels {
    by_name: BTreeMap<String, Arc<dyn Channel>>,
}

impl Channels {
    /// No channels.
    pub fn new() -> Self {
        Channels::default()
    }

    /// Adds (or replaces) the channel `name`.
    pub fn with(mut self, name: impl Into<String>, channel: impl Channel + 'static) -> Self {
        self.insert(name, Arc::new(channel));
        self
    }

    /// Adds (or replaces) the shared channel `name`.
    pub fn insert(&mut self, name: impl Into<String>, channel: Arc<dyn Channel>) {
        self.by_name.insert(name.into(), channel);
    }

    /// Adds every channel of `other`, replacing those of the same name.
    pub fn extend(&mut self, other: Channels) {
        self.by_name.extend(other.by_name);
    }

    /// The channel called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.by_name.get(name)
    }

    /// The channels' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// How many channels there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The channel a node's `channel` field names, with its configured name:
    /// the channel of that name, or else the only channel of that kind.
    pub fn resolve(&self, name: &str) -> Result<(&str, &Arc<dyn Channel>), ConfigError> {
        if let Some((name, channel)) = self.by_name.get_key_value(name) {
            return Ok((name, channel));
        }
        let mut of_kind = self.by_name.iter().filter(|(_, channel)| channel.kind() == name);
        match (of_kind.next(), of_kind.next()) {
            (Some((name, channel)), None) => Ok((name, channel)),
            (Some(_), Some(_)) => Err(ConfigError::AmbiguousChannel {
                channel: name.to_owned(),
                candidates: self
                    .by_name
                    .iter()
                    .filter(|(_, channel)| channel.kind() == name)
                    .map(|(name, _)| name.clone())
                    .collect(),
            }),
            (None, _) => Err(ConfigError::UnknownChannel {
                channel: name.to_owned(),
                known: self.by_name.keys().cloned().collect(),
            }),
        }
    }

    /// Reads a channels file, taking `…_env` fields from the process's
    /// environment.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Channels, ChannelsError> {
        Channels::from_path_with_env(path, |name| std::env::var(name).ok())
    }

    /// Reads a channels file, taking `…_env` fields from `env`.
    pub fn from_path_with_env(
        path: impl AsRef<Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Channels, ChannelsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ChannelsError::Read { path: path.to_owned(), source })?;
        let loader = Loader { env: &env, base: path.parent().map(Path::to_owned) };
        loader
            .channels(&text)
            .map_err(|inner| ChannelsError::InFile { path: path.to_owned(), inner: Box::new(inner) })
    }

    /// Reads the JSON text of a channels file, taking `…_env` fields from the
    /// process's environment.
    pub fn from_json(text: &str) -> Result<Channels, ChannelsError> {
        Channels::from_json_with_env(text, |name| std::env::var(name).ok())
    }

    /// Reads the JSON text of a channels file, taking `…_env` fields from `env`.
    ///
    /// ```
    /// use roomkit_graph_notify::Channels;
    ///
    /// let channels = Channels::from_json_with_env(
    ///     r#"{"channels": {"ops": {"kind": "slack", "webhook_url_env": "OPS_SLACK"}}}"#,
    ///     |name| (name == "OPS_SLACK").then(|| "https://hooks.slack.com/services/T0/B0/X".to_owned()),
    /// )?;
    /// assert_eq!(channels.get("ops").map(|c| c.kind()), Some("slack"));
    /// assert!(!format!("{channels:?}").contains("T0/B0"));
    /// # Ok::<(), roomkit_graph_notify::ChannelsError>(())
    /// ```
    pub fn from_json_with_env(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Channels, ChannelsError> {
        Loader { env: &env, base: None }.channels(text)
    }
}

impl fmt::Debug for Channels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(&self.by_name).finish()
    }
}

/// Reads a channels document.
struct Loader<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Where relative paths (`ca_file`) are read from.
    base: Option<PathBuf>,
}

impl Loader<'_> {
    fn channels(&self, text: &str) -> Result<Channels, ChannelsError> {
        let document: Value = serde_json::from_str(text)?;
        let Value::Object(mut document) = document else {
            return Err(ChannelsError::Shape(
                "a channels file is a JSON object: {\"channels\": {NAME: {\"kind\": ...}}}".to_owned(),
            ));
        };
        let channels = match document.remove("channels") {
            Some(Value::Object(channels)) => channels,
            Some(_) => {
                return Err(ChannelsError::Shape(
                    "channels: must be an object of channels by name".to_owned(),
                ));
            }
            None => {
                return Err(ChannelsError::Shape(
                    "channels: missing (the object of channels by name)".to_owned(),
                ));
            }
        };
        if let Some(field) = document.keys().next() {
            return Err(ChannelsError::Shape(format!("{field}: unknown top-level field (only channels)")));
        }
        let mut loaded = Channels::new();
        for (name, config) in channels {
            let Value::Object(config) = config else {
                return Err(ChannelsError::invalid(&name, "", "a channel is an object with a kind"));
            };
            let channel = self.channel(&name, config)?;
            loaded.insert(name, channel);
        }
        Ok(loaded)
    }

    fn channel(&self, name: &str, mut config: Map<String, Value>) -> Result<Arc<dyn Channel>, ChannelsError> {
        let found = config.remove("kind");
        let Some(&(kind, known)) =
            KINDS.iter().find(|(kind, _)| found.as_ref().and_then(Value::as_str) == Some(kind))
        else {
            return Err(ChannelsError::UnknownKind {
                channel: name.to_owned(),
                found: found.map_or_else(|| "null".to_owned(), |kind| kind.to_string()),
            });
        };
        // A typo is reported as such, before the field it misspells is missed.
        if let Some(field) = config.keys().find(|field| !known.contains(&field.as_str())) {
            return Err(ChannelsError::UnknownField { channel: name.to_owned(), kind, field: field.clone() });
        }
        let fields = Fields { channel: name, kind, config, env: self.env };
        match kind {
            "webhook" => self.webhook(fields),
            "slack" => self.slack(fields),
            _ => self.email(fields),
        }
    }

    fn webhook(&self, mut fields: Fields<'_>) -> Result<Arc<dyn Channel>, ChannelsError> {
        let url = fields.required_secret("url", "url_env")?;
        let url = fields.url(url.0, &url.1)?;
        let mut channel = WebhookChannel::new(url);
        if let Some(headers) = fields.take("headers") {
            let Value::Object(headers) = headers else {
                return Err(fields.invalid("headers", "must be an object of header name → value"));
            };
            for (header, value) in headers {
                let field = format!("headers.{header}");
                let name = HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| fields.invalid(&field, "not a valid header name"))?;
                let value = match value {
                    Value::String(value) => value,
                    Value::Object(mut env) if env.len() == 1 => match env.remove("env") {
                        Some(Value::String(var)) => fields.env_var(&field, &var)?,
                        _ => return Err(fields.invalid(&field, "must be a string or {\"env\": VARIABLE}")),
                    },
                    _ => return Err(fields.invalid(&field, "must be a string or {\"env\": VARIABLE}")),
                };
                let value = HeaderValue::from_str(&value)
                    .map_err(|_| fields.invalid(&field, "not a valid header value (control characters?)"))?;
                channel = channel.with_header(name, value);
            }
        }
        Ok(Arc::new(channel))
    }

    fn slack(&self, mut fields: Fields<'_>) -> Result<Arc<dyn Channel>, ChannelsError> {
        let url = fields.required_secret("webhook_url", "webhook_url_env")?;
        let url = fields.url(url.0, &url.1)?;
        Ok(Arc::new(SlackChannel::new(url)))
    }

    fn email(&self, mut fields: Fields<'_>) -> Result<Arc<dyn Channel>, ChannelsError> {
        let host = fields.string("smtp_host")?.ok_or_else(|| fields.missing("smtp_host"))?;
        let from = fields.string("from")?.ok_or_else(|| fields.missing("from"))?;
        let from: Mailbox = from
            .parse()
            .map_err(|error| fields.invalid("from", format!("{from:?} is not an email address: {error}")))?;
        let mut channel = EmailChannel::new(host, from);
        if let Some(tls) = fields.string("tls")? {
            channel =
                channel.with_tls(tls.parse().map_err(|problem: String| fields.invalid("tls", problem))?);
        }
        if let Some(port) = fields.take("smtp_port") {
            let Some(port_number) =
                port.as_u64().and_then(|port| u16::try_from(port).ok()).filter(|port| *port > 0)
            else {
                return Err(fields.invalid("smtp_port", format!("{port} is not a port number (1 to 65535)")));
            };
            channel = channel.with_port(port_number);
        }
        let username = fields.optional_secret("username", "username_env")?;
        let password = fields.optional_secret("password", "password_env")?;
        match (username, password) {
            (Some((username, _)), Some((password, _))) => {
                channel = channel.with_credentials(username.expose(), password);
            }
            (None, None) => {}
            (Some(_), None) => return Err(fields.missing("password|password_env")),
            (None, Some(_)) => return Err(fields.missing("username|username_env")),
        }
        let to = match fields.take("to") {
            None => Vec::new(),
            Some(Value::String(address)) => vec![address],
            Some(Value::Array(addresses)) => addresses
                .into_iter()
                .map(|address| match address {
                    Value::String(address) => Ok(address),
                    other => Err(fields.invalid("to", format!("{other} is not an email address"))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(fields.invalid("to", format!("{other} is not an address or a list of them")));
            }
        };
        let to = to
            .iter()
            .map(|address| {
                address.parse::<Mailbox>().map_err(|error| {
                    fields.invalid("to", format!("{address:?} is not an email address: {error}"))
                })
            })
            .collect::<Result<_, _>>()?;
        channel = channel.with_to(to);
        if let Some(file) = fields.string("ca_file")? {
            let path = match &self.base {
                Some(base) => base.join(&file),
                None => PathBuf::from(&file),
            };
            let pem = std::fs::read(&path).map_err(|error| {
                fields.invalid("ca_file", format!("cannot read {}: {error}", path.display()))
            })?;
            let readable = lettre::transport::smtp::client::Certificate::from_pem(&pem).is_ok()
                && pem.windows(CERTIFICATE_PEM.len()).any(|window| window == CERTIFICATE_PEM);
            if !readable {
                return Err(fields.invalid("ca_file", format!("{} holds no PEM certificate", path.display())));
            }
            channel = channel.with_root_certificates(pem);
        }
        channel.check().map_err(|problem| fields.invalid("smtp_host", problem))?;
        Ok(Arc::new(channel))
    }
}

/// Each channel kind and its fields (besides `kind`).
const KINDS: [(&str, &[&str]); 3] = [
    ("webhook", &["url", "url_env", "headers"]),
    ("slack", &["webhook_url", "webhook_url_env"]),
    (
        "email",
        &[
            "smtp_host",
            "smtp_port",
            "tls",
            "username",
            "username_env",
            "password",
            "password_env",
            "from",
            "to",
            "ca_file",
        ],
    ),
];

/// How a PEM certificate begins.
const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// Where a secret came from: the field that gave it (for errors).
type Sourced = (Secret, String);

/// One channel's fields, taken one by one; what is left is unknown.
struct Fields<'a> {
    channel: &'a str,
    kind: &'static str,
    config: Map<String, Value>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Fields<'_> {
    fn take(&mut self, field: &str) -> Option<Value> {
        self.config.remove(field)
    }

    fn string(&mut self, field: &str) -> Result<Option<String>, ChannelsError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(text)) if !text.is_empty() => Ok(Some(text)),
            Some(Value::String(_)) => Err(self.invalid(field, "must not be empty")),
            Some(other) => {
                Err(self
                    .invalid(field, format!("must be a string, not {}", roomkit_graph::json_kind(&other))))
            }
        }
    }

    /// `field` given as is, or the variable named by `env_field`; not both.
    fn optional_secret(&mut self, field: &str, env_field: &str) -> Result<Option<Sourced>, ChannelsError> {
        let direct = self.string(field)?;
        let var = self.string(env_field)?;
        match (direct, var) {
            (Some(_), Some(_)) => Err(ChannelsError::Conflict {
                channel: self.channel.to_owned(),
                field: field.to_owned(),
                other: env_field.to_owned(),
            }),
            (Some(value), None) => Ok(Some((Secret::new(value), field.to_owned()))),
            (None, Some(var)) => {
                Ok(Some((Secret::new(self.env_var(env_field, &var)?), env_field.to_owned())))
            }
            (None, None) => Ok(None),
        }
    }

    fn required_secret(&mut self, field: &str, env_field: &str) -> Result<Sourced, ChannelsError> {
        self.optional_secret(field, env_field)?.ok_or_else(|| self.missing(&format!("{field}|{env_field}")))
    }

    fn env_var(&self, field: &str, var: &str) -> Result<String, ChannelsError> {
        match (self.env)(var) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(ChannelsError::MissingEnv {
                channel: self.channel.to_owned(),
                field: field.to_owned(),
                var: var.to_owned(),
            }),
        }
    }

    /// Parses a secret URL; the error never quotes it.
    fn url(&self, url: Secret, field: &str) -> Result<Url, ChannelsError> {
        let parsed = Url::parse(url.expose())
            .map_err(|error| self.invalid(field, format!("not a valid URL ({error})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(
                self.invalid(field, format!("must be an http or https URL, not {}:", parsed.scheme()))
            );
        }
        Ok(parsed)
    }

    fn missing(&self, field: &str) -> ChannelsError {
        ChannelsError::MissingField {
            channel: self.channel.to_owned(),
            kind: self.kind,
            field: field.to_owned(),
        }
    }

    fn invalid(&self, field: &str, problem: impl Into<String>) -> ChannelsError {
        ChannelsError::invalid(self.channel, field, problem)
    }
}

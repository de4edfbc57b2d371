//! A notification node's settings, read once for the handler and for the
//! check of a graph before any run.

use serde_json::{Map, Value};

use crate::delivery::DeliveryPolicy;
use crate::error::ConfigError;

/// What a node's configuration fixes before any run: which channel, how hard
/// to try.
#[derive(Debug)]
pub(crate) struct NodeSettings {
    pub(crate) channel: String,
    pub(crate) policy: DeliveryPolicy,
}

impl NodeSettings {
    /// Reads a notification node's configuration; every mistake, in field order.
    pub(crate) fn parse(config: &Map<String, Value>) -> Result<NodeSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let channel = match config.get("channel") {
            Some(Value::String(channel)) if !channel.is_empty() => Some(channel.clone()),
            _ => {
                errors.push(ConfigError::MissingChannel);
                None
            }
        };
        match config.get("template") {
            Some(Value::String(_)) => {}
            None | Some(Value::Null) => errors.push(ConfigError::MissingTemplate),
            Some(_) => errors.push(ConfigError::invalid("template", "must be a string")),
        }
        if let Some(subject) = config.get("subject").filter(|subject| !subject.is_string()) {
            errors.push(ConfigError::invalid("subject", format!("must be a string, not {subject}")));
        }
        if let Some(to) = config.get("to")
            && let Err(error) = recipients(to.clone())
        {
            errors.push(error);
        }
        let policy = match config.get("delivery").map(DeliveryPolicy::from_config).transpose() {
            Ok(policy) => policy.unwrap_or_default(),
            Err(error) => {
                errors.push(error);
                DeliveryPolicy::default()
            }
        };
        match channel {
            Some(channel) if errors.is_empty() => Ok(NodeSettings { channel, policy }),
            _ => Err(errors),
        }
    }
}

/// A node's `to`: an address, a comma-separated list, or a list; nothing
/// (null) is the channel's own recipients.
pub(crate) fn recipients(to: Value) -> Result<Vec<String>, ConfigError> {
    let split = |text: &str| -> Vec<String> {
        text.split(',').map(str::trim).filter(|address| !address.is_empty()).map(str::to_owned).collect()
    };
    match to {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(split(&text)),
        Value::Array(items) => items.into_iter().try_fold(Vec::new(), |mut all, item| match item {
            Value::String(text) => {
                all.extend(split(&text));
                Ok(all)
            }
            other => Err(ConfigError::invalid("to", format!("{other} is not an address"))),
        }),
        other => {
            Err(ConfigError::invalid("to", format!("must be an address or a list of them, not {other}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn settings_report_every_mistake() {
        let errors = NodeSettings::parse(&config(json!({"to": 5, "delivery": {"attempts": 0}}))).err();
        let fields: Vec<String> =
            errors.unwrap_or_default().iter().map(|error| error.field().to_owned()).collect();
        assert_eq!(fields, ["channel", "template", "to", "delivery.attempts"]);
    }

    #[test]
    fn recipients_accept_strings_lists_and_nothing() {
        assert_eq!(
            recipients(json!("a@x.org, b@x.org")).ok(),
            Some(vec!["a@x.org".into(), "b@x.org".into()])
        );
        assert_eq!(recipients(json!(["a@x.org"])).ok(), Some(vec!["a@x.org".into()]));
        assert_eq!(recipients(Value::Null).ok(), Some(vec![]));
        assert!(recipients(json!([1])).is_err());
    }
}

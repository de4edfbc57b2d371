//! Credentials, and keeping them out of messages.

use std::fmt;

/// A credential: its Debug output never shows it.
///
/// ```
/// use roomkit_graph_notify::Secret;
///
/// let password = Secret::new("hunter2");
/// assert_eq!(format!("{password:?}"), "Secret(***)");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// Replaces every secret in `text` with `***`.
pub(crate) fn mask(text: &str, secrets: &[&str]) -> String {
    let mut masked = text.to_owned();
    for secret in secrets {
        // A very short secret would mask ordinary words; such a secret is no
        // secret anyway.
        if secret.len() >= 4 && masked.contains(secret) {
            masked = masked.replace(secret, "***");
        }
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_replaces_every_occurrence() {
        let text = "POST https://hooks.example/T0/abcd failed; retry https://hooks.example/T0/abcd";
        assert_eq!(mask(text, &["https://hooks.example/T0/abcd"]), "POST *** failed; retry ***");
        assert_eq!(mask("a b", &["a"]), "a b");
    }
}

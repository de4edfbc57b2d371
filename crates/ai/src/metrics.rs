//! What calls to model providers count, through the `metrics` facade (kept
//! only when the process installs a recorder): tokens used and calls that
//! failed, by provider.

use crate::error::ProviderError;
use crate::message::Reply;

/// Tokens a provider reported using, by provider and direction (input,
/// output).
pub const PROVIDER_TOKENS: &str = "roomkit_provider_tokens_total";

/// Calls to a provider that failed (after their retries), by provider and
/// kind (status, timeout, transport, stream, missing_key, unusable).
pub const PROVIDER_ERRORS: &str = "roomkit_provider_errors_total";

/// Counts what a call to `provider` came to.
pub(crate) fn replied(provider: &str, replied: &Result<Reply, ProviderError>) {
    match replied {
        Ok(reply) => {
            if let Some(usage) = reply.usage {
                metrics::counter!(PROVIDER_TOKENS, "provider" => provider.to_owned(), "direction" => "input")
                    .increment(usage.input_tokens);
                metrics::counter!(PROVIDER_TOKENS, "provider" => provider.to_owned(), "direction" => "output")
                    .increment(usage.output_tokens);
            }
        }
        Err(error) => {
            let kind = match error {
                ProviderError::MissingKey { .. } => "missing_key",
                ProviderError::Status { .. } => "status",
                ProviderError::Timeout { .. } => "timeout",
                ProviderError::Unusable { .. } => "unusable",
                ProviderError::Transport { .. } => "transport",
                ProviderError::Stream { .. } => "stream",
            };
            metrics::counter!(PROVIDER_ERRORS, "provider" => provider.to_owned(), "kind" => kind)
                .increment(1);
        }
    }
}

//! The email channel: plain-text messages over SMTP.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use roomkit_graph::ErrorChain;

use crate::channel::{Channel, Notification};
use crate::error::DeliveryError;
use crate::secret::Secret;

/// The longest subject taken from a notification's first line when the node
/// gives none.
const SUBJECT_FROM_TEXT: usize = 78;

/// How the connection to the SMTP server is secured.
///
/// ```
/// use roomkit_graph_notify::SmtpTls;
///
/// let tls: SmtpTls = "starttls".parse()?;
/// assert_eq!(tls, SmtpTls::StartTls);
/// assert_eq!(tls.default_port(), 587);
/// assert_eq!(SmtpTls::Tls.default_port(), 465);
/// assert!("ssl".parse::<SmtpTls>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text, then `STARTTLS`, which the server must offer (`starttls`).
    #[default]
    StartTls,
    /// TLS from the first byte (`tls`, "implicit TLS", usually port 465).
    Tls,
    /// No encryption at all (`none`): only for a relay on the same host or
    /// network.
    None,
}

impl SmtpTls {
    /// The port this mode usually listens on: 587, 465 or 25.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }

    /// `starttls`, `tls` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Tls => "tls",
            SmtpTls::None => "none",
        }
    }
}

impl FromStr for SmtpTls {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Tls),
            "none" => Ok(SmtpTls::None),
            other => Err(format!("{other:?} is not starttls, tls or none")),
        }
    }
}

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Sends each notification as a plain-text email through an SMTP server.
///
/// The subject is the node's `subject`, or else the text's first line. The
/// recipients are the node's `to`, or else the channel's. The `Message-ID` is
/// derived from the node's idempotency key (`<run.node.attempt@from-domain>`),
/// so the copies that retries may send are recognisably one message.
///
/// The password never appears in Debug output or errors.
///
/// ```
/// use roomkit_graph_notify::{EmailChannel, Secret, SmtpTls};
///
/// let mail = EmailChannel::new("smtp.example.com", "Workflows <robot@example.com>".parse()?)
///     .with_tls(SmtpTls::StartTls)
///     .with_credentials("robot", Secret::new("hunter2"))
///     .with_to(vec!["oncall@example.com".parse()?]);
/// assert_eq!(mail.port(), 587);
/// assert!(!format!("{mail:?}").contains("hunter2"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EmailChannel {
    host: String,
    port: Option<u16>,
    tls: SmtpTls,
    credentials: Option<(String, Secret)>,
    root_certificates: Vec<Vec<u8>>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// Built on first use (or by [`EmailChannel::check`]), once.
    transport: OnceLock<Result<Transport, String>>,
}

impl EmailChannel {
    /// Mail from `from` through the SMTP server `host`, with STARTTLS on port
    /// 587 until told otherwise.
    pub fn new(host: impl Into<String>, from: Mailbox) -> Self {
        EmailChannel {
            host: host.into(),
            port: None,
            tls: SmtpTls::default(),
            credentials: None,
            root_certificates: Vec::new(),
            from,
            to: Vec::new(),
            transport: OnceLock::new(),
        }
    }

    /// Connects to `port` instead of the TLS mode's usual one.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self.transport = OnceLock::new();
        self
    }

    /// Secures the connection this way.
    pub fn with_tls(mut self, tls: SmtpTls) -> Self {
        self.tls = tls;
        self.transport = OnceLock::new();
        self
    }

    /// Logs in with `username` and `password`.
    pub fn with_credentials(mut self, username: impl Into<String>, password: Secret) -> Self {
        self.credentials = Some((username.into(), password));
        self.transport = OnceLock::new();
        self
    }

    /// Also trusts the certificates of `pem` (a private CA, a self-signed
    /// relay) besides the usual web roots.
    pub fn with_root_certificates(mut self, pem: Vec<u8>) -> Self {
        self.root_certificates.push(pem);
        self.transport = OnceLock::new();
        self
    }

    /// Sends to `to` when a node names no recipient.
    pub fn with_to(mut self, to: Vec<Mailbox>) -> Self {
        self.to = to;
        self
    }

    /// The port it connects to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.tls.default_port())
    }

    /// Whether the channel can connect as configured (the host is a valid TLS
    /// server name, the root certificates parse), without connecting.
    pub fn check(&self) -> Result<(), String> {
        self.transport().map(|_| ())
    }

    fn transport(&self) -> Result<&Transport, String> {
        self.transport.get_or_init(|| self.build_transport()).as_ref().map_err(Clone::clone)
    }

    fn build_transport(&self) -> Result<Transport, String> {
        let tls = match self.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => Tls::Required(self.tls_parameters()?),
            SmtpTls::Tls => Tls::Wrapper(self.tls_parameters()?),
        };
        let mut builder = Transport::builder_dangerous(&self.host).port(self.port()).tls(tls);
        if let Some((username, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(username.clone(), password.expose().to_owned()));
        }
        Ok(builder.build())
    }

    fn tls_parameters(&self) -> Result<TlsParameters, String> {
        let mut parameters = TlsParameters::builder(self.host.clone());
        for pem in &self.root_certificates {
            let certificate = Certificate::from_pem(pem)
                .map_err(|error| format!("the root certificates cannot be read: {error}"))?;
            parameters = parameters.add_root_certificate(certificate);
        }
        parameters
            .build_rustls()
            .map_err(|error| format!("TLS cannot be set up for {:?}: {error}", self.host))
    }

    /// The message sent for `notification`.
    fn message(&self, notification: &Notification) -> Result<Message, DeliveryError> {
        let to = if notification.to.is_empty() {
            self.to.clone()
        } else {
            notification
                .to
                .iter()
                .map(|address| {
                    address.parse::<Mailbox>().map_err(|error| {
                        DeliveryError::Invalid(format!("to: {address:?} is not an email address: {error}"))
                    })
                })
                .collect::<Result<_, _>>()?
        };
        if to.is_empty() {
            return Err(DeliveryError::Invalid(
                "no recipient: the node gives no `to` and the channel has none".to_owned(),
            ));
        }
        let subject = match &notification.subject {
            Some(subject) => subject.clone(),
            None => {
                notification.text.lines().next().unwrap_or_default().chars().take(SUBJECT_FROM_TEXT).collect()
            }
        };
        let message_id = (!notification.idempotency_key.is_empty())
            .then(|| message_id(&notification.idempotency_key, self.from.email.domain()));
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(message_id)
            .header(ContentType::TEXT_PLAIN);
        for mailbox in to {
            builder = builder.to(mailbox);
        }
        builder
            .body(notification.text.clone())
            .map_err(|error| DeliveryError::Invalid(format!("the message cannot be built: {error}")))
    }
}

/// `<key@domain>` with the key's `/`-separated parts joined by dots and every
/// byte outside `[A-Za-z0-9_-]` written `=XX`, which keeps it a valid and
/// unique Message-ID.
///
/// ```
/// # use roomkit_graph_notify::message_id;
/// assert_eq!(message_id("0193a/publish/1", "example.com"), "<0193a.publish.1@example.com>");
/// assert_eq!(message_id("r/send mail/2", "example.com"), "<r.send=20mail.2@example.com>");
/// ```
pub fn message_id(idempotency_key: &str, domain: &str) -> String {
    let parts: Vec<String> = idempotency_key
        .split('/')
        .map(|part| {
            if part.is_empty() {
                return "_".to_owned();
            }
            part.bytes()
                .map(|byte| match byte {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => (byte as char).to_string(),
                    other => format!("={other:02X}"),
                })
                .collect()
        })
        .collect();
    format!("<{}@{domain}>", parts.join("."))
}

#[async_trait]
impl Channel for EmailChannel {
    fn kind(&self) -> &str {
        "email"
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let message = self.message(notification)?;
        let transport = self.transport().map_err(DeliveryError::Invalid)?;
        match transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() || error.is_transient() => {
                Err(DeliveryError::Smtp(error.to_string()))
            }
            Err(error) => {
                Err(DeliveryError::Connect(format!("{}:{}: {}", self.host, self.port(), ErrorChain(&error))))
            }
        }
    }

    fn secrets(&self) -> Vec<&str> {
        self.credentials.iter().map(|(_, password)| password.expose()).collect()
    }
}

impl fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChannel")
            .field("host", &self.host)
            .field("port", &self.port())
            .field("tls", &self.tls)
            .field("username", &self.credentials.as_ref().map(|(username, _)| username))
            .field("password", &self.credentials.as_ref().map(|(_, password)| password))
            .field("from", &self.from.to_string())
            .field("to", &self.to.iter().map(ToString::to_string).collect::<Vec<_>>())
            .finish()
    }
}

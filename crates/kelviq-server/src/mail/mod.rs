//! Mail: every message is kept in the outbox (`mail_outbox`), then handed
//! to the SMTP server when one is configured (`smtp_url`, through lettre,
//! with TLS for `smtps://` and `?tls=required`). With none, the outbox is
//! the development mailbox: `kelviq mail list` prints it.

use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use kelviq_core::Tenant;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(config: &crate::Config) -> anyhow::Result<Mailer> {
        let from: Mailbox = config.mail_from.parse().map_err(|e| anyhow::anyhow!("mail_from: {e}"))?;
        let transport = match config.smtp_url.as_deref() {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?
                    .timeout(Some(std::time::Duration::from_secs(10)))
                    .build(),
            ),
            None => None,
        };
        Ok(Mailer { transport, from })
    }
}

/// Keeps a message and sends it; a message the SMTP server refused stays
/// in the outbox with the reason, and the caller hears of it.
pub async fn send(state: &AppState, tenant: &Tenant, to: &str, subject: &str, body: &str) -> ServiceResult<()> {
    let now = state.clock.now();
    let seq = state.store.insert_mail(tenant, to, subject, body, now).await?;
    let Some(transport) = &state.mailer.transport else { return Ok(()) };
    let to_box: Mailbox = to.parse().map_err(|_| ServiceError::field("email", "Enter a valid email address."))?;
    let message = Message::builder()
        .from(state.mailer.from.clone())
        .to(to_box)
        .subject(subject)
        .body(body.to_string())
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("building mail: {e}")))?;
    match transport.send(message).await {
        Ok(_) => {
            state.store.mail_sent(seq, state.clock.now(), None).await?;
            Ok(())
        }
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(mail = seq, error = %reason, "the SMTP server did not take a message");
            state.store.mail_sent(seq, state.clock.now(), Some(&reason)).await?;
            Err(ServiceError::Unavailable("The mail could not be sent; try again shortly.".into()))
        }
    }
}

//! Delivery to the SNS topic and the chat webhook (Slack-compatible JSON: `{"text": ...}`), with retries. The
//! webhook URL is a secret: it is never logged or put in an error message.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lifeboat::core::error::aws_error_message;

use crate::render::Message;

/// How long one webhook attempt may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a channel did not take a message. None of them carries the webhook URL.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("SNS publish: {0}")]
    Sns(String),
    #[error("reading the webhook secret: {0}")]
    Secret(String),
    #[error("the webhook secret is JSON without a `url` key")]
    SecretWithoutUrl,
    #[error("the webhook URL in the secret is not a URL")]
    NotAUrl,
    #[error("the webhook URL in the secret must be http(s)")]
    NotHttp,
    #[error("loading the system's trusted roots: {0}")]
    Roots(std::io::Error),
    #[error("building the webhook request: {0}")]
    Request(http::Error),
    #[error("the webhook answered {0}")]
    Status(http::StatusCode),
    #[error("the webhook could not be reached: {0}")]
    Unreachable(String),
    #[error("the webhook did not answer within 10 s")]
    Timeout,
    #[error("{last} ({attempts} attempts)")]
    GaveUp { last: Box<DeliveryError>, attempts: u32 },
}

impl DeliveryError {
    /// Connection errors, timeouts, 5xx and 429 may pass; any other 4xx means the request itself is wrong.
    fn is_retryable(&self) -> bool {
        match self {
            Self::Status(s) => !(s.is_client_error() && s.as_u16() != 429),
            Self::Unreachable(_) | Self::Timeout => true,
            _ => false,
        }
    }
}

pub async fn to_sns(sns: &aws_sdk_sns::Client, topic: &str, m: &Message) -> Result<(), DeliveryError> {
    sns.publish()
        .topic_arn(topic)
        .subject(sanitize_subject(&m.subject))
        .message(&m.text)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| DeliveryError::Sns(aws_error_message(&e)))
}

/// SNS subjects are ASCII without control characters, at most 100 characters.
fn sanitize_subject(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' })
        .take(100)
        .collect()
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn https_client() -> Result<HttpsClient, DeliveryError> {
    // Ring, named as wherever Lifeboat builds a TLS client, never the process default: rustls has none to give
    // when a second provider is compiled in.
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(DeliveryError::Roots)?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// One POST of `body`; any answer but a success is an error.
async fn post_once(client: &HttpsClient, uri: &http::Uri, body: &str) -> Result<(), DeliveryError> {
    let request = http::Request::post(uri.clone())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(DeliveryError::Request)?;
    let resp = match tokio::time::timeout(WEBHOOK_TIMEOUT, client.request(request)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return Err(DeliveryError::Unreachable(aws_error_message(&e))),
        Err(_) => return Err(DeliveryError::Timeout),
    };
    let status = resp.status();
    // The answer's body says nothing we act on; it is read only so the connection can be reused.
    if let Err(e) = resp.into_body().collect().await {
        tracing::debug!(error = %e, "could not read the webhook's answer body");
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Status(status))
    }
}

/// Posts `{"text": ...}`; retries failures (connection errors, 5xx, 429) up to `attempts` times with a doubling
/// pause. A 4xx other than 429 is not retried: the request itself is wrong. Returns the attempt that succeeded.
pub async fn to_webhook(url: &str, m: &Message, attempts: u32, first_pause: Duration) -> Result<u32, DeliveryError> {
    let uri: http::Uri = url.parse().map_err(|_| DeliveryError::NotAUrl)?;
    if !matches!(uri.scheme_str(), Some("https" | "http")) {
        return Err(DeliveryError::NotHttp);
    }
    let client = https_client()?;
    let body = serde_json::json!({"text": m.text}).to_string();
    let mut pause = first_pause;
    let mut attempt = 1;
    loop {
        let err = match post_once(&client, &uri, &body).await {
            Ok(()) => return Ok(attempt),
            Err(e) if !e.is_retryable() => return Err(e),
            Err(e) => e,
        };
        tracing::warn!(attempt, error = %err, "webhook delivery failed; retrying");
        if attempt >= attempts.max(1) {
            return Err(DeliveryError::GaveUp {
                last: Box::new(err),
                attempts,
            });
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retried_and_messages_keep_their_words() {
        assert!(DeliveryError::Status(http::StatusCode::SERVICE_UNAVAILABLE).is_retryable());
        assert!(DeliveryError::Status(http::StatusCode::TOO_MANY_REQUESTS).is_retryable());
        assert!(!DeliveryError::Status(http::StatusCode::NOT_FOUND).is_retryable());
        assert!(DeliveryError::Timeout.is_retryable());
        assert!(!DeliveryError::NotAUrl.is_retryable());
        let gave_up = DeliveryError::GaveUp {
            last: Box::new(DeliveryError::Status(http::StatusCode::SERVICE_UNAVAILABLE)),
            attempts: 3,
        };
        assert_eq!(
            gave_up.to_string(),
            "the webhook answered 503 Service Unavailable (3 attempts)"
        );
    }

    #[tokio::test]
    async fn a_url_that_is_not_http_is_refused_without_naming_it() {
        let m = Message {
            subject: "s".into(),
            text: "t".into(),
            fingerprint: "f".into(),
            key: "k".into(),
            kind: crate::render::Kind::Problem,
        };
        let err = to_webhook("ftp://secret.example/hook", &m, 1, Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "the webhook URL in the secret must be http(s)");
        let err = to_webhook("not a url", &m, 1, Duration::ZERO).await.unwrap_err();
        assert!(!err.to_string().contains("not a url"));
    }
}

//! Delivery to the SNS topic and the chat webhook (Slack-compatible JSON: `{"text": ...}`), with retries. The
//! webhook URL is a secret: it is never logged or put in an error message.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lifeboat::error::aws_error_message;

use crate::render::Message;

pub async fn to_sns(sns: &aws_sdk_sns::Client, topic: &str, m: &Message) -> Result<(), String> {
    sns.publish()
        .topic_arn(topic)
        .subject(sanitize_subject(&m.subject))
        .message(&m.text)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("SNS publish: {}", aws_error_message(&e)))
}

/// SNS subjects are ASCII without control characters, at most 100 characters.
fn sanitize_subject(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' })
        .take(100)
        .collect()
}

/// Posts `{"text": ...}`; retries failures (connection errors, 5xx, 429) up to `attempts` times with a doubling
/// pause. A 4xx other than 429 is not retried: the request itself is wrong.
pub async fn to_webhook(url: &str, m: &Message, attempts: u32, first_pause: Duration) -> Result<u32, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "the webhook URL in the secret is not a URL".to_owned())?;
    if !matches!(uri.scheme_str(), Some("https" | "http")) {
        return Err("the webhook URL in the secret must be http(s)".into());
    }
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("loading the system's trusted roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let body = serde_json::json!({"text": m.text}).to_string();
    let mut pause = first_pause;
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        let request = http::Request::post(uri.clone())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.clone())))
            .map_err(|e| format!("building the webhook request: {e}"))?;
        match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
            Ok(Ok(resp)) => {
                let status = resp.status();
                let _ = resp.into_body().collect().await;
                if status.is_success() {
                    return Ok(attempt);
                }
                last = format!("the webhook answered {status}");
                if status.is_client_error() && status.as_u16() != 429 {
                    return Err(last);
                }
            }
            Ok(Err(e)) => last = format!("the webhook could not be reached: {}", aws_error_message(&e)),
            Err(_) => last = "the webhook did not answer within 10 s".into(),
        }
        tracing::warn!(attempt, error = %last, "webhook delivery failed; retrying");
        if attempt < attempts {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    Err(format!("{last} ({attempts} attempts)"))
}

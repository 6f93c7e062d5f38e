//! AWS configuration, loaded once per cold start.
//!
//! The endpoint comes from the SDK's own `AWS_ENDPOINT_URL`, so the same binary talks to AWS or to a local
//! emulator; there is deliberately no "local mode" here. Throttling and transient errors are retried by the
//! SDK's adaptive retry strategy, never by hand-written loops.
//!
//! Every client of a process shares one HTTPS client ([`https_client`]): the SDK's default connector (hyper 1,
//! rustls on aws-lc-rs, the platform's root certificates, a proxy from the environment), whose trust roots are read
//! and parsed when the first request needs a connection. Left to itself, the SDK gave each client its own HTTPS
//! client and built a connector as each client was constructed, only to check it: every function's cold start
//! scanned the system's certificate directory and parsed every root certificate once per client (five clients:
//! about 3 ms of a monitor's 7 ms start, measured with `perf` beside a minimal `lambda_runtime` function's 1.5
//! ms), and each client parsed them again on its first request. TLS verification is unchanged: the same roots,
//! the same provider, the same cipher suites; only when they load and how often differ.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::ConnectorBuilder;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;

/// Attempts per call, first included. Adaptive mode also rate-limits the client after throttling responses.
pub const MAX_ATTEMPTS: u32 = 8;

/// Loads the shared SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`).
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .http_client(https_client())
        .load()
        .await
}

/// The retry configuration every Lifeboat client uses.
pub fn retry_config() -> RetryConfig {
    RetryConfig::adaptive().with_max_attempts(MAX_ATTEMPTS)
}

/// The HTTPS client of every SDK client of a process: the SDK's own default (the connector its
/// `default-https-client` feature builds for the latest behaviour version), its trust roots loaded on first use.
pub fn https_client() -> SharedHttpClient {
    let sdk_default = aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut builder = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    });
    ConnectOnFirstUse(sdk_default).into_shared()
}

/// An HTTP client that builds its connectors when a request needs one, never when an SDK client is constructed:
/// the hyper client's own check at construction builds a whole TLS connector (reading and parsing every trust
/// root) just to throw it away.
#[derive(Debug)]
struct ConnectOnFirstUse(SharedHttpClient);

impl HttpClient for ConnectOnFirstUse {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The same configuration pointed at another region (for DR copies).
pub fn for_region(config: &SdkConfig, region: &str) -> SdkConfig {
    config
        .to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::{Credentials, Region};
    use aws_smithy_runtime_api::box_error::BoxError;
    use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorFuture};
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::config_bag::ConfigBag;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    /// How often an HTTP client was checked at a client's construction and asked for a connector.
    #[derive(Debug, Default)]
    struct Counts {
        checks: AtomicUsize,
        connectors: AtomicUsize,
    }

    /// An HTTP client that counts, as the SDK's hyper client builds a TLS connector, in both places.
    #[derive(Debug)]
    struct Counting(Arc<Counts>);

    impl HttpClient for Counting {
        fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
            self.0.connectors.fetch_add(1, SeqCst);
            Ok200.into_shared()
        }

        fn validate_base_client_config(&self, _: &RuntimeComponentsBuilder, _: &ConfigBag) -> Result<(), BoxError> {
            self.0.checks.fetch_add(1, SeqCst);
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Ok200;

    impl HttpConnector for Ok200 {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            HttpConnectorFuture::ready(Ok(HttpResponse::new(200.try_into().unwrap(), SdkBody::empty())))
        }
    }

    fn s3(http: SharedHttpClient) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
                .http_client(http)
                .build(),
        )
    }

    #[tokio::test]
    async fn a_client_builds_no_connector_until_its_first_request() {
        // What the SDK does with an HTTP client as it is: a connector's worth of work at construction.
        let counts = Arc::new(Counts::default());
        let _eager = s3(Counting(Arc::clone(&counts)).into_shared());
        assert_eq!(
            counts.checks.load(SeqCst),
            1,
            "the SDK checks a client's HTTP client at construction"
        );

        let counts = Arc::new(Counts::default());
        let client = s3(ConnectOnFirstUse(Counting(Arc::clone(&counts)).into_shared()).into_shared());
        assert_eq!(
            counts.checks.load(SeqCst),
            0,
            "no connector work when a client is built"
        );
        assert_eq!(counts.connectors.load(SeqCst), 0);

        client.head_bucket().bucket("lifeboat-exports").send().await.unwrap();
        assert_eq!(
            counts.connectors.load(SeqCst),
            1,
            "the first request gets its connector"
        );
    }

    #[tokio::test]
    async fn the_shared_client_reaches_an_endpoint_through_the_sdk_connector() {
        // A one-request HTTP server, as moto is to the tests: the real connector, trust roots untouched (plain HTTP).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0_u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before its request ended");
                head.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&head).into_owned()
        });
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
                .endpoint_url(format!("http://127.0.0.1:{port}"))
                .force_path_style(true)
                .http_client(https_client())
                .build(),
        );
        client.head_bucket().bucket("lifeboat-exports").send().await.unwrap();
        let head = server.await.unwrap();
        assert!(head.starts_with("HEAD /lifeboat-exports"), "{head}");
    }
}

//! AWS configuration, loaded once per cold start.
//!
//! The endpoint comes from the SDK's own `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_<SERVICE>`), so the same binary
//! talks to AWS or to a local emulator; there is deliberately no "local mode" here. Throttling and transient errors
//! are retried by the SDK's standard retry strategy ([`retry_config`]), never by hand-written loops.
//!
//! A function's configuration comes from its environment and nowhere else ([`load_config`]): the region from
//! `AWS_REGION` (or `AWS_DEFAULT_REGION`), credentials from the variables Lambda sets (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or, for the export and restore ECS tasks, from the container
//! credentials endpoint (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `_FULL_URI`), in that order. The SDK's default
//! loader would also read profile files, a web identity token (through an STS client), SSO caches and instance
//! metadata; a Lambda function or an ECS task of Lifeboat never has any of them, and their providers and clients
//! were linked into every binary (the binary a cold start reads). Without credentials, the error names
//! the variables looked for. The `lifeboat` tool, which runs where people have profiles and SSO logins, loads the
//! SDK's full default chain itself (cli/src/run.rs).
//!
//! Every client of a process shares one HTTPS client ([`https_client`]): the SDK's default connector (hyper 1,
//! rustls on ring, the platform's root certificates, a proxy from the environment), whose trust roots are read
//! and parsed when the first request needs a connection. Left to itself, the SDK gave each client its own HTTPS
//! client and built a connector as each client was constructed, only to check it: every function's cold start
//! scanned the system's certificate directory and parsed every root certificate once per client (five clients:
//! about 3 ms of a monitor's 7 ms start, measured with `perf` beside a minimal `lambda_runtime` function's 1.5
//! ms), and each client parsed them again on its first request. TLS verification is unchanged: the same roots,
//! the same provider, the same cipher suites; only when they load and how often differ.

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::identity::IdentityCache;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, future, ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::ConnectorBuilder;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

use crate::core::settings::{read, Env, ProcessEnv};

/// Attempts per call, first included.
pub const MAX_ATTEMPTS: u32 = 8;

/// Loads a function's SDK configuration from the process environment (region, credentials, endpoints).
pub async fn load_config() -> SdkConfig {
    config_from(ProcessEnv).await
}

/// The configuration [`load_config`] builds, with the region and the endpoints read from `env` (the credential
/// providers read the process environment: the SDK's providers take no other).
async fn config_from<E: Env + std::fmt::Debug + Send + Sync + 'static>(env: E) -> SdkConfig {
    let http = https_client();
    let region = read(&env, "AWS_REGION").or_else(|| read(&env, "AWS_DEFAULT_REGION"));
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .retry_config(retry_config())
        // The SDK default loader's timeouts (a connect timeout of 3.1 s), from the same function.
        .timeout_config(
            aws_config::default_provider::timeout_config::default_provider()
                .timeout_config()
                .await,
        )
        .identity_cache(IdentityCache::lazy().build())
        .credentials_provider(SharedCredentialsProvider::new(FunctionCredentials::new(http.clone())))
        .http_client(http);
    builder.set_region(region.map(Region::new));
    builder.set_endpoint_url(read(&env, ENDPOINT_URL));
    builder.service_config(EnvEndpoints(env)).build()
}

const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

/// Per-service settings from the environment only, as the SDK's own loader reads them without profile files:
/// `AWS_ENDPOINT_URL_S3` before `AWS_ENDPOINT_URL` (the benchmarks point S3 alone at another server).
#[derive(Debug)]
struct EnvEndpoints<E>(E);

impl<E: Env + std::fmt::Debug + Send + Sync> LoadServiceConfig for EnvEndpoints<E> {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        let service = key.service_id().to_uppercase().replace(' ', "_");
        read(&self.0, &format!("{}_{service}", key.env())).or_else(|| read(&self.0, key.env()))
    }
}

/// No credentials anywhere a function looks.
#[derive(Debug, thiserror::Error)]
#[error(
    "no AWS credentials: neither AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (set by Lambda) nor \
     AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI (set by ECS) is set; a Lifeboat \
     function reads no profile file, web identity token or instance metadata"
)]
pub struct NoCredentials;

/// A function's credentials: the environment's, else the container endpoint's (the SDK's own two providers).
#[derive(Debug)]
struct FunctionCredentials {
    environment: EnvironmentVariableCredentialsProvider,
    container: EcsCredentialsProvider,
}

impl FunctionCredentials {
    fn new(http: SharedHttpClient) -> Self {
        let config = ProviderConfig::without_region()
            .with_http_client(http)
            .with_behavior_version(Some(BehaviorVersion::latest()));
        Self {
            environment: EnvironmentVariableCredentialsProvider::new(),
            container: EcsCredentialsProvider::builder().configure(&config).build(),
        }
    }

    async fn credentials(&self) -> provider::Result {
        match self.environment.provide_credentials().await {
            Err(CredentialsError::CredentialsNotLoaded(_)) => {}
            loaded_or_failed => return loaded_or_failed,
        }
        match self.container.provide_credentials().await {
            Err(CredentialsError::CredentialsNotLoaded(_)) => Err(CredentialsError::not_loaded(NoCredentials)),
            loaded_or_failed => loaded_or_failed,
        }
    }
}

impl ProvideCredentials for FunctionCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}

/// The retry configuration every Lifeboat client uses: the SDK's standard mode (exponential back-off with jitter
/// on each retried call, a retry quota), [`MAX_ATTEMPTS`] attempts.
///
/// Not the adaptive mode (standard plus a client-side rate limiter), which AWS's SDK guide keeps for clients that
/// are the only ones sending to one resource. Its limiter is per client and learns from any throttling answer: one
/// throttled S3 call paced every later call of that client, whatever the operation, for the rest of a warm
/// function's life. Measured in a month under faults (`make chaos`): a monitor run went from 3 s to 10 to 25 s after
/// one throttling answer. Standard mode backs off the call that was throttled, and only that call.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// The HTTPS client of every SDK client of a process: the connector the SDK's `default-https-client` feature builds
/// for the latest behaviour version, but on ring rather than aws-lc-rs (the workspace builds the SDK crates without
/// that feature, whose aws-lc-rs made every function's binary 0.3 to 0.7 MB larger), its trust roots loaded on
/// first use.
pub fn https_client() -> SharedHttpClient {
    let sdk_default = aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut builder = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
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

    #[derive(Debug)]
    struct Vars(Vec<(&'static str, &'static str)>);

    impl Env for Vars {
        fn get(&self, name: &str) -> Option<String> {
            self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        }
    }

    #[tokio::test]
    async fn region_and_endpoints_come_from_the_environment() {
        let config = config_from(Vars(vec![
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000"),
        ]))
        .await;
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-central-1"));
        // The keys the SDK clients ask with (aws-sdk-s3's and aws-sdk-rds's `Config::from(&SdkConfig)`).
        let key = |service| {
            ServiceConfigKey::builder()
                .service_id(service)
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .unwrap()
        };
        let endpoints = config.service_config().unwrap();
        assert_eq!(
            endpoints.load_config(key("S3")).as_deref(),
            Some("http://127.0.0.1:9000"),
            "a service's own variable first"
        );
        assert_eq!(
            endpoints.load_config(key("RDS")).as_deref(),
            Some("http://127.0.0.1:5000"),
            "then the global one"
        );

        let config = config_from(Vars(vec![("AWS_DEFAULT_REGION", "eu-west-1")])).await;
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(
            config.service_config().unwrap().load_config(key("S3")),
            None,
            "AWS's own endpoints"
        );
    }

    /// Set in the environment of the child process that [`credentials_in`] runs.
    const CHILD: &str = "CORE_AWS_TEST_CHILD";

    /// What [`load_config`]'s credentials are in an environment of exactly `vars`: the SDK's providers read the
    /// process environment only, so this test runs itself as a child process with that environment, where it
    /// prints the result on a `credentials:` line.
    fn credentials_in(vars: &[(&str, &str)]) -> String {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "core::aws::tests::a_function_takes_credentials_from_its_environment_or_its_container_only",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env_clear()
            .envs(vars.iter().copied())
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
            .lines()
            .find_map(|l| l.split_once("credentials: ").map(|(_, said)| said))
            .unwrap_or_else(|| panic!("the child printed no credentials line:\n{stdout}"))
            .to_owned()
    }

    /// The child's side: the function's configuration, built as at a cold start, asked for credentials once.
    fn print_credentials() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let said = runtime.block_on(async {
            let config = load_config().await;
            match config.credentials_provider().unwrap().provide_credentials().await {
                Ok(c) => format!("{} {}", c.access_key_id(), c.session_token().unwrap_or("-")),
                Err(e) => format!("error: {}", aws_smithy_types::error::display::DisplayErrorContext(&e)),
            }
        });
        println!("credentials: {said}");
    }

    /// A one-request container credentials endpoint (what ECS serves at 169.254.170.2); returns its URL and the
    /// request it got.
    fn container_endpoint() -> (String, std::thread::JoinHandle<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v2/credentials/task", listener.local_addr().unwrap());
        let served = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut buf = [0_u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed before its request ended");
                head.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"AccessKeyId":"ASIACONTAINER","SecretAccessKey":"container-secret","Token":"container-token","Expiration":"2099-01-01T00:00:00Z"}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).unwrap();
            String::from_utf8_lossy(&head).into_owned()
        });
        (url, served)
    }

    #[test]
    fn a_function_takes_credentials_from_its_environment_or_its_container_only() {
        if std::env::var_os(CHILD).is_some() {
            return print_credentials();
        }
        // A profile with credentials, where the SDK's default chain would find them: a function must not.
        let home = tempfile_dir();
        let profile = home.join("credentials");
        std::fs::write(
            &profile,
            "[default]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = s\n",
        )
        .unwrap();
        let profile = profile.to_str().unwrap().to_owned();
        let files = [
            ("HOME", home.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", profile.as_str()),
            ("AWS_CONFIG_FILE", profile.as_str()),
            ("AWS_REGION", "us-east-1"),
        ];

        // Lambda: the environment's, before a container endpoint (never asked).
        let env_vars = [
            ("AWS_ACCESS_KEY_ID", "ASIALAMBDA"),
            ("AWS_SECRET_ACCESS_KEY", "lambda-secret"),
            ("AWS_SESSION_TOKEN", "lambda-token"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/never"),
        ];
        let vars: Vec<_> = files.iter().chain(&env_vars).copied().collect();
        assert_eq!(credentials_in(&vars), "ASIALAMBDA lambda-token");

        // ECS: the container endpoint's, with its authorization token, when the environment has none.
        let (url, served) = container_endpoint();
        let container = [
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url.as_str()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "task-token"),
        ];
        let vars: Vec<_> = files.iter().chain(&container).copied().collect();
        assert_eq!(credentials_in(&vars), "ASIACONTAINER container-token");
        let request = served.join().unwrap().to_ascii_lowercase();
        assert!(request.starts_with("get /v2/credentials/task "), "{request}");
        assert!(request.contains("\r\nauthorization: task-token\r\n"), "{request}");

        // Neither: an error that names what was looked for, and no profile's credentials.
        let said = credentials_in(&files);
        assert!(said.starts_with("error: "), "{said}");
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            assert!(said.contains(name), "{name} is not named: {said}");
        }
        let _ = std::fs::remove_dir_all(&home);
    }

    /// A fresh directory for the test's profile files.
    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lifeboat-aws-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

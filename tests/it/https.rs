//! The HTTPS client every SDK client of Lifeboat shares (`lifeboat::core::aws::https_client`: rustls on ring, the
//! platform's trust roots) over real TLS: the `lifeboat` tool, whose SDK clients are built on it as the functions'
//! are, reaches moto's S3 through a TLS front (rustls on ring, a certificate for 127.0.0.1 from a test CA). The
//! handshake succeeds and carries the requests only when the platform's roots hold that CA (`SSL_CERT_FILE`, which
//! the root loader reads); otherwise nothing reaches moto.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use lifeboat_tests::moto::Moto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";

/// A TLS listener in front of moto: each connection whose handshake completes is counted and forwarded as is.
struct TlsFront {
    endpoint: String,
    ca: PathBuf,
    handshakes: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

async fn tls_front(upstream: u16) -> TlsFront {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = lifeboat_tests::postgres::make_certificates(dir.path(), None);
    let chain = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&handshakes);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), Arc::clone(&counted));
            tokio::spawn(async move {
                // A client that does not trust the certificate aborts the handshake: nothing is forwarded.
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                counted.fetch_add(1, SeqCst);
                let mut moto = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut moto).await;
            });
        }
    });
    TlsFront {
        endpoint,
        ca,
        handshakes,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_https_client_verifies_the_server_and_speaks_tls_through_ring() {
    let moto = Moto::start();
    aws_sdk_s3::Client::new(&moto.config(REGION))
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let front = tls_front(moto.port).await;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--json", "exports", "app-prod", "--bucket", BUCKET];
    let run = |trusted: bool| {
        let mut cmd = crate::cli::command(&front.endpoint, dir.path(), &args);
        if trusted {
            cmd.env("SSL_CERT_FILE", &front.ca);
        }
        // The front runs on this runtime's workers while the tool runs.
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };

    // The platform's roots without the test CA: the handshake fails, no request reaches moto.
    let out = run(false).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "an untrusted server was accepted: {stderr}");
    assert_eq!(front.handshakes.load(SeqCst), 0, "{stderr}");

    // With the CA among the roots: a verified handshake, and moto's answer (the empty bucket) over it.
    let out = run(true).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["bucket"], BUCKET, "{doc}");
    assert_eq!(doc["exports"], serde_json::json!([]), "{doc}");
    assert!(front.handshakes.load(SeqCst) >= 1, "no TLS connection was made");
}

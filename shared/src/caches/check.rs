//! What a restore test checks on a restored Redis or Valkey cache: that it answers over TLS with its AUTH
//! credentials (`PING`), that each database holds the keys its snapshot's verified RDB copy counted (within a
//! tolerance: keys with a time to live expire between the snapshot and the check), and that the keys an
//! operator names (`session:*`, an RQ queue `rq:queue:default`) are there.
//!
//! Owns: the checks and their verdicts, the reading of `INFO keyspace`, and the small RESP client they speak
//! (commands as arrays of bulk strings; replies bounded in size, since a check reads only short answers).
//!
//! Trust: a verify-full connection is checked against the CA bundle the caller names, or, when it names none,
//! against Amazon's root CAs 1 to 4 shipped in the binary ([`AMAZON_ROOT_CAS`], `shared/certs/`), which every
//! ElastiCache in-transit certificate chains to. Never the system's store: any public CA's certificate for the
//! name would pass there, and the AUTH token is sent right after the handshake.
//!
//! A key count that could not run is reported `skipped` under [`KEY_COUNT_CHECK`] (the report refuses to pass
//! a test with it), and a database the snapshot had keys in and the restore has none of fails whatever the
//! tolerance: a restore test never passes on `PING` alone.
//!
//! Never: writes to the cache (only `AUTH`, `PING`, `INFO`, `SELECT` and `SCAN` are sent), prints the password,
//! or calls AWS. The caller gives the target and the expected counts and puts the checks in its report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::caches::rdb::DbKeys;
use crate::postgres::db::{SslMode, TlsSettings};
use crate::rds::restore::Check;

pub mod cluster;

/// The longest reply read: `INFO keyspace` and `SCAN` pages are far shorter.
const MAX_REPLY: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Amazon Root CA 1 to 4 (public certificates, as Debian's ca-certificates ships them): the only roots a restored
/// cache's certificate is checked against unless a bundle is named.
pub const AMAZON_ROOT_CAS: &[u8] = include_bytes!("../../certs/amazon-root-cas.crt");

/// The name of the key-count check, also when it is skipped (the report looks for it).
pub const KEY_COUNT_CHECK: &str = "keys per database";

/// The TLS configuration of a verify-full connection to a cache: the named bundle's roots, else Amazon's.
fn verify_full_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, CacheError> {
    let mut roots = rustls::RootCertStore::empty();
    let (what, certs): (&str, Vec<_>) = match &tls.ca_bundle {
        Some(path) => (
            path.as_str(),
            CertificateDer::pem_file_iter(path)
                .map_err(|e| CacheError::Tls(format!("reading {path}: {e}")))?
                .collect(),
        ),
        None => (
            "the shipped Amazon root CAs",
            CertificateDer::pem_slice_iter(AMAZON_ROOT_CAS).collect(),
        ),
    };
    for cert in certs {
        let cert = cert.map_err(|e| CacheError::Tls(format!("reading {what}: {e}")))?;
        roots.add(cert).map_err(|e| CacheError::Tls(format!("{what}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(CacheError::Tls(format!("{what} holds no certificate")));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CacheError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Where the restored cache listens and how to log in. The password is a secret and is never printed.
#[derive(Clone)]
pub struct CacheTarget {
    pub host: String,
    pub port: u16,
    /// An RBAC user; `None` logs in with the AUTH token alone.
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls: TlsSettings,
}

impl std::fmt::Debug for CacheTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<secret>"))
            .field("tls", &self.tls.mode.as_str())
            .finish()
    }
}

/// A key, or a glob pattern of keys, that must exist in database `db` of the restored cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct KeyCheck {
    pub name: String,
    pub pattern: String,
    #[serde(default)]
    pub db: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("connecting to {host}:{port}: {message}")]
    Connect { host: String, port: u16, message: String },
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("the server answered `{command}` with an error: {message}")]
    Server { command: String, message: String },
    #[error("the server's reply to `{command}` is not RESP: {what}")]
    Protocol { command: String, what: String },
    #[error("no answer to `{0}` within {TIMEOUT:?}")]
    Timeout(String),
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One connection, logged in.
pub struct Conn {
    io: BufReader<Box<dyn Stream>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

impl Conn {
    /// Connects (TLS unless the settings say `disable`) and logs in with `AUTH` when a password is given.
    pub async fn open(target: &CacheTarget) -> Result<Self, CacheError> {
        Self::open_named(target, &target.host).await
    }

    /// [`Conn::open`], verifying the server's certificate against `tls_name` rather than the address connected
    /// to (a cluster's node reported by its IP: [`cluster::tls_name`]).
    pub async fn open_named(target: &CacheTarget, tls_name: &str) -> Result<Self, CacheError> {
        let connect_err = |message: String| CacheError::Connect {
            host: target.host.clone(),
            port: target.port,
            message,
        };
        let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((target.host.as_str(), target.port)))
            .await
            .map_err(|_| connect_err(format!("no connection within {TIMEOUT:?}")))?
            .map_err(|e| connect_err(e.to_string()))?;
        let io: Box<dyn Stream> = if target.tls.mode == SslMode::Disable {
            Box::new(tcp)
        } else {
            let config = match target.tls.mode {
                SslMode::VerifyFull => verify_full_config(&target.tls)?,
                _ => crate::postgres::db::client_config(&target.tls).map_err(|e| CacheError::Tls(e.to_string()))?,
            };
            let name = ServerName::try_from(tls_name.to_owned()).map_err(|e| CacheError::Tls(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| connect_err(format!("TLS handshake: {e}")))?;
            Box::new(tls)
        };
        let mut conn = Self { io: BufReader::new(io) };
        if let Some(password) = &target.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &target.user {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            conn.ok("AUTH", &args).await?;
        }
        Ok(conn)
    }

    /// Sends one command and reads its reply; an error reply is returned as [`Reply::Error`].
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, CacheError> {
        let name = String::from_utf8_lossy(args.first().copied().unwrap_or_default()).into_owned();
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        let io = async {
            self.io.get_mut().write_all(&out).await?;
            self.io.get_mut().flush().await?;
            read_reply(&mut self.io, 0).await
        };
        match tokio::time::timeout(TIMEOUT, io).await {
            Err(_) => Err(CacheError::Timeout(name)),
            Ok(Err(e)) => Err(CacheError::Protocol {
                command: name,
                what: e.to_string(),
            }),
            Ok(Ok(reply)) => Ok(reply),
        }
    }

    /// A command whose error reply is a failure.
    async fn ok(&mut self, name: &str, args: &[&[u8]]) -> Result<Reply, CacheError> {
        match self.call(args).await? {
            Reply::Error(message) => Err(CacheError::Server {
                command: name.to_owned(),
                message,
            }),
            reply => Ok(reply),
        }
    }
}

fn protocol(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> std::io::Result<String> {
    let mut line = Vec::new();
    let n = (&mut *r).take(MAX_REPLY as u64).read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Err(protocol("the connection closed"));
    }
    let text = line
        .strip_suffix(b"\r\n")
        .ok_or_else(|| protocol("a line without CRLF"))?;
    Ok(String::from_utf8_lossy(text).into_owned())
}

fn read_reply<'a, R: AsyncRead + Unpin + Send>(
    r: &'a mut BufReader<R>,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Reply>> + Send + 'a>> {
    Box::pin(async move {
        if depth > 4 {
            return Err(protocol("replies nested too deep"));
        }
        let line = read_line(r).await?;
        let (kind, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
        let number = || {
            rest.parse::<i64>()
                .map_err(|_| protocol(format!("`{rest}` is not a number")))
        };
        Ok(match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(number()?),
            "$" => match usize::try_from(number()?) {
                Err(_) => Reply::Bulk(None),
                Ok(n) if n > MAX_REPLY => return Err(protocol(format!("a {n}-byte reply"))),
                Ok(n) => {
                    let mut b = vec![0; n + 2];
                    r.read_exact(&mut b).await?;
                    b.truncate(n);
                    Reply::Bulk(Some(b))
                }
            },
            "*" => match usize::try_from(number()?) {
                Err(_) => Reply::Array(None),
                Ok(n) if n > 100_000 => return Err(protocol(format!("an array of {n} replies"))),
                Ok(n) => {
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(read_reply(r, depth + 1).await?);
                    }
                    Reply::Array(Some(items))
                }
            },
            other => return Err(protocol(format!("reply type `{other}`"))),
        })
    })
}

/// `INFO keyspace`'s lines, `db0:keys=14,expires=2,avg_ttl=0`, as keys and expiring keys per database.
pub fn parse_keyspace(info: &str) -> BTreeMap<u64, DbKeys> {
    info.lines()
        .filter_map(|l| {
            let (db, fields) = l.trim().strip_prefix("db")?.split_once(':')?;
            let field = |name: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse::<u64>().ok())
            };
            Some((
                db.parse().ok()?,
                DbKeys {
                    keys: field("keys")?,
                    expires: field("expires")?,
                },
            ))
        })
        .collect()
}

/// Each database's key count against the snapshot's: at most `tolerance_percent` fewer (keys expire), never
/// more, and no database missing or added. A database that had keys and restored none fails whatever the
/// tolerance (100% would otherwise admit an empty restore).
pub fn compare_keys(
    expected: &BTreeMap<u64, DbKeys>,
    actual: &BTreeMap<u64, DbKeys>,
    tolerance_percent: f64,
) -> Vec<Check> {
    let dbs: std::collections::BTreeSet<u64> = expected.keys().chain(actual.keys()).copied().collect();
    dbs.into_iter()
        .map(|db| {
            let want = expected.get(&db).map_or(0, |d| d.keys);
            let got = actual.get(&db).map_or(0, |d| d.keys);
            let allowed = (want as f64 * tolerance_percent / 100.0).ceil() as u64;
            let emptied = want > 0 && got == 0;
            let ok = got <= want && want - got <= allowed && !emptied;
            Check::new(
                format!("keys in db{db}"),
                ok,
                format!("{got} restored, {want} in the snapshot (tolerance -{allowed})"),
            )
        })
        .collect()
}

/// Whether any key matching `pattern` exists in database `db`: `SCAN` until one is found or the cursor ends.
async fn any_key(conn: &mut Conn, db: u64, pattern: &str) -> Result<Option<String>, CacheError> {
    conn.ok("SELECT", &[b"SELECT", db.to_string().as_bytes()]).await?;
    let mut cursor = "0".to_owned();
    loop {
        let reply = conn
            .ok(
                "SCAN",
                &[
                    b"SCAN",
                    cursor.as_bytes(),
                    b"MATCH",
                    pattern.as_bytes(),
                    b"COUNT",
                    b"1000",
                ],
            )
            .await?;
        let bad = |what: &str| CacheError::Protocol {
            command: "SCAN".into(),
            what: what.into(),
        };
        let Reply::Array(Some(parts)) = reply else {
            return Err(bad("not a two-element array"));
        };
        let [next, Reply::Array(Some(keys))] = parts.as_slice() else {
            return Err(bad("not a cursor and a page of keys"));
        };
        if let Some(key) = keys.first().and_then(Reply::text) {
            return Ok(Some(key));
        }
        cursor = next.text().ok_or_else(|| bad("a cursor that is not text"))?;
        if cursor == "0" {
            return Ok(None);
        }
    }
}

/// Every check of a restored cache, in order: connect and `PING`, keys per database, the named keys.
/// A failure to connect is the one check reported (the rest cannot run).
pub async fn checks(
    target: &CacheTarget,
    expected: &BTreeMap<u64, DbKeys>,
    tolerance_percent: f64,
    keys: &[KeyCheck],
) -> Vec<Check> {
    checks_with(target, Some(expected), tolerance_percent, keys).await
}

/// Opens a connection to `target` and `PING`s it: the connection and the `connect` check (`what` is added to the
/// address in its detail, e.g. ", configuration endpoint"), or the failed `connect` check when the rest cannot run.
pub(crate) async fn connect(target: &CacheTarget, what: &str) -> Result<(Conn, Check), Check> {
    let failed = |e: CacheError| Check::new("connect", false, e.to_string());
    let mut conn = Conn::open(target).await.map_err(failed)?;
    let reply = conn.ok("PING", &[b"PING"]).await.map_err(failed)?;
    let check = Check::new(
        "connect",
        reply.text().as_deref() == Some("PONG"),
        format!(
            "{}:{} ({}{what}): {reply:?}",
            target.host,
            target.port,
            target.tls.mode.as_str()
        ),
    );
    Ok((conn, check))
}

/// [`checks`], with the key counts compared only when `expected` is given (a restore test without a verified
/// RDB copy of its snapshot still checks the connection and the named keys).
pub async fn checks_with(
    target: &CacheTarget,
    expected: Option<&BTreeMap<u64, DbKeys>>,
    tolerance_percent: f64,
    keys: &[KeyCheck],
) -> Vec<Check> {
    let (mut conn, connect) = match connect(target, "").await {
        Ok(c) => c,
        Err(failed) => return vec![failed],
    };
    let mut out = vec![connect];
    if let Some(expected) = expected {
        match conn.ok("INFO", &[b"INFO", b"keyspace"]).await {
            Ok(reply) => {
                let actual = parse_keyspace(&reply.text().unwrap_or_default());
                out.extend(compare_keys(expected, &actual, tolerance_percent));
            }
            Err(e) => out.push(Check::new(KEY_COUNT_CHECK, false, e.to_string())),
        }
    }
    for k in keys {
        out.push(match any_key(&mut conn, k.db, &k.pattern).await {
            Ok(Some(found)) => Check::new(
                &k.name,
                true,
                format!("`{found}` matches `{}` in db{}", k.pattern, k.db),
            ),
            Ok(None) => Check::new(&k.name, false, format!("no key matches `{}` in db{}", k.pattern, k.db)),
            Err(e) => Check::new(&k.name, false, e.to_string()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::restore::CheckResult;

    #[test]
    fn keyspace_lines_are_read_and_anything_else_ignored() {
        let info = "# Keyspace\r\ndb0:keys=14,expires=2,avg_ttl=0\r\ndb3:keys=4,expires=1,avg_ttl=5\r\nnoise\r\n";
        assert_eq!(
            parse_keyspace(info),
            BTreeMap::from([
                (0, DbKeys { keys: 14, expires: 2 }),
                (3, DbKeys { keys: 4, expires: 1 })
            ])
        );
        assert!(parse_keyspace("db0:keys=x,expires=1").is_empty());
    }

    #[test]
    fn fewer_keys_within_the_tolerance_pass_more_keys_or_a_missing_database_fail() {
        let db = |keys| DbKeys { keys, expires: 0 };
        let expected = BTreeMap::from([(0, db(100)), (1, db(10))]);
        let results = |actual: BTreeMap<u64, DbKeys>| -> Vec<CheckResult> {
            compare_keys(&expected, &actual, 5.0).iter().map(|c| c.result).collect()
        };
        assert_eq!(
            results(BTreeMap::from([(0, db(96)), (1, db(10))])),
            [CheckResult::Passed; 2]
        );
        assert_eq!(
            results(BTreeMap::from([(0, db(94)), (1, db(11))])),
            [CheckResult::Failed, CheckResult::Failed]
        );
        let checks = compare_keys(&expected, &BTreeMap::from([(0, db(100)), (2, db(1))]), 5.0);
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| c.result == CheckResult::Failed)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["keys in db1", "keys in db2"]);
    }

    #[test]
    fn an_empty_restore_of_a_snapshot_with_keys_fails_whatever_the_tolerance() {
        let db = |keys| DbKeys { keys, expires: 0 };
        let expected = BTreeMap::from([(0, db(3))]);
        let checks = compare_keys(&expected, &BTreeMap::new(), 100.0);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].result, CheckResult::Failed, "{checks:?}");
        let checks = compare_keys(&expected, &BTreeMap::from([(0, db(1))]), 100.0);
        assert_eq!(
            checks[0].result,
            CheckResult::Passed,
            "fewer, within a wide tolerance, still passes"
        );
        let checks = compare_keys(&BTreeMap::from([(0, db(0))]), &BTreeMap::new(), 5.0);
        assert_eq!(
            checks[0].result,
            CheckResult::Passed,
            "an empty snapshot restores empty"
        );
    }

    #[test]
    fn the_default_trust_is_exactly_amazons_four_roots() {
        let roots: Vec<_> = CertificateDer::pem_slice_iter(AMAZON_ROOT_CAS)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(roots.len(), 4);
        for (n, der) in roots.iter().enumerate() {
            let name = format!("Amazon Root CA {}", n + 1);
            assert!(der.windows(name.len()).any(|w| w == name.as_bytes()), "{name}");
        }
        let tls = TlsSettings {
            mode: SslMode::VerifyFull,
            ca_bundle: None,
        };
        assert!(verify_full_config(&tls).is_ok());
        let missing = TlsSettings {
            mode: SslMode::VerifyFull,
            ca_bundle: Some("/nonexistent/ca.crt".into()),
        };
        assert!(
            verify_full_config(&missing).is_err(),
            "a named bundle that cannot be read is an error, no fallback"
        );
    }

    #[tokio::test]
    async fn replies_are_parsed_and_bounded() {
        async fn parse(bytes: &[u8]) -> std::io::Result<Reply> {
            read_reply(&mut BufReader::new(bytes), 0).await
        }
        assert_eq!(parse(b"+PONG\r\n").await.unwrap(), Reply::Simple("PONG".into()));
        assert_eq!(parse(b"-ERR no\r\n").await.unwrap(), Reply::Error("ERR no".into()));
        assert_eq!(parse(b":42\r\n").await.unwrap(), Reply::Int(42));
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n$1\r\n0\r\n*1\r\n$3\r\nkey\r\n").await.unwrap(),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"0".to_vec())),
                Reply::Array(Some(vec![Reply::Bulk(Some(b"key".to_vec()))]))
            ]))
        );
        assert!(parse(b"$999999999\r\n").await.is_err());
        assert!(parse(b"+no crlf").await.is_err());
        assert!(parse(b"?what\r\n").await.is_err());
        assert!(parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n").await.is_err());
    }

    #[test]
    fn the_password_is_never_printed() {
        let t = CacheTarget {
            host: "h".into(),
            port: 6379,
            user: Some("lifeboat".into()),
            password: Some("hunter2-secret".into()),
            tls: TlsSettings {
                mode: SslMode::Require,
                ca_bundle: None,
            },
        };
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}

//! The `--into` PostgreSQL URL: parsed into a connection target, and shown only with its password redacted.

use lifeboat::postgres::db::{SslMode, Target, TlsSettings};

/// Why an `--into` URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("--into must start with postgres:// or postgresql://")]
    Scheme,
    #[error("--into has no host")]
    NoHost,
    #[error("--into names no database: add /<new database name> after the host")]
    NoDatabase,
    #[error("--into has a port that is not a number: {0}")]
    Port(String),
    #[error("--into has a bad percent-escape")]
    Escape,
    #[error("--into: {0}")]
    SslMode(String),
    #[error(
        "--into uses sslmode={0} but names no CA bundle: add &sslrootcert=<PEM file> (RDS: the global bundle from \
         https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem), or sslmode=require"
    )]
    NoCaBundle(&'static str),
    #[error("--into has an unsupported parameter `{0}` (supported: sslmode, sslrootcert)")]
    Parameter(String),
}

fn decode(s: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(UrlError::Escape)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::Escape)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::Escape)
}

/// Parses `postgres://[user[:password]@]host[:port]/dbname[?sslmode=..&sslrootcert=..]`. A user or password
/// the URL leaves out comes from `PGUSER` / `PGPASSWORD` (given here as `default_user` / `default_password`),
/// so the password need not be on the command line. TLS defaults to `verify-full`.
pub fn parse(url: &str, default_user: &str, default_password: Option<&str>) -> Result<Target, UrlError> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or(UrlError::Scheme)?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').ok_or(UrlError::NoDatabase)?;
    let (userinfo, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (decode(u)?, Some(decode(p)?)),
        None => (decode(userinfo)?, None),
    };
    let (host, port) = host_port(hostport)?;
    let dbname = decode(path)?;
    if dbname.is_empty() {
        return Err(UrlError::NoDatabase);
    }
    Ok(Target {
        host,
        port,
        dbname,
        user: if user.is_empty() { default_user.to_owned() } else { user },
        password: password.or(default_password.map(str::to_owned)).unwrap_or_default(),
        tls: tls(query)?,
    })
}

fn host_port(hostport: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or(UrlError::NoHost)?;
            (h, after.strip_prefix(':'))
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let port = match port {
        None => lifeboat::postgres::export::DEFAULT_PORT,
        Some(p) => p.parse().map_err(|_| UrlError::Port(p.to_owned()))?,
    };
    Ok((decode(host)?, port))
}

fn tls(query: &str) -> Result<TlsSettings, UrlError> {
    let mut mode = SslMode::VerifyFull;
    let mut ca_bundle = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => mode = SslMode::parse(&decode(v)?).map_err(UrlError::SslMode)?,
            "sslrootcert" => ca_bundle = Some(decode(v)?),
            other => return Err(UrlError::Parameter(other.to_owned())),
        }
    }
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && ca_bundle.is_none() {
        return Err(UrlError::NoCaBundle(mode.as_str()));
    }
    Ok(TlsSettings { mode, ca_bundle })
}

/// The target as a URL without its password, for messages.
pub fn redacted(t: &Target) -> String {
    format!(
        "postgres://{}:***@{}:{}/{}?sslmode={}",
        t.user,
        t.host,
        t.port,
        t.dbname,
        t.tls.mode.as_str()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_parse_with_escapes_defaults_and_tls() {
        let t = parse(
            "postgres://ann:p%40ss@db.example:6543/app_restore?sslmode=disable",
            "me",
            None,
        )
        .unwrap();
        assert_eq!(
            (
                t.user.as_str(),
                t.password.as_str(),
                t.host.as_str(),
                t.port,
                t.dbname.as_str()
            ),
            ("ann", "p@ss", "db.example", 6543, "app_restore")
        );
        assert_eq!(t.tls.mode, SslMode::Disable);
        let t = parse("postgresql://h/d?sslmode=require", "me", Some("env-pw")).unwrap();
        assert_eq!((t.user.as_str(), t.password.as_str(), t.port), ("me", "env-pw", 5432));
        let t = parse("postgres://u@[::1]:7/d?sslrootcert=/ca.pem", "me", None).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 7));
        assert_eq!(t.tls.mode, SslMode::VerifyFull);
    }

    #[test]
    fn bad_urls_say_what_to_fix() {
        assert_eq!(parse("mysql://h/d", "", None).unwrap_err(), UrlError::Scheme);
        assert_eq!(parse("postgres://h", "", None).unwrap_err(), UrlError::NoDatabase);
        assert_eq!(
            parse("postgres://h/?sslmode=disable", "", None).unwrap_err(),
            UrlError::NoDatabase
        );
        assert_eq!(
            parse("postgres://h:x/d", "", None).unwrap_err(),
            UrlError::Port("x".into())
        );
        assert_eq!(
            parse("postgres://h/d", "", None).unwrap_err(),
            UrlError::NoCaBundle("verify-full")
        );
        assert!(matches!(
            parse("postgres://h/d?x=1", "", None).unwrap_err(),
            UrlError::Parameter(_)
        ));
    }

    #[test]
    fn the_password_is_never_shown() {
        let t = parse("postgres://ann:s3cret@h/d?sslmode=disable", "", None).unwrap();
        let shown = redacted(&t);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(shown, "postgres://ann:***@h:5432/d?sslmode=disable");
    }
}

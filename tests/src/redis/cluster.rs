//! A throwaway Redis cluster (cluster mode enabled, as a sharded ElastiCache group runs): `primaries`
//! `redis-server` processes on 127.0.0.1, TLS only (clients, the cluster bus and replication:
//! `tls-cluster yes`, `tls-replication yes`), AUTH on every node (`requirepass`, `masterauth`), the 16384 hash
//! slots split evenly with `CLUSTER ADDSLOTSRANGE` and the nodes joined with `CLUSTER MEET`; ready when every
//! node says `cluster_state:ok`. Stopped when dropped.
//!
//! The cluster bus always asks the connecting node for its certificate, so the nodes' certificate (signed by
//! the same throwaway CA as [`super::Redis`]'s) is good for client authentication too.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::program;

/// A running cluster of primaries without replicas; stopped and removed when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    /// The nodes' TLS ports, in slot order (node 0 serves slot 0).
    pub ports: Vec<u16>,
    pub password: String,
    /// The CA that signed the nodes' certificate (for 127.0.0.1 and localhost).
    pub ca_file: PathBuf,
    dir: TempDir,
    children: Vec<Child>,
}

/// A certificate for the nodes: server and client authentication, signed by the CA `make_certificates` made.
fn node_certificate(dir: &std::path::Path) -> PathBuf {
    std::fs::write(
        dir.join("node.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("extensions file");
    let out = Command::new("openssl")
        .args(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"])
        .args([
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "node.ext",
            "-out",
            "node.crt",
        ])
        .current_dir(dir)
        .output()
        .expect("the cluster tests need the openssl command: `apt-get install openssl` (make test does)");
    assert!(
        out.status.success(),
        "openssl x509: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("node.crt")
}

impl RedisCluster {
    /// Starts `primaries` nodes, splits the slots among them and waits for the cluster to be whole.
    pub fn start_tls(primaries: usize) -> Self {
        assert!(primaries >= 1);
        let dir = tempfile::tempdir().expect("temp dir for the cluster");
        let (_, key, ca) = crate::postgres::make_certificates(dir.path(), None);
        let cert = node_certificate(dir.path());
        let password = crate::random_hex(16);
        let mut cluster = Self {
            ports: Vec::new(),
            password,
            ca_file: ca,
            dir,
            children: Vec::new(),
        };
        let mut buses = Vec::new();
        for i in 0..primaries {
            let node_dir = cluster.dir.path().join(format!("node-{i}"));
            std::fs::create_dir(&node_dir).expect("node dir");
            let (child, port, bus) = cluster.start_node(&node_dir, &cert, &key);
            cluster.children.push(child);
            cluster.ports.push(port);
            buses.push(bus);
        }
        cluster.join(&buses);
        cluster
    }

    /// Starts one node in `node_dir` on two free ports (clients, cluster bus) and waits until it answers PING.
    /// A port [`crate::free_port`] found free can be taken by another process before the node binds it (the
    /// bus port in particular, with test suites running side by side): a node that exits before it answers is
    /// started again on new ports, a few times, and its log is kept in the failure.
    fn start_node(
        &self,
        node_dir: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> (Child, u16, u16) {
        const ATTEMPTS: usize = 5;
        let mut logs = Vec::new();
        for _ in 0..ATTEMPTS {
            let (port, bus) = (crate::free_port(), crate::free_port());
            let mut child = self.spawn_node(node_dir, cert, key, port, bus);
            let until = Instant::now() + Duration::from_secs(30);
            loop {
                if self
                    .cli(port, false)
                    .arg("PING")
                    .output()
                    .is_ok_and(|o| o.stdout.starts_with(b"PONG"))
                {
                    return (child, port, bus);
                }
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(node_dir.join("redis.log")).unwrap_or_default();
                    logs.push(format!("ports {port}/{bus}: exited {status}: {log}"));
                    break;
                }
                if Instant::now() > until {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("cluster node in {} did not answer PING within 30 s", node_dir.display());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!(
            "a cluster node could not start in {ATTEMPTS} attempts:\n{}",
            logs.join("\n")
        )
    }

    fn spawn_node(
        &self,
        node_dir: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
        port: u16,
        bus: u16,
    ) -> Child {
        Command::new(program("redis-server"))
            .args(["--bind", "127.0.0.1", "--port", "0", "--tls-port", &port.to_string()])
            .args([
                "--tls-cluster",
                "yes",
                "--tls-replication",
                "yes",
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(cert)
            .arg("--tls-key-file")
            .arg(key)
            .arg("--tls-ca-cert-file")
            .arg(&self.ca_file)
            .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            .args(["--cluster-port", &bus.to_string()])
            .args(["--requirepass", &self.password, "--masterauth", &self.password])
            .args(["--save", "", "--appendonly", "no", "--dbfilename", "dump.rdb"])
            .args(["--logfile", "redis.log", "--daemonize", "no"])
            .arg("--dir")
            .arg(node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server")
    }

    /// Splits the slots evenly in node order, introduces every node to node 0, waits for `cluster_state:ok`.
    fn join(&self, buses: &[u16]) {
        let n = self.ports.len() as u32;
        for i in 0..n {
            let (first, last) = (i * 16384 / n, (i + 1) * 16384 / n - 1);
            let range = [first.to_string(), last.to_string()];
            assert_eq!(
                self.node(i as usize, &["CLUSTER", "ADDSLOTSRANGE", &range[0], &range[1]]),
                "OK"
            );
        }
        for (port, bus) in self.ports.iter().zip(buses).skip(1) {
            let meet = ["CLUSTER", "MEET", "127.0.0.1", &port.to_string(), &bus.to_string()];
            assert_eq!(self.node(0, &meet), "OK");
        }
        self.wait(
            |c, i| {
                c.try_node(i, &["CLUSTER", "INFO"])
                    .is_some_and(|s| s.contains("cluster_state:ok"))
            },
            "say cluster_state:ok",
        );
    }

    fn wait(&self, ready: impl Fn(&Self, usize) -> bool, what: &str) {
        let until = Instant::now() + Duration::from_secs(30);
        for i in 0..self.ports.len() {
            while !ready(self, i) {
                assert!(
                    Instant::now() < until,
                    "cluster node {i} did not {what} within 30 s; its log: {}",
                    std::fs::read_to_string(self.dir.path().join(format!("node-{i}/redis.log"))).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn cli(&self, port: u16, follow: bool) -> Command {
        let mut cmd = Command::new(program("redis-cli"));
        cmd.arg("--tls").arg("--cacert").arg(&self.ca_file);
        if follow {
            cmd.arg("-c");
        }
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["--no-auth-warning", "-a", &self.password]);
        cmd
    }

    fn try_node(&self, i: usize, args: &[&str]) -> Option<String> {
        let out = self.cli(self.ports[i], false).args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Runs one command on node `i` (no redirection followed) and returns its reply as redis-cli prints it.
    pub fn node(&self, i: usize, args: &[&str]) -> String {
        let reply = self
            .try_node(i, args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} on node {i} failed"));
        assert!(!reply.starts_with("ERR"), "redis-cli {args:?} on node {i}: {reply}");
        reply
    }

    /// Runs commands, one a line, through `redis-cli -c` (each goes to the node owning its key), as an
    /// operator would pipe them.
    pub fn load(&self, commands: &str) {
        let mut child = self
            .cli(self.ports[0], true)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting redis-cli");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(commands.as_bytes())
            .expect("writing commands to redis-cli");
        let out = child.wait_with_output().expect("redis-cli");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !text.contains("ERR") && !text.contains("CLUSTERDOWN"),
            "redis-cli -c: {text}"
        );
    }

    /// Keys on each node (`DBSIZE`), in node order.
    pub fn keys_per_node(&self) -> Vec<u64> {
        (0..self.ports.len())
            .map(|i| self.node(i, &["DBSIZE"]).parse().expect("DBSIZE is a number"))
            .collect()
    }

    /// `SAVE`s every node and returns the RDB files they wrote, in node order.
    pub fn save(&self) -> Vec<PathBuf> {
        (0..self.ports.len())
            .map(|i| {
                assert_eq!(self.node(i, &["SAVE"]), "OK");
                self.dir.path().join(format!("node-{i}/dump.rdb"))
            })
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

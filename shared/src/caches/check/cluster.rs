//! The checks of a sharded (cluster mode enabled) restored cache: the configuration endpoint answers over TLS
//! with the AUTH token (`PING`), the cluster's primaries serve every one of the 16384 hash slots (`CLUSTER
//! SLOTS`, which every Redis OSS and Valkey version ElastiCache runs answers; Redis 7's `CLUSTER SHARDS` does not
//! exist on 6.x), the keys summed over the primaries match the verified RDB copy's (cluster mode has database 0
//! only), and each named key or pattern is found on some primary.
//!
//! Owns: the reading of `CLUSTER SLOTS` (bounded: at most [`MAX_PRIMARIES`] primaries, slot ranges within the
//! 16384 slots, no slot claimed twice; anything else is a failed check, never a panic), the slot coverage (a
//! 16384-bit map, so two primaries claiming the same half are an overlap, never "16384 slots served"; the
//! check names the slots claimed twice and the slots nobody serves), the certificate name a
//! node reported by its IP is verified against ([`tls_name`]), and the per-shard detail of the key count.
//!
//! Never writes to the cache: only `AUTH`, `PING`, `CLUSTER SLOTS`, `INFO`, `SELECT 0` and `SCAN` are sent.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{any_key, compare_keys, parse_keyspace, CacheError, CacheTarget, Conn, KeyCheck, Reply};
use crate::caches::rdb::DbKeys;
use crate::rds::restore::Check;

/// The hash slots of a Redis cluster.
pub const SLOTS: u32 = 16384;

/// The most primaries a restore test talks to: ElastiCache's largest cluster has 500 shards.
pub const MAX_PRIMARIES: usize = 500;

/// One primary of the cluster, as `CLUSTER SLOTS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primary {
    pub host: String,
    pub port: u16,
    /// How many hash slots it serves.
    pub slots: u32,
    /// Its lowest slot: orders the shards (shard 1 serves slot 0).
    pub first_slot: u32,
    /// The slot ranges it serves (first and last slot, inclusive), as reported.
    pub ranges: Vec<(u32, u32)>,
}

/// One bit per hash slot.
#[derive(Clone)]
struct SlotMap([u64; SLOTS as usize / 64]);

impl SlotMap {
    fn new() -> Self {
        Self([0; SLOTS as usize / 64])
    }

    fn has(&self, slot: u32) -> bool {
        self.0[slot as usize / 64] & (1 << (slot % 64)) != 0
    }

    fn set(&mut self, slot: u32) {
        self.0[slot as usize / 64] |= 1 << (slot % 64);
    }

    /// The slots of `first..=last` already set, as ranges.
    fn taken(&self, first: u32, last: u32) -> Vec<(u32, u32)> {
        runs((first..=last).filter(|s| self.has(*s)))
    }

    /// The slots not set, as ranges.
    fn missing(&self) -> Vec<(u32, u32)> {
        runs((0..SLOTS).filter(|s| !self.has(*s)))
    }
}

/// Ascending slots as inclusive ranges.
fn runs(slots: impl Iterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for s in slots {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == s => *last = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// Ranges as `0-8191, 9000`, the first few only.
fn show_ranges(ranges: &[(u32, u32)]) -> String {
    const SHOWN: usize = 8;
    let mut parts: Vec<String> = ranges
        .iter()
        .take(SHOWN)
        .map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
        .collect();
    if ranges.len() > SHOWN {
        parts.push(format!("and {} more ranges", ranges.len() - SHOWN));
    }
    parts.join(", ")
}

impl Primary {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn int(r: &Reply, what: &str) -> Result<i64, String> {
    match r {
        Reply::Int(n) => Ok(*n),
        other => Err(format!("{what} is not an integer: {other:?}")),
    }
}

fn slot(r: &Reply, what: &str) -> Result<u32, String> {
    let n = int(r, what)?;
    u32::try_from(n)
        .ok()
        .filter(|n| *n < SLOTS)
        .ok_or_else(|| format!("{what} {n} is outside the cluster's {SLOTS} slots"))
}

/// The primary of one slot range: `[address, port, id, ...]`. An empty address is the node asked
/// (`fallback_host`); `?` is a node whose address the cluster does not know.
fn primary_of(node: &Reply, fallback_host: &str) -> Result<(String, u16), String> {
    let Reply::Array(Some(parts)) = node else {
        return Err(format!("a slot range's primary is not an array: {node:?}"));
    };
    let [address, port, ..] = parts.as_slice() else {
        return Err("a slot range's primary has no address and port".into());
    };
    let host = address
        .text()
        .ok_or_else(|| format!("a primary's address is not text: {address:?}"))?;
    let port = u16::try_from(int(port, "a primary's port")?)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("a primary's port is not a port: {port:?}"))?;
    match host.as_str() {
        "" => Ok((fallback_host.to_owned(), port)),
        "?" => Err("the cluster does not know a primary's address (`?`)".into()),
        _ => Ok((host, port)),
    }
}

/// The primaries of a `CLUSTER SLOTS` reply, ordered by their lowest slot. `fallback_host` is the node asked
/// (an empty address means it). `Err` says what is wrong with the reply.
pub fn parse_slots(reply: &Reply, fallback_host: &str) -> Result<Vec<Primary>, String> {
    let ranges = match reply {
        Reply::Array(Some(ranges)) => ranges,
        Reply::Error(e) => return Err(format!("the server refused CLUSTER SLOTS: {e} (is cluster mode on?)")),
        other => return Err(format!("not an array of slot ranges: {other:?}")),
    };
    let mut by_address: BTreeMap<(String, u16), Primary> = BTreeMap::new();
    let mut served = SlotMap::new();
    for range in ranges {
        let Reply::Array(Some(parts)) = range else {
            return Err(format!("a slot range is not an array: {range:?}"));
        };
        let [start, end, primary, ..] = parts.as_slice() else {
            return Err("a slot range has no start, end and primary".into());
        };
        let (start, end) = (slot(start, "a range's start")?, slot(end, "a range's end")?);
        if end < start {
            return Err(format!("the slot range {start}-{end} ends before it starts"));
        }
        let (host, port) = primary_of(primary, fallback_host)?;
        let twice = served.taken(start, end);
        if !twice.is_empty() {
            let others: Vec<String> = by_address
                .values()
                .filter(|p| p.ranges.iter().any(|(a, b)| *a <= end && start <= *b))
                .map(Primary::address)
                .collect();
            return Err(format!(
                "slots {} are claimed twice: by {host}:{port} and by {}",
                show_ranges(&twice),
                others.join(", ")
            ));
        }
        (start..=end).for_each(|s| served.set(s));
        let p = by_address.entry((host.clone(), port)).or_insert(Primary {
            host,
            port,
            slots: 0,
            first_slot: start,
            ranges: Vec::new(),
        });
        p.slots += end - start + 1;
        p.first_slot = p.first_slot.min(start);
        p.ranges.push((start, end));
        if by_address.len() > MAX_PRIMARIES {
            return Err(format!(
                "more than {MAX_PRIMARIES} primaries: not a cluster a restore test made"
            ));
        }
    }
    if by_address.is_empty() {
        return Err("no slot is served (an empty cluster)".into());
    }
    let mut out: Vec<Primary> = by_address.into_values().collect();
    out.sort_by_key(|p| p.first_slot);
    Ok(out)
}

/// The name a node's certificate is verified against: its own host name, or, when the cluster reports it by its
/// IP address (as ElastiCache does), the configuration endpoint's host name. ElastiCache's in-transit
/// certificates are wildcards of the cluster's domain (`*.<cluster>.<id>.<region>.cache.amazonaws.com`), which
/// names the configuration endpoint and every node alike.
pub fn tls_name(node_host: &str, config_host: &str) -> String {
    if node_host.parse::<IpAddr>().is_ok() {
        config_host.to_owned()
    } else {
        node_host.to_owned()
    }
}

/// Keys and expiring keys per database, summed over the shards.
pub fn sum_shards(per_shard: &[BTreeMap<u64, DbKeys>]) -> BTreeMap<u64, DbKeys> {
    let mut out: BTreeMap<u64, DbKeys> = BTreeMap::new();
    for shard in per_shard {
        for (db, k) in shard {
            let e = out.entry(*db).or_insert(DbKeys { keys: 0, expires: 0 });
            e.keys += k.keys;
            e.expires += k.expires;
        }
    }
    out
}

/// The per-shard sum of one database's keys: `2 shards: 600 + 400 = 1000 keys`.
pub fn shard_detail(per_shard: &[BTreeMap<u64, DbKeys>], db: u64) -> String {
    let counts: Vec<u64> = per_shard.iter().map(|s| s.get(&db).map_or(0, |k| k.keys)).collect();
    let parts: Vec<String> = counts.iter().map(u64::to_string).collect();
    format!(
        "{} shards: {} = {} keys",
        counts.len(),
        parts.join(" + "),
        counts.iter().sum::<u64>()
    )
}

/// [`compare_keys`] over the sum of the shards, each check's detail led by the per-shard sum.
pub fn compare_shards(
    expected: &BTreeMap<u64, DbKeys>,
    per_shard: &[BTreeMap<u64, DbKeys>],
    tolerance_percent: f64,
) -> Vec<Check> {
    let actual = sum_shards(per_shard);
    let mut checks = compare_keys(expected, &actual, tolerance_percent);
    // compare_keys reports the databases of either side, in order.
    let dbs: std::collections::BTreeSet<u64> = expected.keys().chain(actual.keys()).copied().collect();
    for (c, db) in checks.iter_mut().zip(dbs) {
        c.detail = format!("{}; {}", shard_detail(per_shard, db), c.detail);
    }
    checks
}

/// The slots check: every slot served by exactly one primary that the test will count; the detail names the
/// slots claimed twice and the slots nobody serves.
fn slots_check(primaries: &[Primary]) -> Check {
    let mut served = SlotMap::new();
    let mut twice = Vec::new();
    for (first, last) in primaries.iter().flat_map(|p| p.ranges.iter().copied()) {
        let (first, last) = (first.min(SLOTS - 1), last.min(SLOTS - 1));
        twice.extend(served.taken(first, last));
        (first..=last).for_each(|s| served.set(s));
    }
    let missing = served.missing();
    let covered = SLOTS - missing.iter().map(|(a, b)| b - a + 1).sum::<u32>();
    let list: Vec<String> = primaries
        .iter()
        .map(|p| format!("{} ({} slots)", p.address(), p.slots))
        .collect();
    let mut detail = format!(
        "{} primaries serve {covered} of {SLOTS} slots: {}",
        primaries.len(),
        list.join(", ")
    );
    if !missing.is_empty() {
        detail.push_str(&format!("; unserved slots: {}", show_ranges(&missing)));
    }
    if !twice.is_empty() {
        twice.sort_unstable();
        detail.push_str(&format!("; slots claimed twice: {}", show_ranges(&twice)));
    }
    Check::new("cluster slots", missing.is_empty() && twice.is_empty(), detail)
}

/// Connects to the configuration endpoint, `PING`s it and asks for the primaries. `Err`: the checks to report
/// when the rest cannot run.
async fn discover(target: &CacheTarget) -> Result<(Vec<Check>, Vec<Primary>), Vec<Check>> {
    let (mut conn, connect) = super::connect(target, ", configuration endpoint")
        .await
        .map_err(|failed| vec![failed])?;
    let slots = match conn.call(&[b"CLUSTER", b"SLOTS"]).await {
        Ok(r) => parse_slots(&r, &target.host),
        Err(e) => Err(e.to_string()),
    };
    match slots {
        Ok(primaries) => Ok((vec![connect, slots_check(&primaries)], primaries)),
        Err(why) => Err(vec![connect, Check::new("cluster slots", false, why)]),
    }
}

/// A connection to one primary, logged in with the target's credentials, its certificate verified per
/// [`tls_name`].
async fn open_primary(target: &CacheTarget, p: &Primary) -> Result<Conn, CacheError> {
    let node = CacheTarget {
        host: p.host.clone(),
        port: p.port,
        ..target.clone()
    };
    Conn::open_named(&node, &tls_name(&p.host, &target.host)).await
}

/// Keys per database on each primary, in the primaries' order.
async fn count_shards(conns: &mut [(Primary, Conn)]) -> Result<Vec<BTreeMap<u64, DbKeys>>, String> {
    let mut out = Vec::with_capacity(conns.len());
    for (p, conn) in conns.iter_mut() {
        let reply = conn
            .ok("INFO", &[b"INFO", b"keyspace"])
            .await
            .map_err(|e| format!("primary {}: {e}", p.address()))?;
        out.push(parse_keyspace(&reply.text().unwrap_or_default()));
    }
    Ok(out)
}

/// One named key or pattern: found on any primary. Cluster mode has database 0 only.
async fn named_key(conns: &mut [(Primary, Conn)], k: &KeyCheck) -> Check {
    if k.db != 0 {
        return Check::new(
            &k.name,
            false,
            format!(
                "`{}` is asked in db{}, but a sharded cache has db0 only",
                k.pattern, k.db
            ),
        );
    }
    for (p, conn) in conns.iter_mut() {
        match any_key(conn, 0, &k.pattern).await {
            Ok(Some(found)) => {
                return Check::new(
                    &k.name,
                    true,
                    format!("`{found}` matches `{}` on {}", k.pattern, p.address()),
                )
            }
            Ok(None) => {}
            Err(e) => return Check::new(&k.name, false, format!("{}: {e}", p.address())),
        }
    }
    Check::new(
        &k.name,
        false,
        format!("no key matches `{}` on any of the {} primaries", k.pattern, conns.len()),
    )
}

/// Every check of a sharded restored cache, in order: connect and `PING` the configuration endpoint, the slots
/// its primaries serve, keys per database summed over the primaries (when `expected` is given), the named keys.
/// A check that leaves the rest unable to run is the last one reported.
pub async fn checks_with(
    target: &CacheTarget,
    expected: Option<&BTreeMap<u64, DbKeys>>,
    tolerance_percent: f64,
    keys: &[KeyCheck],
) -> Vec<Check> {
    let (mut out, primaries) = match discover(target).await {
        Ok(found) => found,
        Err(checks) => return checks,
    };
    let mut conns = Vec::with_capacity(primaries.len());
    for p in primaries {
        match open_primary(target, &p).await {
            Ok(c) => conns.push((p, c)),
            Err(e) => {
                out.push(Check::new("primaries", false, format!("primary {}: {e}", p.address())));
                return out;
            }
        }
    }
    if let Some(expected) = expected {
        match count_shards(&mut conns).await {
            Ok(per_shard) => out.extend(compare_shards(expected, &per_shard, tolerance_percent)),
            Err(e) => out.push(Check::new("keys per database", false, e)),
        }
    }
    for k in keys {
        out.push(named_key(&mut conns, k).await);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::restore::CheckResult;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Some(s.as_bytes().to_vec()))
    }

    fn range(start: i64, end: i64, host: &str, port: i64) -> Reply {
        let node = Reply::Array(Some(vec![bulk(host), Reply::Int(port), bulk("f00d")]));
        let replica = Reply::Array(Some(vec![bulk("10.0.0.9"), Reply::Int(6379), bulk("beef")]));
        Reply::Array(Some(vec![Reply::Int(start), Reply::Int(end), node, replica]))
    }

    #[test]
    fn cluster_slots_gives_the_primaries_ordered_by_their_lowest_slot() {
        let reply = Reply::Array(Some(vec![
            range(8192, 12000, "10.0.0.2", 6379),
            range(0, 8191, "10.0.0.1", 6379),
            range(12001, 16383, "10.0.0.2", 6379),
        ]));
        let p = parse_slots(&reply, "cfg").unwrap();
        assert_eq!(
            p,
            [
                Primary {
                    host: "10.0.0.1".into(),
                    port: 6379,
                    slots: 8192,
                    first_slot: 0,
                    ranges: vec![(0, 8191)],
                },
                Primary {
                    host: "10.0.0.2".into(),
                    port: 6379,
                    slots: 8192,
                    first_slot: 8192,
                    ranges: vec![(8192, 12000), (12001, 16383)],
                },
            ]
        );
        assert_eq!(slots_check(&p).result, CheckResult::Passed);
        assert_eq!(
            slots_check(&p[..1]).result,
            CheckResult::Failed,
            "half the slots unserved"
        );
        let empty_host = Reply::Array(Some(vec![range(0, 16383, "", 7000)]));
        assert_eq!(parse_slots(&empty_host, "cfg").unwrap()[0].address(), "cfg:7000");
    }

    /// Two primaries each claiming the same half sum to 16384 slots: the map sees the overlap and names it, and
    /// a gap is named in the check.
    #[test]
    fn a_slot_claimed_twice_or_by_nobody_is_named() {
        let same_half = Reply::Array(Some(vec![
            range(0, 8191, "10.0.0.1", 6379),
            range(0, 8191, "10.0.0.2", 6379),
        ]));
        let err = parse_slots(&same_half, "cfg").unwrap_err();
        assert!(
            err.contains("slots 0-8191 are claimed twice: by 10.0.0.2:6379 and by 10.0.0.1:6379"),
            "{err}"
        );
        let one_slot = Reply::Array(Some(vec![
            range(0, 8192, "10.0.0.1", 6379),
            range(8192, 16383, "10.0.0.2", 6379),
        ]));
        let err = parse_slots(&one_slot, "cfg").unwrap_err();
        assert!(err.contains("slots 8192 are claimed twice"), "{err}");
        let gaps = Reply::Array(Some(vec![
            range(0, 99, "10.0.0.1", 6379),
            range(200, 16000, "10.0.0.2", 6379),
            range(16002, 16383, "10.0.0.1", 6379),
        ]));
        let p = parse_slots(&gaps, "cfg").unwrap();
        let check = slots_check(&p);
        assert_eq!(check.result, CheckResult::Failed, "{}", check.detail);
        assert!(
            check.detail.contains("serve 16283 of 16384") && check.detail.contains("unserved slots: 100-199, 16001"),
            "{}",
            check.detail
        );
        // Primaries built by hand with overlapping ranges (not from a reply) fail the check too.
        let twice = [
            Primary {
                host: "a".into(),
                port: 1,
                slots: 16384,
                first_slot: 0,
                ranges: vec![(0, 16383)],
            },
            Primary {
                host: "b".into(),
                port: 1,
                slots: 8192,
                first_slot: 0,
                ranges: vec![(0, 8191)],
            },
        ];
        let check = slots_check(&twice);
        assert_eq!(check.result, CheckResult::Failed);
        assert!(check.detail.contains("slots claimed twice: 0-8191"), "{}", check.detail);
    }

    #[test]
    fn garbage_replies_are_reasons_never_panics() {
        let bad = [
            Reply::Error("ERR This instance has cluster support disabled".into()),
            Reply::Simple("OK".into()),
            Reply::Array(None),
            Reply::Array(Some(vec![])),
            Reply::Array(Some(vec![Reply::Int(1)])),
            Reply::Array(Some(vec![Reply::Array(Some(vec![Reply::Int(0), Reply::Int(1)]))])),
            Reply::Array(Some(vec![range(5, 1, "h", 1)])),
            Reply::Array(Some(vec![range(0, 16384, "h", 1)])),
            Reply::Array(Some(vec![range(-1, 10, "h", 1)])),
            Reply::Array(Some(vec![range(0, 10, "h", 0)])),
            Reply::Array(Some(vec![range(0, 10, "h", 70000)])),
            Reply::Array(Some(vec![range(0, 10, "?", 6379)])),
            Reply::Array(Some(vec![range(0, 16383, "a", 1), range(0, 0, "b", 1)])),
            Reply::Array(Some(vec![Reply::Array(Some(vec![
                Reply::Int(0),
                Reply::Int(1),
                Reply::Int(3),
            ]))])),
        ];
        for reply in bad {
            assert!(parse_slots(&reply, "cfg").is_err(), "{reply:?}");
        }
        let absurd: Vec<Reply> = (0..=MAX_PRIMARIES as i64)
            .map(|i| range(i, i, &format!("10.0.{}.{}", i / 256, i % 256), 6379))
            .collect();
        let err = parse_slots(&Reply::Array(Some(absurd)), "cfg").unwrap_err();
        assert!(err.contains("more than 500 primaries"), "{err}");
    }

    #[test]
    fn a_node_reported_by_ip_is_verified_against_the_configuration_endpoints_name() {
        let cfg = "clustercfg.shards.abc123.use1.cache.amazonaws.com";
        assert_eq!(tls_name("10.0.3.17", cfg), cfg);
        assert_eq!(tls_name("fd00::1", cfg), cfg);
        let node = "shards-0001-001.shards.abc123.use1.cache.amazonaws.com";
        assert_eq!(tls_name(node, cfg), node);
    }

    #[test]
    fn keys_are_summed_over_the_shards_and_the_detail_shows_each() {
        let db0 = |keys| BTreeMap::from([(0, DbKeys { keys, expires: 1 })]);
        let shards = [db0(600), db0(400)];
        assert_eq!(
            sum_shards(&shards),
            BTreeMap::from([(0, DbKeys { keys: 1000, expires: 2 })])
        );
        let expected = BTreeMap::from([(0, DbKeys { keys: 1000, expires: 0 })]);
        let checks = compare_shards(&expected, &shards, 5.0);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].result, CheckResult::Passed);
        assert!(
            checks[0]
                .detail
                .starts_with("2 shards: 600 + 400 = 1000 keys; 1000 restored"),
            "{}",
            checks[0].detail
        );
        let short = compare_shards(&expected, &[db0(600), db0(300)], 5.0);
        assert_eq!(short[0].result, CheckResult::Failed, "{}", short[0].detail);
        assert!(short[0].detail.starts_with("2 shards: 600 + 300 = 900 keys"));
    }
}

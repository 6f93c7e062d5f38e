//! The RDB verifier against files a real `redis-server` wrote: every data type in both of its encodings, several
//! databases, expiries, a big key, functions, LFU metadata; and damaged copies that it must refuse, as Redis's own
//! `redis-check-rdb` does.

use std::collections::BTreeMap;
use std::process::Command;

use lifeboat::caches::rdb::{self, DbKeys, RdbError};
use lifeboat_tests::redis::{program, Redis};

/// Fills database 0 with every type, small (listpack/intset encodings) and big (hashtable, skiplist,
/// quicklist), a stream with a consumer group and pending entries, expiring keys and a ~16 MiB value; database 3
/// with a few keys. Returns the keys and expiring keys per database, as the server counts them.
fn fill(r: &Redis) -> BTreeMap<u64, DbKeys> {
    r.cli(0, &["SET", "s:plain", "hello"]);
    r.cli(0, &["SET", "s:int", "12345"]);
    r.cli(0, &["SET", "s:long", &"compressible ".repeat(100)]);
    r.cli(0, &["SET", "s:expiring", "soon", "EX", "3600"]);
    // About 16 MiB of digits that LZF cannot squeeze much: the big key stays big in the file.
    let big_value = "local t = {} for i = 1, 900000 do t[i] = tostring(math.random()) end \
                     redis.call('set', KEYS[1], table.concat(t)) return 1";
    r.cli(0, &["EVAL", big_value, "1", "s:big"]);
    r.cli(0, &["RPUSH", "l:small", "a", "b", "c"]);
    r.cli(0, &["SADD", "set:ints", "1", "2", "3"]);
    r.cli(0, &["SADD", "set:strings", "a", "b"]);
    r.cli(0, &["ZADD", "z:small", "1.5", "a", "inf", "b"]);
    r.cli(0, &["HSET", "h:small", "f", "v"]);
    let big = "for i = 1, 2000 do \
                 redis.call('rpush', KEYS[1], 'item' .. i); redis.call('sadd', KEYS[2], 'member' .. i); \
                 redis.call('zadd', KEYS[3], i / 3, 'member' .. i); redis.call('hset', KEYS[4], 'field' .. i, i) \
               end return 1";
    r.cli(0, &["EVAL", big, "4", "l:big", "set:big", "z:big", "h:big"]);
    r.cli(0, &["PEXPIRE", "h:big", "99999999"]);
    for i in 0..5 {
        r.cli(0, &["XADD", "queue", "*", "job", &format!("job-{i}")]);
    }
    r.cli(0, &["XGROUP", "CREATE", "queue", "workers", "0"]);
    r.cli(
        0,
        &[
            "XREADGROUP",
            "GROUP",
            "workers",
            "w1",
            "COUNT",
            "2",
            "STREAMS",
            "queue",
            ">",
        ],
    );
    let lib = "#!lua name=lifeboat\nredis.register_function('answer', function() return 42 end)";
    r.cli(0, &["FUNCTION", "LOAD", lib]);
    for i in 0..4 {
        r.cli(3, &["SET", &format!("db3:{i}"), "v"]);
    }
    r.cli(3, &["EXPIRE", "db3:0", "3600"]);
    keyspace(r)
}

/// `INFO keyspace`, read by the same rule the restore test's cache checks use.
fn keyspace(r: &Redis) -> BTreeMap<u64, DbKeys> {
    lifeboat::caches::check::parse_keyspace(&r.cli(0, &["INFO", "keyspace"]))
}

fn redis_check_rdb_accepts(path: &std::path::Path) -> bool {
    Command::new(program("redis-check-rdb"))
        .arg(path)
        .output()
        .expect("running redis-check-rdb")
        .status
        .success()
}

#[test]
fn a_file_a_real_server_wrote_is_verified_with_its_key_counts_per_database() {
    let r = Redis::start(&[]);
    let expected = fill(&r);
    assert_eq!(expected.keys().copied().collect::<Vec<_>>(), vec![0, 3]);
    let path = r.save();
    let bytes = std::fs::read(&path).unwrap();
    let summary = rdb::verify(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(summary.databases, expected);
    assert_eq!(summary.keys(), 19);
    assert!(summary.checksummed);
    assert_eq!(summary.bytes, bytes.len() as u64);
    assert!(
        summary.bytes > 8 << 20,
        "the big key is in the file: {} bytes",
        summary.bytes
    );
    let version = Command::new(program("redis-server")).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    let server = summary.server_version.clone().unwrap();
    assert!(version.contains(&format!("v={server} ")), "{version} vs {server}");
    assert!((9..=rdb::MAX_VERSION).contains(&summary.version));
    assert!(redis_check_rdb_accepts(&path));
}

#[test]
fn lfu_and_lru_metadata_and_an_empty_server_are_read() {
    for policy in ["allkeys-lfu", "allkeys-lru"] {
        let r = Redis::start(&["--maxmemory-policy", policy]);
        let empty = rdb::verify(std::fs::File::open(r.save()).unwrap()).unwrap();
        assert!(empty.databases.is_empty(), "{policy}: {empty:?}");
        let expected = fill(&r);
        for key in ["s:plain", "l:big", "queue"] {
            assert_ne!(r.cli(0, &["TYPE", key]), "none");
        }
        let summary = rdb::verify(std::fs::File::open(r.save()).unwrap()).unwrap();
        assert_eq!(summary.databases, expected, "{policy}");
    }
}

#[test]
fn a_truncated_or_bit_flipped_file_is_refused_as_redis_check_rdb_refuses_it() {
    let r = Redis::start(&[]);
    fill(&r);
    let good = std::fs::read(r.save()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    for cut in [10, good.len() / 3, good.len() / 2, good.len() - 9, good.len() - 1] {
        let path = write("truncated.rdb", &good[..cut]);
        let err = rdb::verify(std::fs::File::open(&path).unwrap()).unwrap_err();
        assert!(matches!(err, RdbError::Truncated { .. }), "cut at {cut}: {err}");
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(
            !redis_check_rdb_accepts(&path),
            "redis-check-rdb accepted a cut at {cut}"
        );
    }
    // Inside the big value (skipped, not parsed: the checksum must catch it), and near the start (structure).
    for at in [good.len() / 2, 40] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        let path = write("flipped.rdb", &bad);
        let err = rdb::verify(std::fs::File::open(&path).unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("damaged") || err.to_string().contains("truncated"),
            "flip at {at}: {err}"
        );
        assert!(
            !redis_check_rdb_accepts(&path),
            "redis-check-rdb accepted a flip at {at}"
        );
    }
}

/// Whether `redis-server --sanitize-dump-payload yes` loads `path` (a server that cannot load its file exits; one
/// that loads it keeps running, and is stopped here).
fn redis_loads_with_sanitisation(path: &std::path::Path) -> bool {
    let dir = path.parent().unwrap();
    let _ = std::fs::remove_file(dir.join("load.log"));
    let mut child = Command::new(program("redis-server"))
        .args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--sanitize-dump-payload",
            "yes",
        ])
        .args(["--port", &lifeboat_tests::free_port().to_string()])
        .arg("--dir")
        .arg(dir)
        .arg("--dbfilename")
        .arg(path.file_name().unwrap())
        .args(["--logfile", "load.log"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let log = std::fs::read_to_string(dir.join("load.log")).unwrap_or_default();
        if log.contains("DB loaded from disk") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::read_to_string(dir.join("load.log"))
        .unwrap_or_default()
        .contains("DB loaded from disk")
}

/// A file without a CRC (`rdbchecksum no`) and uncompressed, damaged inside one encoded container of a real
/// server's file: a listpack entry's length, a listpack entry's back-length, a duplicate in an intset. Redis
/// refuses to load each with payload sanitisation on, and so does the verifier, naming the container; the
/// undamaged file loads and verifies.
#[test]
fn a_damaged_container_is_refused_as_redis_refuses_to_load_it() {
    let r = Redis::start(&["--rdbcompression", "no", "--rdbchecksum", "no"]);
    let expected = fill(&r);
    let good = std::fs::read(r.save()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let summary = rdb::verify(&good[..]).unwrap();
    assert!(!summary.checksummed);
    assert_eq!(summary.databases, expected);
    assert!(
        redis_loads_with_sanitisation(&write("good.rdb", &good)),
        "the undamaged file loads"
    );
    let find = |pattern: &[u8]| {
        good.windows(pattern.len())
            .position(|w| w == pattern)
            .unwrap_or_else(|| panic!("{pattern:?} is in the file"))
    };
    // h:small's listpack holds "f" and "v": entry 0x81 'f', back-length 2.
    let hash = find(&[0x81, b'f', 0x02, 0x81, b'v', 0x02]);
    // z:small's listpack holds "a" and its score "1.5".
    let zset = find(&[0x81, b'a', 0x02, 0x83, b'1', b'.', b'5', 0x04]);
    // set:ints is an intset of 2-byte integers 1, 2, 3.
    let ints = find(&[2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0]);
    for (what, at, byte) in [
        ("a listpack entry's length", hash, 0x82),
        ("a listpack entry's back-length", zset + 2, 0x03),
        ("a duplicate in an intset", ints + 12, 2),
    ] {
        let mut bad = good.clone();
        bad[at] = byte;
        let path = write("bad.rdb", &bad);
        let err = rdb::verify(&bad[..]).unwrap_err().to_string();
        assert!(err.contains("integrity check failed"), "{what}: {err}");
        assert!(!redis_loads_with_sanitisation(&path), "{what}: redis-server loaded it");
        assert!(!redis_check_rdb_accepts(&path), "{what}: redis-check-rdb accepted it");
    }
}

/// An RDB 10 file (what the Debian Redis 7.0 writes) of database 0 holding `body`, with its CRC-64.
fn crafted(body: &[u8]) -> Vec<u8> {
    let mut f = b"REDIS0010\xFE\x00".to_vec();
    f.extend_from_slice(body);
    f.push(0xFF);
    let crc = rdb::crc64(0, &f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// Files written by hand with a member or a key twice, where only the duplicate differs from a file every judge
/// accepts: a plain set (what the server writes for a set above `set-max-intset-entries`), the same member once
/// integer-encoded and once as text, a plain hash and sorted set, a key twice in database 0. Redis 7.0 refuses to
/// load each, saying why (with `sanitize-dump-payload yes`; a key twice stops it whatever the setting),
/// `redis-check-rdb` refuses each but the key, and the verifier refuses all of them without naming the member or
/// key.
#[test]
fn a_member_or_key_twice_is_refused_as_redis_refuses_to_load_it() {
    let s = |bytes: &[u8]| {
        let mut v = vec![bytes.len() as u8];
        v.extend_from_slice(bytes);
        v
    };
    let set = |members: &[Vec<u8>]| {
        let mut v = vec![2];
        v.extend(s(b"set"));
        v.push(members.len() as u8);
        members.iter().for_each(|m| v.extend_from_slice(m));
        v
    };
    let hash = |fields: &[&[u8]]| {
        let mut v = vec![4];
        v.extend(s(b"hash"));
        v.push(fields.len() as u8);
        fields.iter().for_each(|f| {
            v.extend(s(f));
            v.extend(s(b"value"));
        });
        v
    };
    let zset = |members: &[&[u8]]| {
        let mut v = vec![5];
        v.extend(s(b"zset"));
        v.push(members.len() as u8);
        members.iter().for_each(|m| {
            v.extend(s(m));
            v.extend_from_slice(&1.5f64.to_le_bytes());
        });
        v
    };
    let key = |k: &[u8]| {
        let mut v = vec![0];
        v.extend(s(k));
        v.extend(s(b"v"));
        v
    };
    // (what, a good file's body, the same with a duplicate, the loader's words in its log, whether
    // `redis-check-rdb` sees it: it loads every value but keeps no keys, so a key twice passes it).
    let cases = [
        (
            "a plain set",
            set(&[s(b"secret-a"), s(b"b"), s(b"c")]),
            set(&[s(b"secret-a"), s(b"b"), s(b"secret-a")]),
            "Duplicate set members detected",
            true,
        ),
        (
            "an integer-encoded and a text member",
            set(&[vec![0xC0, 123], s(b"124")]),
            set(&[vec![0xC0, 123], s(b"123")]),
            "Duplicate set members detected",
            true,
        ),
        (
            "a plain hash",
            hash(&[b"secret-f", b"g"]),
            hash(&[b"secret-f", b"secret-f"]),
            "Hash with dup elements",
            true,
        ),
        (
            "a plain sorted set",
            zset(&[b"secret-m", b"n"]),
            zset(&[b"secret-m", b"secret-m"]),
            "Duplicate zset fields detected",
            true,
        ),
        (
            "a key twice in database 0",
            [key(b"secret-k"), key(b"other")].concat(),
            [key(b"secret-k"), key(b"secret-k")].concat(),
            "duplicated key",
            false,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, good, twice, loader, check_rdb_refuses) in cases {
        let good = crafted(&good);
        let path = dir.path().join("good.rdb");
        std::fs::write(&path, &good).unwrap();
        assert!(rdb::verify(&good[..]).is_ok(), "{what}: {:?}", rdb::verify(&good[..]));
        assert!(
            redis_check_rdb_accepts(&path),
            "{what}: redis-check-rdb refused the good file"
        );
        assert!(
            redis_loads_with_sanitisation(&path),
            "{what}: redis-server refused the good file"
        );

        let twice = crafted(&twice);
        let path = dir.path().join("twice.rdb");
        std::fs::write(&path, &twice).unwrap();
        let err = rdb::verify(&twice[..]).unwrap_err().to_string();
        assert!(
            err.contains("twice") && err.contains("the file is damaged"),
            "{what}: {err}"
        );
        assert!(!err.contains("secret"), "{what}: the bytes are in the message: {err}");
        assert!(!redis_loads_with_sanitisation(&path), "{what}: redis-server loaded it");
        let log = std::fs::read_to_string(dir.path().join("load.log")).unwrap();
        assert!(
            log.contains(loader),
            "{what}: the server refused it for another reason: {log}"
        );
        if check_rdb_refuses {
            assert!(!redis_check_rdb_accepts(&path), "{what}: redis-check-rdb accepted it");
        }
    }
}

"""moto's server with ElastiCache's export of a snapshot to S3: `CopySnapshot` with `TargetBucket`, which moto 5.2.x
does not implement (its ElastiCache has no `copy_snapshot` at all). Registered into moto before its server starts,
with `CreateSnapshot` wrapped to capture the snapshot's data (below); nothing else of moto is changed, so its
recorder (`MOTO_ENABLE_RECORDING`) records these calls like any other.

What it does, as the ElastiCache API reference (`CopySnapshot`) and user guide ("Exporting a backup") describe it:
- With `TargetBucket`, the source snapshot's RDB files are written into the bucket's root, one object per node
  group (shard): `<TargetSnapshotName>-0001.rdb`, `-0002.rdb`, ... (the naming `lifeboat::caches::rdb_copy`
  expects). The objects are written as ElastiCache writes them, by the service and not by the caller: straight
  into moto's S3 backend (so no request of the caller's is recorded for them), with the bucket's default
  encryption. The export has finished when the call returns (AWS takes minutes and shows the snapshot as
  `exporting` meanwhile, which Lifeboat waits out); the snapshot stays `available`.
- ElastiCache writes only where the bucket's policy lets its service principal, `<region>.elasticache-snapshot.
  amazonaws.com`, do so (the guide's bucket-policy method; the older ACL grant cannot work on a bucket with ACLs
  disabled, as Lifeboat's is). The policy checked is the one the deployed stack gave the bucket, which the harness
  writes to `bucket-policies.json` in this server's state directory (`tests/stack/deploy.py` keeps it out of moto's
  S3, which would evaluate it without a request's context; moto's S3 enforces no policy anyway). Each of the
  guide's three grants is judged as IAM judges a service principal's request (every key of it is known here: this
  account as `aws:SourceAccount`, TLS, no encryption header): READ (`s3:ListBucket` on the bucket, `s3:GetObject`
  on each object), WRITE (`s3:PutObject` on each object), READ_ACP (`s3:GetBucketAcl`). A missing grant fails as
  AWS documents: `ElastiCache has not been granted <READ|WRITE|READ_ACP> permissions <bucket> on the S3 Bucket.`
  A Deny that applies wins, as in IAM. Not the permission check's evaluator (`tests/stack/permissions.py`), which
  judges a function's recorded request and leaves keys it cannot see unknown: here nothing is unknown, and an
  operator this cannot decide is an error. What ElastiCache requires of the caller (`s3:GetBucketLocation`,
  `s3:ListAllMyBuckets`) is not judged here: the caller's rights are the permission check's, over the recording.
- An unknown source snapshot is `SnapshotNotFoundFault`; a bucket that does not exist, or is in another Region,
  and a target key already in the bucket, are `InvalidParameterValue` with the reference's messages
  (`The S3 bucket %s already contains an object with key %s.`, which Lifeboat reads as "already requested").
- Without `TargetBucket` it copies the snapshot within ElastiCache (`SnapshotAlreadyExistsFault` if the target
  name is taken), data included.

Where the RDB bytes come from: a real `redis-server` stands in for each cache a test gives data
(`stand-ins.json` in the state directory: cache id -> one server per shard, written by `Moto::stand_in_cache` in
`tests/src/moto.rs`). **The data is captured when the snapshot is taken**: `CreateSnapshot` of a cache with a
stand-in has its server `SAVE` (through Debian's `redis-cli`, as an operator would) and keeps the file the server
wrote, byte for byte, with the snapshot. Why then and not at `CopySnapshot`: a snapshot holds the data as it was when
taken; the server keeps taking writes after it, and an export later in the day must still carry the snapshot's data
(reading the server's data file at export time would silently export newer data). A snapshot of a cache without a
stand-in holds no data, and exporting it fails with a message that says so (never an invented file); a cache whose
stand-ins are not one per shard cannot be snapshotted (ElastiCache would write a file per node group).

It also installs RDS's point-in-time restore into a real server (`rds_pitr.py`, whose docstring says how).

Usage: python elasticache_export.py STATE_DIR [moto_server arguments ...]
"""

import copy
import json
import os
import re
import subprocess
import sys
import threading

STATE = sys.argv.pop(1)
BUCKET_POLICIES = os.path.join(STATE, "bucket-policies.json")
STAND_INS = os.path.join(STATE, "stand-ins.json")

from moto.elasticache.exceptions import (  # noqa: E402  (moto is imported after the state is read)
    InvalidParameterValueException,
    SnapshotAlreadyExists,
    SnapshotNotFound,
)
from moto.elasticache.models import ElastiCacheBackend  # noqa: E402
from moto.elasticache.responses import ElastiCacheResponse  # noqa: E402
from moto.core.responses import ActionResult  # noqa: E402


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


# ------------------------------------------------------------------------------------------- capturing the data

# One SAVE at a time: two snapshots of one server must not read each other's half-written file.
SAVING = threading.Lock()


def saved_rdb(server):
    """The RDB file the stand-in server writes on SAVE, as bytes."""
    cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(server["port"]), "--no-auth-warning", "-a", server["password"]]
    if server.get("ca"):
        cmd[1:1] = ["--tls", "--cacert", server["ca"]]
    with SAVING:
        out = subprocess.run(cmd + ["SAVE"], capture_output=True, text=True, timeout=60)
        if out.returncode != 0 or out.stdout.strip() != "OK":
            raise RuntimeError(f"SAVE on the stand-in at port {server['port']} failed: {out.stdout}{out.stderr}")
        with open(server["rdb"], "rb") as f:
            return f.read()


def stand_ins_of(backend, cache_cluster_id, replication_group_id):
    """The servers standing in for the snapshotted cache (a member cluster stands for its group too)."""
    registered = read_json(STAND_INS)
    member_of = getattr(backend.cache_clusters.get(cache_cluster_id or ""), "replication_group_id", None)
    for key in (cache_cluster_id, replication_group_id, member_of):
        if key and key in registered:
            return registered[key]
    return None


moto_create_snapshot = ElastiCacheBackend.create_snapshot


def create_snapshot(self, snapshot_name, replication_group_id, cache_cluster_id, kms_key_id, tags):
    snapshot = moto_create_snapshot(self, snapshot_name=snapshot_name, replication_group_id=replication_group_id,
                                    cache_cluster_id=cache_cluster_id, kms_key_id=kms_key_id, tags=tags)
    servers = stand_ins_of(self, cache_cluster_id, replication_group_id)
    shards = snapshot.num_node_groups or 1
    if servers and len(servers) != shards:
        # ElastiCache writes one file per node group: a wrong number of stand-ins would export a wrong number.
        del self.snapshots[snapshot_name]
        raise InvalidParameterValueException(
            f"(emulator) {len(servers)} servers stand in for a cache of {shards} shards (Moto::stand_in_cache)")
    snapshot.rdb_files = [saved_rdb(s) for s in servers] if servers else None
    return snapshot


ElastiCacheBackend.create_snapshot = create_snapshot


# ------------------------------------------------------------------------------------- judging the bucket policy

SERVICE = "{region}.elasticache-snapshot.amazonaws.com"


def listed(x):
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def glob(pattern, value, case=True):
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, 0 if case else re.IGNORECASE) is not None


def condition(op, key, wanted, ctx):
    """Whether one condition holds for a request whose every key is known (`ctx`, lower-case keys)."""
    qualifier, _, base = op.rpartition(":")
    if qualifier:
        raise ValueError(f"condition {op} is not decided by this emulator")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    wanted = [str(w) for w in listed(wanted)]
    value = ctx.get(key.lower())
    if base == "Null":
        return (value is None) == (wanted[0].lower() == "true")
    negated = "Not" in base
    if value is None:
        return if_exists or negated
    if base in ("StringEquals", "StringNotEquals"):
        hit = value in wanted
    elif base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        hit = value.lower() in [w.lower() for w in wanted]
    elif base in ("StringLike", "StringNotLike", "ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike"):
        hit = any(glob(w, value) for w in wanted)
    elif base == "Bool":
        return value.lower() in [w.lower() for w in wanted]
    else:
        raise ValueError(f"condition {op} is not decided by this emulator")
    return not hit if negated else hit


def names_service(stmt, service):
    def names(p):
        return p == "*" or (isinstance(p, dict) and ("*" in listed(p.get("AWS")) or service in listed(p.get("Service"))))
    if "Principal" in stmt:
        return names(stmt["Principal"])
    return "NotPrincipal" in stmt and not names(stmt["NotPrincipal"])


def covers(stmt, action, resource, ctx):
    if "Action" in stmt and not any(glob(a, action, case=False) for a in listed(stmt["Action"])):
        return False
    if "NotAction" in stmt and any(glob(a, action, case=False) for a in listed(stmt["NotAction"])):
        return False
    if "Resource" in stmt and not any(glob(r, resource) for r in listed(stmt["Resource"])):
        return False
    if "NotResource" in stmt and any(glob(r, resource) for r in listed(stmt["NotResource"])):
        return False
    return all(condition(op, k, v, ctx) for op, pairs in stmt.get("Condition", {}).items() for k, v in pairs.items())


def allowed(policy, service, action, resource, ctx):
    """IAM's verdict for a service principal of another kind than the bucket's owner: a Deny that applies wins,
    else an Allow that names the service must apply (no identity policy can grant it)."""
    verdict = False
    for stmt in listed((policy or {}).get("Statement")):
        if not names_service(stmt, service) or not covers(stmt, action, resource, ctx):
            continue
        if stmt.get("Effect") == "Deny":
            return False
        verdict = verdict or stmt.get("Effect") == "Allow"
    return verdict


def missing_grant(bucket, keys, region, account):
    """The first of the guide's grants the bucket's policy does not give ElastiCache, or None."""
    policy = read_json(BUCKET_POLICIES).get(bucket)
    service = SERVICE.format(region=region)
    ctx = {"aws:sourceaccount": account, "aws:securetransport": "true", "aws:principalservicename": service}
    bucket_arn = f"arn:aws:s3:::{bucket}"
    objects = [f"{bucket_arn}/{k}" for k in keys]
    needs = [
        ("READ", [("s3:ListBucket", bucket_arn)] + [("s3:GetObject", o) for o in objects]),
        ("WRITE", [("s3:PutObject", o) for o in objects]),
        ("READ_ACP", [("s3:GetBucketAcl", bucket_arn)]),
    ]
    for grant, checks in needs:
        if not all(allowed(policy, service, a, r, ctx) for a, r in checks):
            return grant
    return None


# ----------------------------------------------------------------------------------------------- the action


def export_to_bucket(response, snapshot, target, bucket_name):
    from moto.s3.exceptions import MissingBucket
    from moto.s3.models import s3_backends

    account, region = response.current_account, response.region
    s3 = s3_backends[account][response.partition]
    try:
        bucket = s3.get_bucket(bucket_name)
    except MissingBucket:
        raise InvalidParameterValueException(f"The S3 bucket {bucket_name} does not exist.")
    if bucket.region_name != region:
        raise InvalidParameterValueException(f"The S3 bucket {bucket_name} is outside of the region.")
    files = getattr(snapshot, "rdb_files", None)
    if not files:
        raise InvalidParameterValueException(
            f"(emulator) snapshot {snapshot.snapshot_name} holds no data: no redis-server stood in for its cache "
            "when it was taken (Moto::stand_in_cache in tests/src/moto.rs)")
    keys = [f"{target}-{shard:04d}.rdb" for shard in range(1, len(files) + 1)]
    grant = missing_grant(bucket_name, keys, region, account)
    if grant:
        raise InvalidParameterValueException(
            f"ElastiCache has not been granted {grant} permissions {bucket_name} on the S3 Bucket.")
    for key in keys:
        if bucket.keys.get(key) is not None:
            raise InvalidParameterValueException(
                f"The S3 bucket {bucket_name} already contains an object with key {key}.")
    for key, data in zip(keys, files):
        s3.put_object(bucket_name, key, data)


def copy_snapshot(self):
    source = self._get_param("SourceSnapshotName")
    target = self._get_param("TargetSnapshotName")
    bucket = self._get_param("TargetBucket")
    backend = self.elasticache_backend
    snapshot = backend.snapshots.get(source)
    if snapshot is None:
        raise SnapshotNotFound(source)
    if bucket:
        export_to_bucket(self, snapshot, target, bucket)
        return ActionResult({"Snapshot": snapshot})
    if target in backend.snapshots:
        raise SnapshotAlreadyExists(target)
    copied = copy.copy(snapshot)
    copied.snapshot_name = target
    copied.arn = snapshot.arn.rsplit(":", 1)[0] + ":" + target
    copied.snapshot_source = "manual"
    backend.snapshots[target] = copied
    return ActionResult({"Snapshot": copied})


ElastiCacheResponse.copy_snapshot = copy_snapshot

# RDS's point-in-time restore into a real server, for instances a real PostgreSQL stands in for (rds_pitr.py).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rds_pitr  # noqa: E402

rds_pitr.install(STATE)

from moto.server import main  # noqa: E402

sys.argv[0] = "moto_server"
sys.exit(main())

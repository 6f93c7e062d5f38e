"""Permissions proven by use: checks every AWS call a function made against the role the deployed stack gave it,
and lists what the roles grant that no call used.

Inputs: a moto recording (moto_server started with MOTO_ENABLE_RECORDING=True and MOTO_RECORDER_FILEPATH: one JSON
object per request, with headers, method, url and body) and the stack document `deploy.py` prints. A request
belongs to a function when the access key of its SigV4 credential scope is the name of that function's role (the
harness runs each function with AWS_ACCESS_KEY_ID set so), or to an ECS task when it is its task role's name (the
task's code) or its execution role's (what the ECS agent does for it: secrets, logs); every other request (the
deploy, a test's own set-up) is not checked.

For each call the script derives, from the request alone:
- the IAM action: the service prefix from the credential scope's signing name (`monitoring` is `cloudwatch`,
  `email` is `ses`), the operation from X-Amz-Target (JSON protocols), the Smithy RPC v2 path (CBOR), `Action=`
  (query protocols), or for REST services (S3, Lambda, Scheduler) by matching method, path and query markers
  against botocore's own service model; then the IAM name where it differs from the operation's (`OPERATION_ACTIONS`,
  S3's version, multipart and copy cases), and the actions IAM also requires of some requests (tag-on-create:
  `TAG_ON_CREATE`, S3's x-amz-tagging and object-lock headers, a copy's read of its source).
- the resource ARN(s): from the identifiers the request carries (`IDENTIFIERS`: bucket and key, secret, database,
  cluster, snapshot, cache, state machine, function, alarm, key, queue, topic, log group, schedule ...); a call
  whose request names no resource is checked against `*`.
- the condition values the request determines (`KNOWN_KEYS`); every other key is unknown.

Then each (action, resource) is evaluated as IAM does within one account, against the role's policies and, for S3,
the bucket's policy the stack document keeps (`bucket_policies`, judged with the role as the principal): an
explicit Deny in either wins; otherwise some Allow in either must apply (Action/NotAction, Resource/NotResource,
with wildcards; Condition operators String*, Arn*, Bool, Null, Numeric*, ForAllValues:/ForAnyValue:, ...IfExists). A condition on an unknown key neither grants nor refuses: a call allowed
only through such a statement passes and is reported as `assumed` with the key; a Deny that applies only through
an unknown key is reported as `maybe-denied` and does not fail.

Never: guesses an action it cannot derive (such a call is reported `underived` and fails the check), or reads
anything but the recording, the stack document and the reasons file.

Usage:
  permissions.py --recording FILE --stack FILE [--reasons FILE] [--strict-unused] [--json FILE] [--quiet]
Output (stdout, one finding a line, tab-separated: kind, function or role, action, resource, detail):
  not-allowed / denied / underived   a call the role does not allow (these fail the check)
  allowed / assumed / maybe-denied   calls that pass (assumed: through a condition on an unknown key)
  unused                             an action an Allow statement grants that no call of the run used, with the
                                     reason from --reasons, or `no reason given`
  not-run                            a function role that made no call in the recording (its grants are not listed)
  a summary line last. --json FILE also writes every finding (with its count) as JSON; --quiet leaves out the
  `allowed` lines.
Exit codes: 0 every call allowed (and, with --strict-unused, every unused grant has a reason); 1 a call not
allowed, denied or underived (or, with --strict-unused, an unused grant without a reason); 2 unusable input
(unreadable files, or a part of the recording that cannot be read and holds a function's request).
"""

import argparse
import base64
import json
import re
import struct
import sys
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl, unquote, urlsplit

import botocore.session

# Signing names whose IAM prefix differs, and the botocore model that speaks for them.
IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}
MODEL_OF = {"monitoring": "cloudwatch", "states": "stepfunctions", "email": "ses"}

# Calls that need no permission at all.
NO_PERMISSION = {"sts:GetCallerIdentity"}

# IAM actions whose names are not the operation's (per service; S3 has its own rules in `s3_checks`).
OPERATION_ACTIONS = {
    "lambda": {"Invoke": "InvokeFunction", "InvokeWithResponseStream": "InvokeFunction",
               "InvokeAsync": "InvokeAsync", "ListFunctions": "ListFunctions"},
}

# The condition keys this script evaluates from a request. Any other key is unknown (reported, never failing).
KNOWN_KEYS = [
    "aws:RequestTag/*", "aws:TagKeys", "aws:SecureTransport (true: the SDK's AWS endpoints are HTTPS)",
    "s3:prefix", "s3:delimiter", "s3:max-keys", "s3:VersionId", "s3:if-none-match", "s3:if-match",
    "s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:RequestObjectTag/*", "s3:RequestObjectTagKeys",
    "kms:ViaService, kms:GrantIsForAWSResource (absent: the recorded calls are the function's own, not a service's)",
    "kms:CallerAccount, aws:PrincipalAccount", "aws:RequestedRegion",
    "secretsmanager:SecretId", "aws:PrincipalArn (the function's role)",
    "s3:ObjectCreationOperation (true for PutObject, CopyObject, CompleteMultipartUpload)",
    "s3:ExistingObjectTag/* (absent for a put with If-None-Match: *, which must create its object)",
]

# How a request's identifiers become ARNs, per IAM prefix: parameter name -> (ARN resource template, the action
# prefixes it is the resource of). `{v}` is the parameter's value; a value that is already an ARN is used as it is.
ARN = "arn:aws:{service}:{region}:{account}:"
IDENTIFIERS = {
    "rds": {
        "DBInstanceIdentifier": "db:{v}", "SourceDBInstanceIdentifier": "db:{v}",
        "TargetDBInstanceIdentifier": "db:{v}", "DBClusterIdentifier": "cluster:{v}",
        "SourceDBClusterIdentifier": "cluster:{v}",
        "DBSnapshotIdentifier": "snapshot:{v}", "SourceDBSnapshotIdentifier": "snapshot:{v}",
        "TargetDBSnapshotIdentifier": "snapshot:{v}", "DBClusterSnapshotIdentifier": "cluster-snapshot:{v}",
        "SourceDBClusterSnapshotIdentifier": "cluster-snapshot:{v}",
        "TargetDBClusterSnapshotIdentifier": "cluster-snapshot:{v}", "DBSubnetGroupName": "subgrp:{v}",
        "DBParameterGroupName": "pg:{v}", "DBClusterParameterGroupName": "cluster-pg:{v}",
        "OptionGroupName": "og:{v}", "ResourceName": "{v}",
    },
    "elasticache": {
        "ReplicationGroupId": "replicationgroup:{v}", "CacheClusterId": "cluster:{v}",
        "SnapshotName": "snapshot:{v}", "SourceSnapshotName": "snapshot:{v}", "TargetSnapshotName": "snapshot:{v}",
        "ServerlessCacheName": "serverlesscache:{v}",
        "ServerlessCacheSnapshotName": "serverlesscachesnapshot:{v}",
        "SourceServerlessCacheSnapshotName": "serverlesscachesnapshot:{v}",
        "TargetServerlessCacheSnapshotName": "serverlesscachesnapshot:{v}",
        "CacheSubnetGroupName": "subnetgroup:{v}", "CacheParameterGroupName": "parametergroup:{v}",
        "UserGroupId": "usergroup:{v}", "ResourceName": "{v}",
    },
    # A secret's ARN ends in a six-character suffix AWS chooses; a name stands for `<name>-??????`, written with
    # `xxxxxx` (what a policy's `<name>-*` or `<prefix>/*` matches, and an exact ARN never does).
    "secretsmanager": {"SecretId": "secret:{v}-xxxxxx", "Name": "secret:{v}-xxxxxx"},
    "states": {"stateMachineArn": "{v}", "executionArn": "{v}"},
    "lambda": {"FunctionName": "function:{v}"},
    "cloudwatch": {"AlarmName": "alarm:{v}", "AlarmNames": "alarm:{v}"},
    "kms": {"KeyId": "key/{v}"},
    "sns": {"TopicArn": "{v}"},
    "sqs": {"QueueUrl": "{queue}"},
    "logs": {"logGroupName": "log-group:{v}", "logGroupIdentifier": "log-group:{v}"},
    "ecs": {"cluster": "cluster/{v}", "taskDefinition": "task-definition/{v}", "tasks": "task/{v}"},
    "scheduler": {"Name": "schedule/{group}/{v}"},
}

# Tag-on-create: a create that carries tags is also authorised as `<prefix>:<tag action>` on the resource it creates
# (the Service Authorization Reference's dependent action), named by this parameter.
TAG_ON_CREATE = {
    "rds": ("AddTagsToResource", {
        "CreateDBSnapshot": "DBSnapshotIdentifier", "CreateDBClusterSnapshot": "DBClusterSnapshotIdentifier",
        "CopyDBSnapshot": "TargetDBSnapshotIdentifier", "CopyDBClusterSnapshot": "TargetDBClusterSnapshotIdentifier",
        "CreateDBInstance": "DBInstanceIdentifier", "CreateDBCluster": "DBClusterIdentifier",
        "RestoreDBInstanceFromDBSnapshot": "DBInstanceIdentifier",
        "RestoreDBClusterFromSnapshot": "DBClusterIdentifier",
        "RestoreDBInstanceToPointInTime": "TargetDBInstanceIdentifier",
        "RestoreDBClusterToPointInTime": "DBClusterIdentifier"}),
    "elasticache": ("AddTagsToResource", {
        "CreateSnapshot": "SnapshotName", "CopySnapshot": "TargetSnapshotName",
        "CreateReplicationGroup": "ReplicationGroupId", "CreateCacheCluster": "CacheClusterId",
        "CreateServerlessCache": "ServerlessCacheName",
        "CreateServerlessCacheSnapshot": "ServerlessCacheSnapshotName",
        "CopyServerlessCacheSnapshot": "TargetServerlessCacheSnapshotName"}),
    "secretsmanager": ("TagResource", {"CreateSecret": "Name"}),
}

# Operations whose request names a resource only to filter a list: they are checked against `*`.
LISTING = re.compile(r"^(Describe|List)(?!TagsForResource)")


# ---------------------------------------------------------------------------------------------------- reading


def records(path):
    """Every request of a recording. moto's threads may write records without a newline between them, so each
    line is read as a run of JSON objects; a fragment that is not one is returned as text."""
    dec = json.JSONDecoder()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            i, n = 0, len(line)
            while i < n:
                while i < n and line[i].isspace():
                    i += 1
                if i >= n:
                    break
                try:
                    obj, i = dec.raw_decode(line, i)
                    yield obj
                except json.JSONDecodeError:
                    nxt = line.find('{"headers"', i + 1)
                    end = n if nxt < 0 else nxt
                    yield line[i:end]
                    i = end


def cbor(data):
    """A Smithy RPC v2 CBOR body as Python values (the subset Smithy writes)."""

    def item(i):
        ib = data[i]
        major, info = ib >> 5, ib & 31
        i += 1
        if major == 7:
            if info == 20:
                return False, i
            if info == 21:
                return True, i
            if info in (22, 23):
                return None, i
            if info == 25:
                return struct.unpack(">e", data[i:i + 2])[0], i + 2
            if info == 26:
                return struct.unpack(">f", data[i:i + 4])[0], i + 4
            if info == 27:
                return struct.unpack(">d", data[i:i + 8])[0], i + 8
            if info == 31:
                return StopIteration, i
            raise ValueError(f"cbor simple value {info}")
        if info < 24:
            arg = info
        elif info == 31:
            arg = None
        else:
            size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
            arg, i = int.from_bytes(data[i:i + size], "big"), i + size
        if major == 0:
            return arg, i
        if major == 1:
            return -1 - arg, i
        if major in (2, 3):
            if arg is None:
                chunks = []
                while data[i] != 0xFF:
                    c, i = item(i)
                    chunks.append(c)
                out = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
                return (out if major == 2 else out.decode()), i + 1
            raw = bytes(data[i:i + arg])
            return (raw if major == 2 else raw.decode()), i + arg
        if major == 4:
            out = []
            while arg is None or len(out) < arg:
                v, i = item(i)
                if v is StopIteration:
                    break
                out.append(v)
            return out, i
        if major == 5:
            out = {}
            while arg is None or len(out) < arg:
                k, i = item(i)
                if k is StopIteration:
                    break
                out[k], i = item(i)
            return out, i
        if major == 6:
            return item(i)  # a tag (timestamps): its value
        raise ValueError(f"cbor major type {major}")

    return item(0)[0] if data else {}


def header(headers, name):
    name = name.lower()
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")


def credential(rec, query):
    m = CREDENTIAL.search(header(rec["headers"], "Authorization") or "")
    if m:
        return m.group(1), m.group(3), m.group(4)
    if "X-Amz-Credential" in query:
        parts = query["X-Amz-Credential"].split("/")
        if len(parts) == 5:
            return parts[0], parts[2], parts[3]
    return None


# ---------------------------------------------------------------------------------------------------- deriving


class Models:
    """botocore's service models, by signing name."""

    def __init__(self):
        self.session = botocore.session.get_session()
        self.cache = {}

    def get(self, signing):
        if signing not in self.cache:
            name = MODEL_OF.get(signing, signing)
            try:
                self.cache[signing] = self.session.get_service_model(name)
            except Exception:  # an unknown service: the call stays underived
                self.cache[signing] = None
        return self.cache[signing]


def match_uri(template, path_segments, query):
    """Path labels if the REST request matches `template` (`/a/{B}/{C+}?marker&k=v`), else None; and how many
    query markers it required."""
    tpath, _, tquery = template.partition("?")
    tsegs = [s for s in tpath.split("/")[1:]]
    if tsegs and tsegs[-1] == "":
        tsegs = tsegs[:-1]
    segs = list(path_segments)
    labels = {}
    for i, t in enumerate(tsegs):
        if t.startswith("{") and t.endswith("+}"):
            rest = "/".join(segs[i:])
            if not rest:
                return None
            labels[t[1:-2]] = rest
            segs = segs[:i]
            tsegs = tsegs[:i]
            break
        if i >= len(segs):
            return None
        if t.startswith("{") and t.endswith("}"):
            if not segs[i]:
                return None
            labels[t[1:-1]] = segs[i]
        elif t != segs[i]:
            return None
    else:
        if len(segs) != len(tsegs):
            return None
    markers = 0
    for q in filter(None, tquery.split("&")):
        k, eq, v = q.partition("=")
        if k not in query or (eq and query[k] != v):
            return None
        markers += 1
    return labels, markers


def rest_operation(model, method, path, query):
    """The operation of a REST request by botocore's model: the most specific (most query markers) match."""
    # The Rust SDK names some operations in the query (`x-id=GetObject`): only that one is matched then.
    named = query.get("x-id")
    segs = [unquote(s) for s in path.split("/")[1:]]
    if segs and segs[-1] == "" and len(segs) > 1:
        segs = segs[:-1]
    best = None
    for name in model.operation_names:
        http = model.operation_model(name).http
        if http.get("method") != method or (named and name != named):
            continue
        m = match_uri(http.get("requestUri", "/"), segs, query)
        if m and (best is None or m[1] > best[2]):
            best = (name, m[0], m[1])
    if best is None:
        return named, None
    return best[0], best[1]


def request_tags(params):
    """Tags a request sets: query (`Tags.member.N.Key`, `Tags.Tag.N.Key`), JSON (`Tags` as pairs or a map)."""
    tags = {}
    keys = {}
    values = {}
    for k, v in params.items():
        m = re.match(r"^Tags\.(?:member|Tag)\.(\d+)\.(Key|Value)$", str(k))
        if m:
            (keys if m.group(2) == "Key" else values)[m.group(1)] = v
    for n, k in keys.items():
        tags[k] = values.get(n, "")
    for name in ("Tags", "tags"):
        t = params.get(name)
        if isinstance(t, dict):
            tags.update({str(k): str(v) for k, v in t.items()})
        elif isinstance(t, list):
            for e in t:
                if isinstance(e, dict):
                    k = e.get("Key", e.get("key"))
                    if k is not None:
                        tags[k] = e.get("Value", e.get("value", ""))
    return tags


def tag_keys(params):
    """Tag keys a request removes (`TagKeys.member.N`, `TagKeys` / `tagKeys` lists)."""
    out = [v for k, v in params.items() if re.match(r"^TagKeys\.member\.\d+$", str(k))]
    for name in ("TagKeys", "tagKeys"):
        if isinstance(params.get(name), list):
            out.extend(params[name])
    return out


def base_context(region, account, tags, removed):
    ctx = {"aws:securetransport": "true", "aws:requestedregion": region, "aws:principalaccount": account,
           "kms:calleraccount": account}
    for k, v in tags.items():
        ctx[f"aws:requesttag/{k}".lower()] = v
    if tags or removed:
        ctx["aws:tagkeys"] = sorted(set(tags) | set(removed))
    return ctx


def known(key):
    """Whether the value (or absence) of `key` is determined by the request."""
    k = key.lower()
    return (k.startswith("aws:requesttag/") or k.startswith("s3:requestobjecttag/") or k in {
        "aws:tagkeys", "aws:securetransport", "aws:requestedregion", "aws:principalaccount", "kms:calleraccount",
        "kms:viaservice", "kms:grantisforawsresource", "s3:prefix", "s3:delimiter", "s3:max-keys", "s3:versionid",
        "s3:if-none-match", "s3:if-match", "s3:x-amz-server-side-encryption",
        "s3:x-amz-server-side-encryption-aws-kms-key-id", "s3:requestobjecttagkeys", "secretsmanager:secretid",
        "aws:principalarn", "s3:objectcreationoperation"})


S3_OBJECT_ACTIONS = {
    "GetObject": "GetObject", "HeadObject": "GetObject", "PutObject": "PutObject", "DeleteObject": "DeleteObject",
    "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject", "CompleteMultipartUpload": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload", "ListParts": "ListMultipartUploadParts",
    "GetObjectTagging": "GetObjectTagging", "PutObjectTagging": "PutObjectTagging",
    "DeleteObjectTagging": "DeleteObjectTagging", "GetObjectAttributes": "GetObjectAttributes",
    "GetObjectRetention": "GetObjectRetention", "PutObjectRetention": "PutObjectRetention",
    "GetObjectLegalHold": "GetObjectLegalHold", "PutObjectLegalHold": "PutObjectLegalHold",
    "GetObjectAcl": "GetObjectAcl", "PutObjectAcl": "PutObjectAcl", "RestoreObject": "RestoreObject",
}
# With a versionId, these act on a version and IAM names them so.
S3_VERSIONED = {"GetObject": "GetObjectVersion", "DeleteObject": "DeleteObjectVersion",
                "GetObjectTagging": "GetObjectVersionTagging", "PutObjectTagging": "PutObjectVersionTagging",
                "DeleteObjectTagging": "DeleteObjectVersionTagging", "GetObjectAcl": "GetObjectVersionAcl",
                "PutObjectAcl": "PutObjectVersionAcl", "GetObjectAttributes": "GetObjectVersionAttributes"}
S3_BUCKET_ACTIONS = {
    "ListObjects": "ListBucket", "ListObjectsV2": "ListBucket", "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions", "ListMultipartUploads": "ListBucketMultipartUploads",
    "GetBucketVersioning": "GetBucketVersioning", "PutBucketVersioning": "PutBucketVersioning",
    "GetBucketLocation": "GetBucketLocation", "GetBucketPolicy": "GetBucketPolicy",
    "PutBucketPolicy": "PutBucketPolicy", "CreateBucket": "CreateBucket", "DeleteBucket": "DeleteBucket",
    "GetBucketTagging": "GetBucketTagging", "GetObjectLockConfiguration": "GetBucketObjectLockConfiguration",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "GetBucketEncryption": "GetEncryptionConfiguration",
}


def s3_checks(op, labels, host, query, headers, body, region, account):
    """S3's (action, resource, context) triples: object actions on `bucket/key`, bucket actions on the bucket,
    the copy source's read, and each key of a multi-object delete."""
    bucket = labels.get("Bucket")
    key = labels.get("Key")
    if bucket is None and host and not re.match(r"^[\d.]+(:\d+)?$|^localhost", host):
        bucket = host.split(".")[0]
    ctx = base_context(region, account, {}, [])
    for k in ("prefix", "delimiter", "max-keys"):
        if k in query:
            ctx[f"s3:{k}"] = query[k]
    if "versionId" in query:
        ctx["s3:versionid"] = query["versionId"]
    for h in ("If-None-Match", "If-Match", "x-amz-server-side-encryption",
              "x-amz-server-side-encryption-aws-kms-key-id"):
        v = header(headers, h)
        if v is not None:
            ctx[f"s3:{h.lower()}"] = v
    tagging = header(headers, "x-amz-tagging")
    if tagging:
        pairs = dict(parse_qsl(tagging, keep_blank_values=True))
        for k, v in pairs.items():
            ctx[f"s3:requestobjecttag/{k}".lower()] = v
        ctx["s3:requestobjecttagkeys"] = sorted(pairs)
    out = []
    if op == "DeleteObjects":
        for obj in ET.fromstring(body or b"<Delete/>").iter():
            if obj.tag.endswith("Object"):
                k = next((c.text for c in obj if c.tag.endswith("Key")), None)
                v = next((c.text for c in obj if c.tag.endswith("VersionId")), None)
                out.append((f"s3:{'DeleteObjectVersion' if v else 'DeleteObject'}", f"arn:aws:s3:::{bucket}/{k}",
                            ctx))
        return out
    if op in ("PutObject", "CopyObject", "CompleteMultipartUpload"):
        ctx["s3:objectcreationoperation"] = "true"
    elif op in ("CreateMultipartUpload", "UploadPart", "UploadPartCopy"):
        ctx["s3:objectcreationoperation"] = "false"
    copy = header(headers, "x-amz-copy-source")
    if copy and op in ("PutObject", "CopyObject", "UploadPart", "UploadPartCopy"):
        src, _, q = unquote(copy).lstrip("/").partition("?versionId=")
        out.append(("s3:GetObjectVersion" if q else "s3:GetObject", f"arn:aws:s3:::{src}", ctx))
        op = "PutObject"
    if op in ("CopyObject", "UploadPartCopy"):
        op = "PutObject"
    if key is not None:
        action = S3_OBJECT_ACTIONS.get(op, op)
        if "versionId" in query and op in S3_VERSIONED:
            action = S3_VERSIONED[op]
        obj = f"arn:aws:s3:::{bucket}/{key}"
        out.append((f"s3:{action}", obj, ctx))
        # A new object's tags, retention or legal hold set with the upload need their own actions too.
        if op in ("PutObject", "CreateMultipartUpload"):
            if tagging:
                out.append(("s3:PutObjectTagging", obj, ctx))
            if header(headers, "x-amz-object-lock-mode") or header(headers, "x-amz-object-lock-retain-until-date"):
                out.append(("s3:PutObjectRetention", obj, ctx))
            if header(headers, "x-amz-object-lock-legal-hold"):
                out.append(("s3:PutObjectLegalHold", obj, ctx))
    elif op == "ListBuckets":
        out.append(("s3:ListAllMyBuckets", "*", ctx))
    else:
        out.append((f"s3:{S3_BUCKET_ACTIONS.get(op, op)}", f"arn:aws:s3:::{bucket}", ctx))
    return out


def arns(prefix, op, params, region, account):
    """The resources a (non-S3) request names, as ARNs; `*` when it names none or only filters a listing."""
    table = IDENTIFIERS.get(prefix, {})
    base = ARN.format(service=prefix, region=region, account=account)
    found = []
    if LISTING.match(op) and not (prefix == "secretsmanager" and op == "DescribeSecret") and \
            not (prefix == "states" and op.startswith("Describe")) and not (prefix == "logs"):
        return ["*"]
    for name, template in table.items():
        if name not in params:
            continue
        values = params[name] if isinstance(params[name], list) else [params[name]]
        for v in values:
            v = str(v)
            if v.startswith("arn:"):
                found.append(v)
                continue
            if prefix == "kms" and v.startswith("alias/"):
                found.append(base + v)
                continue
            if prefix == "sqs":
                found.append(base + v.rstrip("/").rsplit("/", 1)[-1])
                continue
            if prefix == "scheduler":
                found.append(base + template.format(v=v, group=params.get("GroupName", "default")))
                continue
            res = base + template.format(v=v)
            if prefix == "logs" and "logStreamName" in params:
                res += f":log-stream:{params['logStreamName']}"
            found.append(res)
    # Indexed query parameters (`AlarmNames.member.1`).
    for k, v in params.items():
        m = re.match(r"^(\w+)\.member\.\d+$", str(k))
        if m and m.group(1) in table and m.group(1) not in ("TagKeys",):
            found.append(base + table[m.group(1)].format(v=v))
    return found or ["*"]


def derive(rec, models, account):
    """(signing key, [(action, resource, context)], operation) of one record, or a reason it cannot be derived."""
    url = urlsplit(rec["url"])
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    cred = credential(rec, query)
    if cred is None:
        return None
    key, region, signing = cred
    headers = rec.get("headers", {})
    body = rec.get("body") or ""
    raw = base64.b64decode(body) if rec.get("body_encoded") else body.encode()
    method = rec["method"].upper()
    prefix = IAM_PREFIX.get(signing, signing)
    model = models.get(signing)
    target = header(headers, "X-Amz-Target")
    params = {}
    labels = {}
    op = None
    try:
        if target:
            op = target.rsplit(".", 1)[-1]
            params = json.loads(raw or b"{}")
        elif (header(headers, "smithy-protocol") or "").startswith("rpc-v2-cbor") or "/operation/" in url.path:
            op = url.path.rstrip("/").rsplit("/", 1)[-1]
            params = cbor(raw) if raw else {}
        elif "x-www-form-urlencoded" in (header(headers, "Content-Type") or "") or raw.startswith(b"Action=") \
                or "Action" in query:
            # The query protocols (also CloudWatch's, whose model prefers CBOR but whose SDK may send a form).
            form = dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
            params = {**query, **form}
            op = params.get("Action")
        elif model is not None:
            op, labels = rest_operation(model, method, url.path, query)
            labels = labels or {}
            params = {**query, **labels}
            if model.protocol == "rest-json" and raw[:1] == b"{":
                params.update(json.loads(raw))
    except (ValueError, json.JSONDecodeError) as e:
        return key, None, f"unreadable {signing} request body ({e})"
    if not op:
        return key, None, f"no operation found for {method} {url.path} (signing name {signing})"
    if prefix == "s3":
        if op in ("PutObject",) and "uploadId" in query and "partNumber" in query:
            op = "UploadPart"
        return key, s3_checks(op, labels, header(headers, "Host"), query, headers, raw, region, account), op
    action = f"{prefix}:{OPERATION_ACTIONS.get(prefix, {}).get(op, op)}"
    if not isinstance(params, dict):
        params = {}
    ctx = base_context(region, account, request_tags(params), tag_keys(params))
    if prefix == "secretsmanager" and "SecretId" in params:
        ctx["secretsmanager:secretid"] = params["SecretId"]
    checks = [(action, r, ctx) for r in arns(prefix, op, params, region, account)]
    tag_action, creates = TAG_ON_CREATE.get(prefix, (None, {}))
    if op in creates and "aws:tagkeys" in ctx and creates[op] in params:
        for r in arns(prefix, "Tag", {creates[op]: params[creates[op]]}, region, account):
            checks.append((f"{prefix}:{tag_action}", r, ctx))
    return key, checks, op


# ---------------------------------------------------------------------------------------------------- evaluating


def glob(pattern, value, case=True):
    """IAM's wildcards: `*` any run, `?` one character."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, 0 if case else re.IGNORECASE) is not None


def listed(x):
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def condition(op, key, wanted, ctx):
    """True, False, or None (the key's value is unknown)."""
    # A put that must create its object (If-None-Match: *) acts on an object with no tags yet.
    fresh = key.lower().startswith("s3:existingobjecttag/") and ctx.get("s3:if-none-match") == "*"
    if not known(key) and not fresh:
        return None
    qualifier, _, base = op.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base[:-len("IfExists")] if if_exists else base
    k = key.lower()
    present = k in ctx
    wanted = [str(w) for w in listed(wanted)]
    if any("${" in w for w in wanted):
        return None  # a policy variable: not resolved here
    if base == "Null":
        return (not present) == (wanted[0].lower() == "true")
    negated = "Not" in base
    if not present:
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return True if (if_exists or negated) else False
    values = [str(v) for v in listed(ctx[k])]

    def one(v):
        if base.startswith("String"):
            ic = "IgnoreCase" in base
            if "Like" in base:
                hit = any(glob(w, v) for w in wanted)
            elif ic:
                hit = any(w.lower() == v.lower() for w in wanted)
            else:
                hit = v in wanted
        elif base.startswith("Arn"):
            hit = any(glob(w, v) for w in wanted)
        elif base == "Bool":
            return v.lower() in [w.lower() for w in wanted]
        elif base.startswith("Numeric"):
            cmp = {"NumericEquals": lambda a, b: a == b, "NumericNotEquals": lambda a, b: a == b,
                   "NumericLessThan": lambda a, b: a < b, "NumericLessThanEquals": lambda a, b: a <= b,
                   "NumericGreaterThan": lambda a, b: a > b, "NumericGreaterThanEquals": lambda a, b: a >= b}
            hit = any(cmp[base](float(v), float(w)) for w in wanted)
        else:
            raise ValueError(op)
        return (not hit) if negated else hit

    try:
        if qualifier == "ForAllValues":
            return all(one(v) for v in values)
        return any(one(v) for v in values)
    except ValueError:
        return None  # an operator this script does not evaluate (Date*, IpAddress, Binary)


def statements(doc):
    if not doc:
        return []
    st = doc.get("Statement", [])
    return [s for s in listed(st) if isinstance(s, dict)]


def applies(stmt, action, resource, ctx):
    """(True/False/None, [unknown keys]): whether `stmt` covers the request (None: only if unknown keys hold)."""
    if "Action" in stmt:
        if not any(glob(a, action, case=False) for a in listed(stmt["Action"])):
            return False, []
    elif any(glob(a, action, case=False) for a in listed(stmt.get("NotAction", []))):
        return False, []
    if "Resource" in stmt:
        if not any(glob(r, resource) for r in listed(stmt["Resource"])):
            return False, []
    elif any(glob(r, resource) for r in listed(stmt.get("NotResource", []))):
        return False, []
    unknown = []
    for op, pairs in stmt.get("Condition", {}).items():
        for key, wanted in pairs.items():
            r = condition(op, key, wanted, ctx)
            if r is False:
                return False, []
            if r is None:
                unknown.append(f"{op} {key}")
    return (None, unknown) if unknown else (True, [])


def principal_matches(stmt, effect, role_arn, account):
    """Whether a resource policy's statement names the function's role. An Allow must name it (or `*`); a Deny
    also applies when it names the role's account."""
    def names(p):
        if p == "*":
            return True
        if not isinstance(p, dict):
            return False
        aws = [str(a) for a in listed(p.get("AWS"))]
        if effect == "Deny" and any(a in (account, f"arn:aws:iam::{account}:root") for a in aws):
            return True
        return any(a == "*" or a == role_arn for a in aws)

    if "Principal" in stmt:
        return names(stmt["Principal"])
    if "NotPrincipal" in stmt:
        return not names(stmt["NotPrincipal"])
    return True


def evaluate(policies, action, resource, ctx, resource_policies=None, role_arn=None, account=None):
    """(verdict, detail, [(policy, statement index, matched action patterns)] of the identity Allows used).
    `resource_policies` (name -> document, a bucket's policy) are evaluated with the role as the principal: within
    one account, either kind of policy may allow, and a Deny in either wins."""
    if action in NO_PERMISSION:
        return "allowed", "needs no permission", []
    allows, maybe_allows, maybe_denies = [], [], []
    sources = [(pname, doc, False) for pname, doc in policies.items()]
    sources += [(pname, doc, True) for pname, doc in (resource_policies or {}).items()]
    for pname, doc, on_resource in sources:
        for i, s in enumerate(statements(doc)):
            if on_resource and not principal_matches(s, s.get("Effect"), role_arn, account):
                continue
            ok, unknown = applies(s, action, resource, ctx)
            if ok is False:
                continue
            sid = s.get("Sid", f"#{i}")
            if s.get("Effect") == "Deny":
                if ok:
                    return "denied", f"explicit Deny {pname} {sid}", []
                maybe_denies.append(f"{pname} {sid} if {', '.join(unknown)}")
                continue
            used = [a for a in listed(s.get("Action", [])) if glob(a, action, case=False)]
            if on_resource:
                sid = f"{pname} {sid}"
            (allows if ok else maybe_allows).append(((pname, i, tuple(used)), sid, unknown))
    if allows:
        detail = "by " + ", ".join(sid for _, sid, _ in allows)
        verdict = "allowed"
        used = [u for u, _, _ in allows]
    elif maybe_allows:
        detail = "only if unknown: " + "; ".join(f"{sid}: {', '.join(u)}" for _, sid, u in maybe_allows)
        verdict = "assumed"
        used = [u for u, _, _ in maybe_allows]
    else:
        return "not-allowed", "no statement allows it", []
    if maybe_denies:
        return "maybe-denied", detail + "; a Deny applies if unknown: " + "; ".join(maybe_denies), used
    return verdict, detail, used


# ---------------------------------------------------------------------------------------------------- reporting


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recording", required=True, help="moto's recording (JSON lines)")
    ap.add_argument("--stack", required=True, help="the stack document deploy.py printed")
    ap.add_argument("--reasons", help="JSON: role logical id -> action as granted (or `<Sid> <action>` for one "
                                      "statement's grant) -> why it is kept unused")
    ap.add_argument("--strict-unused", action="store_true",
                    help="fail (exit 1) when a granted action no call used has no reason")
    ap.add_argument("--json", help="also write every finding here as JSON")
    ap.add_argument("--quiet", action="store_true", help="print no `allowed` lines (failures, unused, summary)")
    a = ap.parse_args()
    try:
        with open(a.stack) as f:
            stack = json.load(f)
        reasons = {}
        if a.reasons:
            with open(a.reasons) as f:
                reasons = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"permissions: cannot read the inputs: {e}", file=sys.stderr)
        return 2

    account = stack.get("account", "123456789012")
    # Bucket policies deploy.py kept resolved (moto would judge them without the request's context).
    bucket_policies = stack.get("bucket_policies", {})
    roles = stack["roles"]
    by_key = {}  # access key (the role's name) -> (role ARN, functions using it)
    for lid, fn in stack["functions"].items():
        role = roles.get(fn["role"])
        if role is None:
            print(f"permissions: {lid}'s role {fn['role']} is not in the stack document", file=sys.stderr)
            return 2
        by_key.setdefault(role["name"], (fn["role"], []))[1].append(lid)
    # An ECS task calls AWS with its task role (the code) and its execution role (the ECS agent: secrets, logs).
    for lid, task in stack.get("tasks", {}).items():
        for arn, caller in ((task.get("task_role"), lid), (task.get("execution_role"), f"{lid}/execution")):
            role = roles.get(arn)
            if role is None:
                print(f"permissions: {caller}'s role {arn} is not in the stack document", file=sys.stderr)
                return 2
            by_key.setdefault(role["name"], (arn, []))[1].append(caller)

    models = Models()
    findings = []
    lost = 0
    used = {}  # role ARN -> set of (policy, statement index, action pattern)
    calls = {}  # role ARN -> count
    try:
        for rec in records(a.recording):
            if isinstance(rec, str):
                if any(f"Credential={k}/" in rec for k in by_key):
                    lost += 1
                continue
            d = derive(rec, models, account)
            if d is None or d[0] not in by_key:
                continue
            key, checks, op = d
            role_arn, fns = by_key[key]
            function = "/".join(fns)
            calls[role_arn] = calls.get(role_arn, 0) + 1
            path = urlsplit(rec["url"]).path
            if checks is None:
                findings.append({"kind": "underived", "function": function, "action": "?", "resource": "?",
                                 "detail": f"{op}: {rec['method']} {path}"})
                continue
            for action, resource, ctx in checks:
                ctx = dict(ctx, **{"aws:principalarn": role_arn})
                bucket = resource.split(":::", 1)[1].split("/", 1)[0] if resource.startswith("arn:aws:s3:::") \
                    else None
                on_bucket = {f"bucket policy of {bucket}": bucket_policies[bucket]} \
                    if bucket in bucket_policies else {}
                verdict, detail, allowed_by = evaluate(roles[role_arn]["policies"], action, resource, ctx,
                                                       on_bucket, role_arn, account)
                for pname, i, patterns in allowed_by:
                    for p in patterns:
                        used.setdefault(role_arn, set()).add((pname, i, p))
                findings.append({"kind": verdict, "function": function, "action": action, "resource": resource,
                                 "detail": f"{detail} ({rec['method']} {path})"})
    except OSError as e:
        print(f"permissions: cannot read the recording: {e}", file=sys.stderr)
        return 2

    for role_arn, fns in sorted(by_key.values()):
        role = roles[role_arn]
        lid = role["logical_id"]
        if role_arn not in calls:
            findings.append({"kind": "not-run", "function": lid, "action": "-", "resource": "-",
                             "detail": f"no call by {'/'.join(fns)} in the recording: its grants are not listed"})
            continue
        for pname, doc in role["policies"].items():
            if doc is None:
                findings.append({"kind": "unknown-policy", "function": lid, "action": "-", "resource": pname,
                                 "detail": "the stack document has no text for this policy"})
            for i, s in enumerate(statements(doc)):
                if s.get("Effect") != "Allow":
                    continue
                for p in listed(s.get("Action", [])):
                    if (pname, i, p) in used.get(role_arn, set()):
                        continue
                    # A reason for one statement's grant (`<Sid> <action>`), else for the action in any statement.
                    mine = reasons.get(lid, {})
                    reason = mine.get(f"{s.get('Sid', f'#{i}')} {p}") or mine.get(p)
                    findings.append({"kind": "unused", "function": lid, "action": p,
                                     "resource": ",".join(listed(s.get("Resource", s.get("NotResource", "")))),
                                     "detail": f"{s.get('Sid', f'#{i}')}: "
                                               + (f"kept: {reason}" if reason else "no reason given"),
                                     "reason": reason})

    failing = {"not-allowed", "denied", "underived"}
    order = ["not-allowed", "denied", "underived", "maybe-denied", "assumed", "allowed", "unused", "unknown-policy",
             "not-run"]
    seen = {}
    for f in findings:
        k = (f["kind"], f["function"], f["action"], f["resource"])
        if k in seen:
            seen[k]["count"] += 1
            continue
        seen[k] = dict(f, count=1)
    rows = sorted(seen.values(), key=lambda f: (order.index(f["kind"]), f["function"], f["action"], f["resource"]))
    for f in rows:
        if a.quiet and f["kind"] == "allowed":
            continue
        times = f" x{f['count']}" if f["count"] > 1 else ""
        print("\t".join([f["kind"], f["function"], f["action"], f["resource"], f["detail"] + times]))
    bad = [f for f in rows if f["kind"] in failing]
    unreasoned = [f for f in rows if f["kind"] == "unused" and not f.get("reason")]
    print(f"summary\t{sum(calls.values())} calls by {len(calls)} roles; {len(bad)} not allowed; "
          f"{sum(1 for f in rows if f['kind'] == 'assumed')} allowed only through unknown condition keys; "
          f"{sum(1 for f in rows if f['kind'] == 'maybe-denied')} denied if unknown condition keys hold; "
          f"{sum(1 for f in rows if f['kind'] == 'unused')} unused grants, {len(unreasoned)} without a reason; "
          f"condition keys evaluated: {'; '.join(KNOWN_KEYS)}; any other key is unknown")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"findings": rows, "lost_records": lost}, f, indent=1)
    if lost:
        print(f"permissions: {lost} part(s) of the recording cannot be read and hold a function's request",
              file=sys.stderr)
        return 2
    if bad or (a.strict_unused and unreasoned):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Lifeboat's own checkov rules for infra/template.yaml (run by `make test`: checkov --external-checks-dir).

CKV_LIFEBOAT_1  every bucket is encrypted with SSE-KMS, versioned, and blocks public access
CKV_LIFEBOAT_2  every bucket policy refuses requests without TLS
CKV_LIFEBOAT_3  nothing admits the internet: no security group ingress from 0.0.0.0/0 or ::/0, no public database
CKV_LIFEBOAT_4  no IAM policy allows a wildcard action on a data-plane API (s3:*, secretsmanager:Get*, kms:*, ...)
CKV_LIFEBOAT_5  secrets are reached only by name prefix or tag: no secretsmanager action on `*` or `secret:*` without a
                secretsmanager:ResourceTag (or aws:ResourceTag) condition
CKV_LIFEBOAT_6  a Lambda permission for an AWS service carries SourceAccount and SourceArn (confused deputy)
CKV_LIFEBOAT_7  bucket policies keep backups from the functions: deletes, versioning, lifecycle changes are denied,
                and puts must carry If-None-Match (s3:if-none-match), so no writer can replace or destroy an export
CKV_LIFEBOAT_8  lifecycle never expires a noncurrent version sooner than the retention of current ones
CKV_LIFEBOAT_9  buckets can have Object Lock: ObjectLockEnabled is set, or switched by a parameter's condition
"""

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

DATA_PLANE = ("s3", "secretsmanager", "kms", "rds-data", "dynamodb", "sqs", "sns", "ssm", "logs")


def props(conf):
    return conf.get("Properties") or {}


def unwrap(value):
    """Statements inside Fn::If: both branches count (AWS::NoValue is dropped)."""
    if isinstance(value, dict) and "Fn::If" in value:
        out = []
        for branch in value["Fn::If"][1:]:
            out.extend(unwrap(branch))
        return out
    if isinstance(value, dict) and value.get("Ref") == "AWS::NoValue":
        return []
    if isinstance(value, list):
        out = []
        for v in value:
            out.extend(unwrap(v))
        return out
    return [value]


def listed(value):
    return value if isinstance(value, list) else [value]


def text(value):
    """A string, or the template of an Fn::Sub (checkov has already put the parameters' defaults in)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else (sub[0] if sub and isinstance(sub[0], str) else None)
    return None


def number(value):
    try:
        return int(str(value))
    except ValueError:
        return None


def statements(conf):
    """Every statement of an IAM role's, managed policy's or policy's documents (both branches of an Fn::If)."""
    p = props(conf)
    docs = [p.get("PolicyDocument")] if p.get("PolicyDocument") else []
    docs += [(pol or {}).get("PolicyDocument") for pol in unwrap(p.get("Policies") or [])]
    out = []
    for doc in docs:
        out.extend(s for s in unwrap((doc or {}).get("Statement") or []) if isinstance(s, dict))
    return out


def condition_keys(statement):
    """(operator, key, value) of every condition of a statement."""
    out = []
    for operator, block in (statement.get("Condition") or {}).items():
        if isinstance(block, dict):
            out.extend((operator, key, value) for key, value in block.items() if not key.startswith("__"))
    return out


class BucketEncryptedVersionedPrivate(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Lifeboat: buckets are SSE-KMS encrypted, versioned and block public access",
            id="CKV_LIFEBOAT_1",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::S3::Bucket"],
        )

    def scan_resource_conf(self, conf):
        p = props(conf)
        rules = (p.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []
        kms = any(
            ((r or {}).get("ServerSideEncryptionByDefault") or {}).get("SSEAlgorithm") == "aws:kms" for r in rules
        )
        versioned = (p.get("VersioningConfiguration") or {}).get("Status") == "Enabled"
        block = p.get("PublicAccessBlockConfiguration") or {}
        private = all(
            block.get(k) is True
            for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        )
        return CheckResult.PASSED if kms and versioned and private else CheckResult.FAILED


class BucketPolicyRequiresTls(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Lifeboat: bucket policies deny requests without TLS",
            id="CKV_LIFEBOAT_2",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::S3::BucketPolicy"],
        )

    def scan_resource_conf(self, conf):
        doc = props(conf).get("PolicyDocument") or {}
        for s in unwrap(doc.get("Statement") or []):
            if not isinstance(s, dict) or s.get("Effect") != "Deny":
                continue
            actions = listed(s.get("Action") or [])
            condition = (s.get("Condition") or {}).get("Bool") or {}
            if "s3:*" in actions and str(condition.get("aws:SecureTransport")).lower() == "false":
                return CheckResult.PASSED
        return CheckResult.FAILED


class NothingAdmitsTheInternet(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Lifeboat: no ingress from the internet and no public database",
            id="CKV_LIFEBOAT_3",
            categories=[CheckCategories.NETWORKING],
            supported_resources=["AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress", "AWS::RDS::DBInstance"],
        )

    def scan_resource_conf(self, conf):
        p = props(conf)
        if p.get("PubliclyAccessible") in (True, "true", "True"):
            return CheckResult.FAILED
        rules = unwrap(p.get("SecurityGroupIngress") or []) + ([p] if "IpProtocol" in p and "GroupId" in p else [])
        for r in rules:
            if isinstance(r, dict) and (r.get("CidrIp") == "0.0.0.0/0" or r.get("CidrIpv6") == "::/0"):
                return CheckResult.FAILED
        return CheckResult.PASSED


class NoWildcardDataPlaneActions(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Lifeboat: IAM policies allow no wildcard actions on data-plane APIs",
            id="CKV_LIFEBOAT_4",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"],
        )

    def scan_resource_conf(self, conf):
        for s in statements(conf):
            if s.get("Effect") != "Allow":
                continue
            for action in listed(s.get("Action") or []):
                if not isinstance(action, str):
                    continue
                if action == "*":
                    return CheckResult.FAILED
                service, _, name = action.partition(":")
                if service in DATA_PLANE and "*" in name:
                    return CheckResult.FAILED
        return CheckResult.PASSED


# Secrets Manager actions that act on no secret (IAM requires Resource "*" for them).
SECRETLESS = {"secretsmanager:getrandompassword", "secretsmanager:listsecrets", "secretsmanager:batchgetsecretvalue"}


def secret_is_named(resource):
    """A resource that names secrets by a fixed prefix (or a specific secret), not every secret."""
    arn = text(resource)
    if arn is None:
        return True  # Ref / GetAtt of one secret resource
    if arn == "*" or ":secret:" not in arn:
        return False
    name = arn.split(":secret:", 1)[1]
    return bool(name) and name[0] not in "*?"


class SecretsReachedByNameOrTag(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Lifeboat: secrets are reached only by name prefix or Lifeboat tag, never every secret",
            id="CKV_LIFEBOAT_5",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"],
        )

    def scan_resource_conf(self, conf):
        for s in statements(conf):
            if s.get("Effect") != "Allow":
                continue
            actions = [a.lower() for a in listed(s.get("Action") or []) if isinstance(a, str)]
            if not any(a.startswith("secretsmanager:") and a not in SECRETLESS for a in actions):
                continue
            tagged = any(
                key.startswith(("secretsmanager:ResourceTag/", "aws:ResourceTag/")) and not operator.startswith("Null")
                for operator, key, _ in condition_keys(s)
            )
            if not tagged and not all(secret_is_named(r) for r in listed(s.get("Resource") or "*")):
                return CheckResult.FAILED
        return CheckResult.PASSED


class ServiceInvokeNamesItsSource(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Lifeboat: a Lambda permission for an AWS service names SourceAccount and SourceArn",
            id="CKV_LIFEBOAT_6",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::Lambda::Permission"],
        )

    def scan_resource_conf(self, conf):
        p = props(conf)
        principal = p.get("Principal")
        if not (isinstance(principal, str) and principal.endswith(".amazonaws.com")):
            return CheckResult.PASSED
        return CheckResult.PASSED if p.get("SourceAccount") and p.get("SourceArn") else CheckResult.FAILED


# What a role must never do to a backup bucket: each of these destroys backups or what keeps them.
DESTRUCTIVE = {"s3:deleteobject", "s3:deleteobjectversion", "s3:putlifecycleconfiguration", "s3:putbucketversioning"}


class BackupsOutliveTheirWriters(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Lifeboat: bucket policies deny deletes and retention changes, and puts without If-None-Match",
            id="CKV_LIFEBOAT_7",
            categories=[CheckCategories.BACKUP_AND_RECOVERY],
            supported_resources=["AWS::S3::BucketPolicy"],
        )

    def scan_resource_conf(self, conf):
        doc = props(conf).get("PolicyDocument") or {}
        denied = set()
        only_new = False
        for s in unwrap(doc.get("Statement") or []):
            if not isinstance(s, dict) or s.get("Effect") != "Deny":
                continue
            actions = {a.lower() for a in listed(s.get("Action") or []) if isinstance(a, str)}
            denied |= actions
            if "s3:putobject" in actions:
                only_new |= any(
                    operator == "Null" and key == "s3:if-none-match" and str(value).lower() == "true"
                    for operator, key, value in condition_keys(s)
                )
        return CheckResult.PASSED if DESTRUCTIVE <= denied and only_new else CheckResult.FAILED


class NoncurrentVersionsOutliveRetention(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Lifeboat: lifecycle keeps noncurrent versions at least as long as current ones",
            id="CKV_LIFEBOAT_8",
            categories=[CheckCategories.BACKUP_AND_RECOVERY],
            supported_resources=["AWS::S3::Bucket"],
        )

    def scan_resource_conf(self, conf):
        rules = [r for r in unwrap((props(conf).get("LifecycleConfiguration") or {}).get("Rules") or [])
                 if isinstance(r, dict)]
        longest = max((number(r.get("ExpirationInDays")) or 0 for r in rules), default=0)
        for r in rules:
            noncurrent = r.get("NoncurrentVersionExpiration")
            if not isinstance(noncurrent, dict):
                continue
            kept = noncurrent.get("NoncurrentDays")
            expiry = r.get("ExpirationInDays")
            if expiry is not None and kept == expiry:
                continue  # the same value (or the same parameter)
            floor = number(expiry) if expiry is not None else longest
            if number(kept) is None or floor is None or number(kept) < floor:
                return CheckResult.FAILED
        return CheckResult.PASSED


class ObjectLockOneParameterAway(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Lifeboat: buckets can have Object Lock (set, or switched by a parameter)",
            id="CKV_LIFEBOAT_9",
            categories=[CheckCategories.BACKUP_AND_RECOVERY],
            supported_resources=["AWS::S3::Bucket"],
        )

    def scan_resource_conf(self, conf):
        lock = props(conf).get("ObjectLockEnabled")
        return CheckResult.PASSED if any(v in (True, "true", "True") for v in unwrap(lock)) else CheckResult.FAILED


BucketEncryptedVersionedPrivate()
BucketPolicyRequiresTls()
NothingAdmitsTheInternet()
NoWildcardDataPlaneActions()
SecretsReachedByNameOrTag()
ServiceInvokeNamesItsSource()
BackupsOutliveTheirWriters()
NoncurrentVersionsOutliveRetention()
ObjectLockOneParameterAway()

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
CKV_LIFEBOAT_10 a tag write (rds/elasticache:AddTagsToResource, secretsmanager:TagResource, s3:PutObjectTagging, ...)
                names the tag keys it may write (aws:TagKeys; s3:RequestObjectTagKeys for S3 objects) and never
                resource `*`: whoever holds the role cannot re-tag a database out of its backups
CKV_LIFEBOAT_11 the restore-test steps (the function whose environment says LIFEBOAT_RESTORE_ENTRY: steps) are
                invoked only by the state machine that runs them: only the role of a state machine whose definition
                substitutions name the function may hold lambda:InvokeFunction on it, and no Lambda permission opens it
CKV_LIFEBOAT_12 a service principal granted by a bucket or key policy is held to this account: aws:SourceAccount or
                aws:SourceArn (for CloudWatch Logs, the documented equivalent: kms:EncryptionContext:aws:logs:arn)
"""

import os
import re

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.cloudformation.parser import parse as cfn_parse
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


# Actions that write tags onto a resource (lower case). Each must be scoped by tag key and by resource.
TAG_WRITES = {
    "rds:addtagstoresource",
    "elasticache:addtagstoresource",
    "secretsmanager:tagresource",
    "s3:putobjecttagging",
    "s3:putobjectversiontagging",
    "s3:putbuckettagging",
    "ec2:createtags",
    "ecs:tagresource",
    "lambda:tagresource",
    "kms:tagresource",
    "sns:tagresource",
    "sqs:tagqueue",
    "logs:tagresource",
    "iam:tagrole",
}
# The condition keys that name which tag keys a request may carry.
TAG_KEY_CONDITIONS = {"aws:tagkeys", "s3:requestobjecttagkeys"}


def writes_tags(action):
    """A tag write by name, or a wildcard that covers one (`*`, `rds:*`, `rds:AddTags*`)."""
    a = action.lower()
    if not a.endswith("*"):
        return a in TAG_WRITES
    return any(t.startswith(a[:-1]) for t in TAG_WRITES)


class TagWritesNameTheirKeys(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Lifeboat: tag writes are limited by tag key (aws:TagKeys) and never on resource *",
            id="CKV_LIFEBOAT_10",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"],
        )

    def scan_resource_conf(self, conf):
        for s in statements(conf):
            if s.get("Effect") != "Allow":
                continue
            actions = [a for a in listed(s.get("Action") or []) if isinstance(a, str)]
            if not any(writes_tags(a) for a in actions):
                continue
            keyed = any(
                operator.startswith("ForAllValues:") and key.lower() in TAG_KEY_CONDITIONS
                for operator, key, _ in condition_keys(s)
            )
            anywhere = any(text(r) == "*" for r in listed(s.get("Resource") or "*"))
            if not keyed or anywhere:
                return CheckResult.FAILED
        return CheckResult.PASSED


# The restore function's entry point that runs the state machine's steps, by its environment.
STEPS_VARIABLE, STEPS_VALUE = "LIFEBOAT_RESTORE_ENTRY", "steps"
FUNCTIONS = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
STATE_MACHINES = {"AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"}
IAM = {"AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"}
SUB_NAME = re.compile(r"\$\{([A-Za-z0-9]+)[.}]")


def logical_ids(value):
    """Logical ids a value refers to: Ref, Fn::GetAtt, and ${Name} or ${Name.Attr} inside an Fn::Sub."""
    out = set()
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            out.add(value["Ref"])
        att = value.get("Fn::GetAtt")
        if isinstance(att, list) and att and isinstance(att[0], str):
            out.add(att[0])
        elif isinstance(att, str):
            out.add(att.split(".")[0])
        sub = value.get("Fn::Sub")
        body = sub if isinstance(sub, str) else (sub[0] if isinstance(sub, list) and sub else None)
        if isinstance(body, str):
            out.update(SUB_NAME.findall(body))
        for v in value.values():
            out |= logical_ids(v)
    elif isinstance(value, list):
        for v in value:
            out |= logical_ids(v)
    return out


def any_function(resource):
    """A resource text that covers every function (`*`, `...:function:*`)."""
    t = text(resource)
    return t is not None and (t == "*" or t.endswith(":function:*") or t.endswith(":*"))


def invokes(statement, targets):
    """Whether an Allow statement lets its holder invoke one of `targets` (by reference or by wildcard)."""
    if statement.get("Effect") != "Allow":
        return False
    actions = [a.lower() for a in listed(statement.get("Action") or []) if isinstance(a, str)]
    if not any(a in ("*", "lambda:*", "lambda:invokefunction", "lambda:invoke*") for a in actions):
        return False
    resources = listed(statement.get("Resource") or "*")
    return any(any_function(r) or logical_ids(r) & targets for r in resources)


class Template:
    """The whole template a resource belongs to, read once per file: the rule is about how resources relate."""

    cache = {}

    @classmethod
    def of(cls, scanned_file):
        for path in (scanned_file, os.path.join(os.getcwd(), scanned_file.lstrip("/"))):
            if os.path.isfile(path):
                if path not in cls.cache:
                    definitions, _ = cfn_parse(path)
                    cls.cache[path] = cls(definitions or {})
                return cls.cache[path]
        return cls({})

    def __init__(self, definitions):
        self.resources = {k: v for k, v in (definitions.get("Resources") or {}).items() if isinstance(v, dict)}
        self.steps = {
            name
            for name, r in self.resources.items()
            if r.get("Type") in FUNCTIONS
            and ((props(r).get("Environment") or {}).get("Variables") or {}).get(STEPS_VARIABLE) == STEPS_VALUE
        }
        self.machines = {
            name: logical_ids(props(r).get("DefinitionSubstitutions") or {})
            for name, r in self.resources.items()
            if r.get("Type") in STATE_MACHINES
        }

    def runs_steps(self, machine):
        return bool(self.machines.get(machine, set()) & self.steps)

    def machine_roles(self):
        """Roles given to a state machine that runs the steps (`Role: !GetAtt X.Arn`)."""
        out = set()
        for name in self.machines:
            if self.runs_steps(name):
                out |= logical_ids(props(self.resources[name]).get("Role") or props(self.resources[name]).get("RoleArn"))
        return out


def sam_invokes(policies, targets):
    """SAM's policy templates and inline statements of a function's or state machine's `Policies`."""
    for policy in unwrap(policies or []):
        if not isinstance(policy, dict):
            continue
        invoke = policy.get("LambdaInvokePolicy")
        if isinstance(invoke, dict) and (logical_ids(invoke.get("FunctionName")) & targets or invoke.get("FunctionName") == "*"):
            return True
        for st in unwrap(policy.get("Statement") or []):
            if isinstance(st, dict) and invokes(st, targets):
                return True
    return False


class RestoreStepsOnlyByTheStateMachine(BaseResourceCheck):
    """Reads the whole template (a resource check sees one resource; how resources relate is the point here)."""

    def __init__(self):
        super().__init__(
            name="Lifeboat: only the state machine that runs them may invoke the restore-test steps",
            id="CKV_LIFEBOAT_11",
            categories=[CheckCategories.IAM],
            supported_resources=sorted(FUNCTIONS | STATE_MACHINES | IAM | {"AWS::Lambda::Permission"}),
        )
        self.template = Template({})
        self.name_of = ""

    def run(self, scanned_file, entity_configuration, entity_name, entity_type, skip_info):
        self.template = Template.of(scanned_file)
        self.name_of = entity_name
        return super().run(scanned_file, entity_configuration, entity_name, entity_type, skip_info)

    def scan_resource_conf(self, conf):
        t, kind, p = self.template, conf.get("Type"), props(conf)
        if kind in STATE_MACHINES:
            # A state machine whose steps run in a function that is not its own steps entry (the console's, say)
            # lets whoever may invoke that function send it forged steps.
            if not t.runs_steps(self.name_of):
                return CheckResult.FAILED
            return CheckResult.PASSED
        if not t.steps:
            return CheckResult.PASSED
        if kind == "AWS::Lambda::Permission":
            return CheckResult.FAILED if logical_ids(p.get("FunctionName")) & t.steps else CheckResult.PASSED
        if kind in FUNCTIONS:
            if self.name_of in t.steps and (p.get("Events") or p.get("FunctionUrlConfig")):
                return CheckResult.FAILED  # a trigger of its own is an invoker besides the state machine
            return CheckResult.FAILED if sam_invokes(p.get("Policies"), t.steps) else CheckResult.PASSED
        if kind in IAM:
            if kind == "AWS::IAM::Role" and self.name_of in t.machine_roles():
                return CheckResult.PASSED
            if any(invokes(st, t.steps) for st in statements(conf)):
                return CheckResult.FAILED
        return CheckResult.PASSED


def service_principals(statement):
    principal = statement.get("Principal")
    if not isinstance(principal, dict):
        return []
    return [s for s in unwrap(principal.get("Service") or []) if s is not None]


# The condition keys that hold a service principal to this account's resources.
SOURCE_KEYS = {"aws:sourceaccount", "aws:sourcearn", "aws:sourceowner"}
# CloudWatch Logs' documented guard on a key: the encryption context names this account's log groups.
LOGS_CONTEXT = "kms:encryptioncontext:aws:logs:arn"


class ServiceGrantsNameTheirSource(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Lifeboat: service principals in bucket and key policies carry aws:SourceAccount or aws:SourceArn",
            id="CKV_LIFEBOAT_12",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::S3::BucketPolicy", "AWS::KMS::Key"],
        )

    def scan_resource_conf(self, conf):
        p = props(conf)
        doc = p.get("PolicyDocument") or p.get("KeyPolicy") or {}
        for s in unwrap(doc.get("Statement") or []):
            if not isinstance(s, dict) or s.get("Effect") != "Allow" or not service_principals(s):
                continue
            keys = {key.lower() for operator, key, _ in condition_keys(s) if not operator.startswith("Null")}
            if not keys & (SOURCE_KEYS | {LOGS_CONTEXT}):
                return CheckResult.FAILED
        return CheckResult.PASSED


BucketEncryptedVersionedPrivate()
BucketPolicyRequiresTls()
NothingAdmitsTheInternet()
NoWildcardDataPlaneActions()
SecretsReachedByNameOrTag()
ServiceInvokeNamesItsSource()
BackupsOutliveTheirWriters()
NoncurrentVersionsOutliveRetention()
ObjectLockOneParameterAway()
TagWritesNameTheirKeys()
RestoreStepsOnlyByTheStateMachine()
ServiceGrantsNameTheirSource()

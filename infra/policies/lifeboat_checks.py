"""Lifeboat's own checkov rules for infra/template.yaml (run by `make test`: checkov --external-checks-dir).

CKV_LIFEBOAT_1  every bucket is encrypted with SSE-KMS, versioned, and blocks public access
CKV_LIFEBOAT_2  every bucket policy refuses requests without TLS
CKV_LIFEBOAT_3  nothing admits the internet: no security group ingress from 0.0.0.0/0 or ::/0, no public database
CKV_LIFEBOAT_4  no IAM policy allows a wildcard action on a data-plane API (s3:*, secretsmanager:Get*, kms:*, ...)
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
        p = props(conf)
        docs = [p.get("PolicyDocument")] if p.get("PolicyDocument") else []
        docs += [(pol or {}).get("PolicyDocument") for pol in unwrap(p.get("Policies") or [])]
        for doc in docs:
            for s in unwrap((doc or {}).get("Statement") or []):
                if not isinstance(s, dict) or s.get("Effect") != "Allow":
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


BucketEncryptedVersionedPrivate()
BucketPolicyRequiresTls()
NothingAdmitsTheInternet()
NoWildcardDataPlaneActions()

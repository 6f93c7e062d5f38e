"""cloudsplaining over the roles the template deploys: every privilege-escalation and resource-exposure finding is
either gone from the template or justified, one reason each, in infra/cloudsplaining-exclusions.json.

Why the policies come from a deploy and not from the template's text: the template's policies are full of `!Sub`,
`!Ref`, `!GetAtt` and `!If`, and what a role is granted is what CloudFormation makes of them. So this script
deploys the template into a moto server of its own with `tests/stack/deploy.py` (SAM's transform, then moto's
CloudFormation, as in the deployed-stack tests), with every optional feature switched on (`FEATURES`: DR copies and
their key, sharing, object lock, the webhook, e-mail, cache restores, the age identity), so that
every conditional statement is among those scanned; the function code is a placeholder zip, which no policy
depends on. It then hands the roles, as IAM's `get-account-authorization-details` would list them, to
`cloudsplaining scan --flag-all-risky-actions` (every risky action, whatever its resource constraint or condition:
a narrowing is recorded in the reason, where a reviewer reads it, and cannot silently hide a finding).

Exit codes: 0 every finding justified; 1 a finding without a reason, or a reason for a finding that no longer
exists (the file stays true); 2 the scan could not run.

Usage: iam_findings.py --cloudsplaining PATH [--exclusions FILE] [--keep DIR]
Never: changes the template, or passes a finding because its role or policy is not known to it.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

import boto3
from cfnlint.decode import decode_str

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REGION = "us-east-1"
ACCOUNT = "123456789012"
GATED = ("PrivilegeEscalation", "ResourceExposure")
INFORMATIONAL = ("DataExfiltration", "CredentialsExposure", "ServiceWildcard")

# Every optional part of the template on, so its conditional statements are scanned too.
FEATURES = {
    "PlanBucket": "plans",
    "DrRegion": "us-west-2",
    "DrKmsKeyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000",
    "ShareAccounts": "210987654321",
    # The image every image function and ECS task runs (no role depends on which).
    "ImageDigest": "sha256:" + "0" * 64,
    "ReserveConcurrency": "true",
    "ObjectLock": "true",
    "AgeIdentitySecret": "lifeboat/age-identity",
    "CacheRestoreSubnetGroup": "crsg",
    "WebhookSecret": "lifeboat/webhook",
    "NotifyEmail": "ops@example.com",
    "ServerlessCaches": "true",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def placeholder_zips(template_path, out):
    """An empty `bootstrap` for every zip-packaged function and layer: the roles do not depend on the code."""
    with open(template_path) as f:
        template, errors = decode_str(f.read())
    if errors:
        sys.exit(f"iam_findings: {template_path} does not parse: {errors}")
    for lid, res in template["Resources"].items():
        props = res.get("Properties", {})
        zipped = res["Type"] == "AWS::Serverless::Function" and props.get("PackageType") != "Image"
        if zipped or res["Type"] == "AWS::Serverless::LayerVersion":
            with zipfile.ZipFile(os.path.join(out, f"{lid}.zip"), "w") as z:
                z.writestr("bootstrap", "")


def deploy(work):
    """The stack document of the template deployed with `FEATURES` into a moto server started here."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    venv_bin = os.path.dirname(sys.executable)
    log = open(os.path.join(work, "moto.log"), "w")
    moto = subprocess.Popen([os.path.join(venv_bin, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=2)
                break
            except OSError:
                if time.time() > deadline or moto.poll() is not None:
                    sys.exit(f"iam_findings: moto_server did not start (see {log.name})")
                time.sleep(0.2)
        kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="scan", aws_secret_access_key="scan")
        boto3.client("s3", **kw).create_bucket(Bucket=FEATURES["PlanBucket"])
        artefacts = os.path.join(work, "artefacts")
        os.makedirs(artefacts)
        template = os.path.join(ROOT, "infra/template.yaml")
        placeholder_zips(template, artefacts)
        # --network: the VPC, subnets and DB subnet group a user's account has (VpcId, SubnetIds, RestoreSubnetGroup).
        cmd = [sys.executable, os.path.join(ROOT, "tests/stack/deploy.py"), "--endpoint", endpoint, "--region",
               REGION, "--template", template, "--stack", "lb", "--artefacts", artefacts, "--network"]
        for k, v in FEATURES.items():
            cmd += ["--param", f"{k}={v}"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"iam_findings: the deploy failed:\n{out.stderr}")
        stack = json.loads(out.stdout)
        # moto's CloudFormation creates a stack's managed policies but attaches none of them to the roles that name
        # them (`ManagedPolicyArns`), so the stack document's roles lack them: they are read here, scanned as
        # policies of their own and named by their logical id.
        iam = boto3.client("iam", **kw)
        stack["managed_policies"] = {}
        for lid, res in stack["resources"].items():
            if res["type"] == "AWS::IAM::ManagedPolicy":
                pol = iam.get_policy(PolicyArn=res["physical_id"])["Policy"]
                ver = iam.get_policy_version(PolicyArn=res["physical_id"], VersionId=pol["DefaultVersionId"])
                doc = ver["PolicyVersion"]["Document"]
                stack["managed_policies"][lid] = {"arn": res["physical_id"], "name": pol["PolicyName"],
                                                  "document": json.loads(doc) if isinstance(doc, str) else doc}
        return stack
    finally:
        moto.terminate()
        moto.wait()


def authorization_details(stack):
    """The stack's roles as `aws iam get-account-authorization-details` lists them (what cloudsplaining reads)."""
    roles = []
    policies = []
    for arn, role in stack["roles"].items():
        inline, attached = [], []
        for name, doc in role["policies"].items():
            if doc is None:
                sys.exit(f"iam_findings: {role['logical_id']}'s policy {name} has no document in the stack")
            doc = dict(doc)
            # A statement the template left out (`!If` ... `AWS::NoValue`) is a null in moto's document.
            st = doc.get("Statement", [])
            doc["Statement"] = [s for s in (st if isinstance(st, list) else [st]) if s]
            if name.startswith("inline:"):
                inline.append({"PolicyName": name[len("inline:"):], "PolicyDocument": doc})
                continue
            pname = name.rsplit("/", 1)[-1]
            attached.append({"PolicyName": pname, "PolicyArn": name})
            policies.append({"PolicyName": pname, "PolicyId": "ANPA" + pname.upper()[:16], "Arn": name, "Path": "/",
                             "DefaultVersionId": "v1", "AttachmentCount": 1, "IsAttachable": True,
                             "PolicyVersionList": [{"Document": doc, "VersionId": "v1", "IsDefaultVersion": True}]})
        roles.append({
            "Path": "/", "RoleName": role["name"], "RoleId": "AROA" + role["name"][-16:].upper(), "Arn": arn,
            "CreateDate": "2026-01-01T00:00:00Z", "InstanceProfileList": [], "Tags": [],
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
            "RolePolicyList": inline, "AttachedManagedPolicies": attached,
        })
    for lid, pol in stack.get("managed_policies", {}).items():
        if any(p["Arn"] == pol["arn"] for p in policies):
            continue
        doc = dict(pol["document"])
        st = doc.get("Statement", [])
        doc["Statement"] = [s for s in (st if isinstance(st, list) else [st]) if s]
        policies.append({"PolicyName": pol["name"], "PolicyId": "ANPA" + lid.upper()[:16], "Arn": pol["arn"],
                         "Path": "/", "DefaultVersionId": "v1", "AttachmentCount": 0, "IsAttachable": True,
                         "PolicyVersionList": [{"Document": doc, "VersionId": "v1", "IsDefaultVersion": True}]})
    return {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": roles, "Policies": policies}


def actions_of(finding):
    """A finding's actions: a list of action names, or privilege-escalation entries of {type, actions}."""
    if isinstance(finding, dict):
        return [a for a in finding.get("actions", [])], finding.get("type", "")
    return [finding], ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cloudsplaining", required=True, help="the cloudsplaining executable (its own virtualenv)")
    ap.add_argument("--exclusions", default=os.path.join(ROOT, "infra/cloudsplaining-exclusions.json"))
    ap.add_argument("--keep", help="write the stack document, the scan's input and its report here")
    a = ap.parse_args()
    with open(a.exclusions) as f:
        exclusions = {k: v for k, v in json.load(f).items() if not k.startswith("_")}

    with tempfile.TemporaryDirectory() as work:
        out_dir = a.keep or work
        os.makedirs(out_dir, exist_ok=True)
        stack = deploy(work)
        details = os.path.join(out_dir, "authorization-details.json")
        with open(details, "w") as f:
            json.dump(authorization_details(stack), f, indent=1)
        with open(os.path.join(out_dir, "stack.json"), "w") as f:
            json.dump(stack, f, indent=1)
        scan = subprocess.run([a.cloudsplaining, "scan", "--input-file", details, "--output", out_dir,
                               "--skip-open-report", "--flag-all-risky-actions"], capture_output=True, text=True)
        results = os.path.join(out_dir, "iam-results-authorization-details.json")
        if scan.returncode != 0 or not os.path.exists(results):
            print(f"iam_findings: cloudsplaining failed:\n{scan.stdout}{scan.stderr}", file=sys.stderr)
            return 2
        with open(results) as f:
            report = json.load(f)

    # Which role holds each scanned policy: inline policies by (role name, policy name), managed ones by ARN.
    role_of_name = {r["name"]: r["logical_id"] for r in stack["roles"].values()}
    holders = {}
    for section in ("inline_policies", "customer_managed_policies", "aws_managed_policies"):
        for pid, pol in report.get(section, {}).items():
            holders[pid] = (section, pol)
    owners = {}
    for role in report.get("roles", {}).values():
        lid = role_of_name.get(role["name"])
        for pid in list(role.get("inline_policies", {})) + list(role.get("customer_managed_policies", {})) + \
                list(role.get("aws_managed_policies", {})):
            owners.setdefault(pid, []).append(lid)

    # A stack's managed policy no role lists (see `deploy`) is named by its own logical id.
    for lid, pol in stack.get("managed_policies", {}).items():
        for pid, (_, scanned) in holders.items():
            if scanned.get("PolicyName") == pol["name"] and pid not in owners:
                owners[pid] = [lid]
    failures = 0
    justified = set()
    for pid, (section, pol) in sorted(holders.items(), key=lambda x: x[1][1]["PolicyName"]):
        for lid in owners.get(pid, ["(no role)"]):
            for kind in GATED + INFORMATIONAL:
                for finding in pol.get(kind, {}).get("findings", []):
                    actions, sub = actions_of(finding)
                    for action in actions:
                        label = f"{kind}{'/' + sub if sub else ''}"
                        if kind not in GATED:
                            print(f"info\t{lid}\t{action}\t{label}\t{pol['PolicyName']}")
                            continue
                        reason = exclusions.get(lid, {}).get(action)
                        if reason:
                            justified.add((lid, action))
                            print(f"justified\t{lid}\t{action}\t{label}\t{reason}")
                        else:
                            failures += 1
                            print(f"UNJUSTIFIED\t{lid}\t{action}\t{label}\tresolve it in infra/template.yaml or "
                                  f"give a reason in {os.path.relpath(a.exclusions, ROOT)}")
    for lid, actions in exclusions.items():
        for action in actions:
            if (lid, action) not in justified:
                failures += 1
                print(f"STALE\t{lid}\t{action}\t-\tcloudsplaining no longer finds it: remove its reason")
    print(f"summary\t{len(stack['roles'])} roles and {len(stack.get('managed_policies', {}))} managed policies "
          f"scanned with every optional feature on; {len(justified)} "
          f"findings justified; {failures} unjustified or stale")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Deploys infra/template.yaml into moto's CloudFormation the way `sam deploy` deploys it to AWS, and prints what
the deployed stack says (functions with their environment and role, the ECS task definitions, schedules, rules,
the state machine, roles' policies) as one JSON document on standard output.

Steps, each as AWS or SAM takes it:
1. SAM's transform (aws-sam-translator, the library `sam deploy` runs server-side as AWS::Serverless-2016-10-31),
   after filling every artefact location as `sam package` would (each function's code zip or image, the layer's
   zip, the state machine's definition): the zips are the ones given with --artefacts, uploaded to a bucket.
2. The transformed template is created as a stack in moto's CloudFormation, with the parameters given.
3. Resource types moto's CloudFormation does not implement are *applied by this script* from their own resolved
   properties through the services' APIs (schedules, bucket and topic policies, alarms, subscriptions, egress
   rules), never skipped: `APPLIED` names each, and a type that is neither implemented nor applied fails the deploy.
   Their properties are resolved by moto itself: every intrinsic function in them becomes an Output of the stack,
   which moto evaluates like any other, and the script puts the values back where they were.
4. The ECS task definitions are read back with ECS's DescribeTaskDefinition (each container's entry point, else the
   image's Dockerfile ENTRYPOINT; its environment, secrets and log configuration); their task and execution roles,
   which moto's CloudFormation drops when it registers them, come from the template's own resolved properties.

Never: invents a value the template does not give (a schedule's input, a role, an environment variable), or
deploys anything but the template it is given.

Usage: deploy.py --endpoint URL --region R --template FILE --stack NAME --artefacts DIR [--param K=V ...]
`--artefacts DIR` holds `<logical id>.zip` for each zip-packaged function and layer (what `make package` makes).
"""

import argparse
import ast
import copy
import importlib
import json
import os
import sys
import time
import zipfile

import boto3
from cfnlint.decode import decode_str
from samtranslator.translator.transform import transform

ACCOUNT = "123456789012"

# Bucket name -> its resolved policy document (see APPLIED).
BUCKET_POLICIES = {}

# What this script applies itself, by type: moto's CloudFormation has no model for these (5.2.x).
APPLIED = {
    "AWS::Scheduler::Schedule": "EventBridge Scheduler schedules: created with the Scheduler API",
    # moto evaluates a bucket policy without the request's context (no aws:PrincipalArn, no aws:SecureTransport),
    # so the template's Deny statements conditioned on them would deny every caller, the functions included. The
    # policy is therefore not put on the bucket: it is kept, resolved, in the document (`bucket_policies`), where
    # the permission check evaluates it for each request with the caller's role as the principal.
    "AWS::S3::BucketPolicy": "the export bucket's policy: resolved and kept for the permission check (not put: "
                             "moto would evaluate it without the request's context)",
    "AWS::CloudWatch::Alarm": "the stack's alarms: put with CloudWatch's PutMetricAlarm",
    "AWS::CloudWatch::Dashboard": "the dashboard: put with CloudWatch's PutDashboard",
    "AWS::SQS::QueuePolicy": "queue policies: set as the queue's Policy attribute",
    "AWS::SNS::TopicPolicy": "topic policies: set as the topic's Policy attribute",
    "AWS::SNS::Subscription": "the alert e-mail subscription: made with SNS's Subscribe",
    "AWS::EC2::SecurityGroupEgress": "egress rules: authorised with EC2's AuthorizeSecurityGroupEgress",
    "AWS::SecretsManager::Secret": "the masking key: created with CreateSecret, its value from GetRandomPassword with "
                                   "the template's GenerateSecretString",
}


class ManagedPolicies:
    """The AWS managed policies the transform may name (SAM looks their ARNs up in IAM; these are the real ARNs)."""

    def load(self):
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "AWSLambdaVPCAccessExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
            "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
            "AWSXRayDaemonWriteAccess": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess",
        }


def moto_types():
    """The resource types moto's CloudFormation implements."""
    from moto.backend_index import backend_url_patterns
    from moto.cloudformation.parsing import get_model_map

    for name in sorted({n for n, _ in backend_url_patterns}):
        try:
            importlib.import_module(f"moto.{name}.models")
        except ImportError:
            pass
    return set(get_model_map())


# The one image `make package` lays out for the image functions and the ECS tasks.
IMAGE_DOCKERFILE = "pg-tools.Dockerfile"


def image_entrypoint(template_dir):
    """The image's ENTRYPOINT, from its Dockerfile."""
    with open(os.path.join(template_dir, IMAGE_DOCKERFILE)) as f:
        line = next(x for x in f if x.startswith("ENTRYPOINT"))
    return json.loads(line[len("ENTRYPOINT"):])


def binary_of(resource, template_dir):
    """The binary a function runs: the one its code zip is named after (`make package` zips each function's binary
    as `<binary>.zip`), or for an image its ImageConfig's entry point, else the image's ENTRYPOINT."""
    props = resource.get("Properties", {})
    if props.get("PackageType") != "Image":
        return os.path.basename(props["CodeUri"]).removesuffix(".zip")
    entry = props.get("ImageConfig", {}).get("EntryPoint")
    if not entry:
        entry = image_entrypoint(template_dir)
    return os.path.basename(entry[0])


# The task definition's own properties moto's CloudFormation drops (see main), kept from the template.
TASK_PROPERTIES = ("TaskRoleArn", "ExecutionRoleArn")


def container(c, template_dir):
    """One container of a task definition as ECS starts it, from DescribeTaskDefinition: the entry point (its own,
    else the image's Dockerfile ENTRYPOINT, as for image functions) and the binary it names, the command, the
    environment, the secrets (each a variable and the secret it is read from, by the execution role) and the log
    configuration."""
    entry = c.get("entryPoint")
    if not entry:
        entry = image_entrypoint(template_dir)
    return {
        "name": c["name"],
        "entry_point": entry,
        "binary": os.path.basename(entry[0]),
        "command": c.get("command", []),
        "environment": {e["name"]: e["value"] for e in c.get("environment", [])},
        "secrets": {s["name"]: s["valueFrom"] for s in c.get("secrets", [])},
        "log_configuration": c.get("logConfiguration"),
    }


def zip_binaries(template, binaries, out):
    """What `make package` makes, from binaries already built: each zip function's binary as `bootstrap`, each
    layer's directory."""
    template_dir = os.path.dirname(TEMPLATE_PATH)
    for lid, res in template["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function" and props.get("PackageType") != "Image":
            with zipfile.ZipFile(os.path.join(out, f"{lid}.zip"), "w") as z:
                z.write(os.path.join(binaries, binary_of(res, template_dir)), "bootstrap")
        elif res["Type"] == "AWS::Serverless::LayerVersion":
            root = os.path.join(template_dir, props["ContentUri"])
            with zipfile.ZipFile(os.path.join(out, f"{lid}.zip"), "w") as z:
                for d, _, files in os.walk(root):
                    for name in files:
                        z.write(os.path.join(d, name), os.path.relpath(os.path.join(d, name), root))


def package(template, bucket, artefacts):
    """Fills artefact locations as `sam package` does: each zip to an S3 key named by its logical id."""
    uploads = []
    for lid, res in template["Resources"].items():
        props = res.setdefault("Properties", {})
        kind = res["Type"]
        if kind == "AWS::Serverless::Function":
            # An image function names its image by repository and digest already (the stack's parameters).
            if props.get("PackageType") != "Image":
                props["CodeUri"] = f"s3://{bucket}/{lid}.zip"
                uploads.append(lid)
        elif kind == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://{bucket}/{lid}.zip"
            uploads.append(lid)
        elif kind == "AWS::Serverless::StateMachine" and "DefinitionUri" in props:
            path = os.path.join(os.path.dirname(TEMPLATE_PATH), props.pop("DefinitionUri"))
            with open(path) as f:
                props["Definition"] = json.load(f)
    for lid in uploads:
        path = os.path.join(artefacts, f"{lid}.zip")
        if not os.path.exists(path):
            sys.exit(f"deploy: {path} is missing: the template's {lid} needs its zip (make package builds it)")
    return uploads


def is_intrinsic(node):
    return isinstance(node, dict) and len(node) == 1 and next(iter(node)) in (
        "Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Join", "Fn::If", "Fn::Select", "Fn::Split", "Fn::ImportValue",
        "Fn::FindInMap", "Fn::Base64", "Fn::GetAZs")


def lift(node, outputs, prefix, condition):
    """Replaces each intrinsic in `node` by a placeholder and adds an Output that evaluates it."""
    if is_intrinsic(node):
        key = f"LbResolve{prefix}{len(outputs)}"
        out = {"Value": node}
        if condition:
            out["Condition"] = condition
        outputs[key] = out
        return {"__resolve__": key}
    if isinstance(node, dict):
        return {k: lift(v, outputs, prefix, condition) for k, v in node.items()}
    if isinstance(node, list):
        return [lift(v, outputs, prefix, condition) for v in node]
    return node


NO_VALUE = object()


def put_back(node, values):
    """The inverse of `lift`, with moto's values. An Output that evaluated to AWS::NoValue is absent from the
    stack's outputs; the property it stood for is dropped, as CloudFormation drops it."""
    if isinstance(node, dict) and set(node) == {"__resolve__"}:
        return values.get(node["__resolve__"], NO_VALUE)
    if isinstance(node, dict):
        out = {k: put_back(v, values) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}
    if isinstance(node, list):
        return [v for v in (put_back(v, values) for v in node) if v is not NO_VALUE]
    return node


def apply(kind, props, clients):
    """Creates one resource moto's CloudFormation lacks, from its resolved properties."""
    if kind == "AWS::Scheduler::Schedule":
        target = props["Target"]
        args = {k: v for k, v in target.items() if k in ("Arn", "RoleArn", "Input")}
        if "RetryPolicy" in target:
            args["RetryPolicy"] = {k: int(v) for k, v in target["RetryPolicy"].items()}
        clients("scheduler").create_schedule(
            Name=props["Name"],
            ScheduleExpression=props["ScheduleExpression"],
            ScheduleExpressionTimezone=props.get("ScheduleExpressionTimezone", "UTC"),
            FlexibleTimeWindow=props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
            State=props.get("State", "ENABLED"),
            Description=props.get("Description", ""),
            Target=args,
        )
    elif kind == "AWS::S3::BucketPolicy":
        BUCKET_POLICIES[props["Bucket"]] = props["PolicyDocument"]
    elif kind == "AWS::CloudWatch::Alarm":
        args = dict(props)
        for k in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if k in args:
                args[k] = int(args[k])
        if "Threshold" in args:
            args["Threshold"] = float(args["Threshold"])
        clients("cloudwatch").put_metric_alarm(**args)
    elif kind == "AWS::CloudWatch::Dashboard":
        clients("cloudwatch").put_dashboard(DashboardName=props["DashboardName"], DashboardBody=props["DashboardBody"])
    elif kind == "AWS::SQS::QueuePolicy":
        for url in props["Queues"]:
            clients("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
    elif kind == "AWS::SNS::TopicPolicy":
        for arn in props["Topics"]:
            clients("sns").set_topic_attributes(
                TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"]))
    elif kind == "AWS::SNS::Subscription":
        clients("sns").subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"])
    elif kind == "AWS::EC2::SecurityGroupEgress":
        perm = {"IpProtocol": str(props["IpProtocol"])}
        for k in ("FromPort", "ToPort"):
            if k in props:
                perm[k] = int(props[k])
        if "DestinationSecurityGroupId" in props:
            perm["UserIdGroupPairs"] = [{"GroupId": props["DestinationSecurityGroupId"]}]
        if "CidrIp" in props:
            perm["IpRanges"] = [{"CidrIp": props["CidrIp"]}]
        if "DestinationPrefixListId" in props:
            perm["PrefixListIds"] = [{"PrefixListId": props["DestinationPrefixListId"]}]
        clients("ec2").authorize_security_group_egress(GroupId=props["GroupId"], IpPermissions=[perm])
    elif kind == "AWS::SecretsManager::Secret":
        gen = props["GenerateSecretString"]
        value = clients("secretsmanager").get_random_password(
            PasswordLength=int(gen["PasswordLength"]),
            ExcludePunctuation=str(gen.get("ExcludePunctuation", "false")).lower() == "true",
        )["RandomPassword"]
        args = {k: props[k] for k in ("Name", "Description", "KmsKeyId") if k in props}
        clients("secretsmanager").create_secret(SecretString=value, **args)
    else:
        raise AssertionError(kind)


def document(doc):
    """A policy document as IAM returns it: JSON (URL-decoded by boto3). moto keeps the inline policies that its
    CloudFormation created as Python's text of the dict it was given, which JSON cannot read."""
    if not isinstance(doc, str):
        return doc
    try:
        return json.loads(doc)
    except json.JSONDecodeError:
        return ast.literal_eval(doc)


def role_policies(iam, role_name):
    """A role's policy documents: inline ones by name, attached managed ones by ARN."""
    docs = {}
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        docs[f"inline:{name}"] = document(doc)
    for att in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        arn = att["PolicyArn"]
        try:
            pol = iam.get_policy(PolicyArn=arn)["Policy"]
            ver = iam.get_policy_version(PolicyArn=arn, VersionId=pol["DefaultVersionId"])["PolicyVersion"]
            doc = ver["Document"]
            docs[arn] = document(doc)
        except iam.exceptions.NoSuchEntityException:
            docs[arn] = None
    return docs


def main():
    global TEMPLATE_PATH
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", required=True)
    ap.add_argument("--template", required=True)
    ap.add_argument("--stack", required=True)
    ap.add_argument("--artefacts", required=True)
    ap.add_argument("--binaries", help="make the artefacts in --artefacts from the binaries built in this directory")
    ap.add_argument("--param", action="append", default=[])
    ap.add_argument("--transformed", help="also write the transformed template here")
    ap.add_argument("--network", action="store_true",
                    help="first make what a user's account has before the deploy: a VPC with two subnets and a DB "
                         "subnet group for restore tests, given as VpcId, SubnetIds and RestoreSubnetGroup")
    a = ap.parse_args()
    TEMPLATE_PATH = a.template
    params = dict(p.split("=", 1) for p in a.param)

    kw = dict(endpoint_url=a.endpoint, region_name=a.region, aws_access_key_id="deployer",
              aws_secret_access_key="deployer")
    cache = {}

    def clients(service):
        if service not in cache:
            cache[service] = boto3.client(service, **kw)
        return cache[service]

    if a.network:
        ec2 = clients("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
        clients("rds").create_db_subnet_group(DBSubnetGroupName=f"{a.stack}-restore",
                                              DBSubnetGroupDescription="restore tests", SubnetIds=subnets)
        params.update(VpcId=vpc, SubnetIds=",".join(subnets), RestoreSubnetGroup=f"{a.stack}-restore")

    with open(a.template) as f:
        template, errors = decode_str(f.read())
    if errors:
        sys.exit(f"deploy: {a.template} does not parse: {errors}")
    template = dict(template)

    # What each function runs, read before package() points the code at its upload.
    binaries = {lid: binary_of(res, os.path.dirname(a.template)) for lid, res in template["Resources"].items()
                if res["Type"] == "AWS::Serverless::Function"}
    if a.binaries:
        zip_binaries(template, a.binaries, a.artefacts)
    bucket = f"{a.stack}-artefacts"
    clients("s3").create_bucket(Bucket=bucket)
    for lid in package(template, bucket, a.artefacts):
        clients("s3").upload_file(os.path.join(a.artefacts, f"{lid}.zip"), bucket, f"{lid}.zip")

    os.environ.setdefault("AWS_DEFAULT_REGION", a.region)
    transformed = transform(json.loads(json.dumps(template)), params, ManagedPolicies())

    implemented = moto_types()
    outputs = transformed.setdefault("Outputs", {})
    lifted = {}
    unknown = []
    substitutions = {}
    substitutions_logging = {}
    managed = {}
    task_props = {}
    for lid, res in transformed["Resources"].items():
        kind = res["Type"]
        if kind == "AWS::StepFunctions::StateMachine" and "DefinitionSubstitutions" in res["Properties"]:
            # moto stores the definition with its ${...} placeholders; CloudFormation substitutes them.
            substitutions[lid] = lift(copy.deepcopy(res["Properties"]["DefinitionSubstitutions"]), outputs,
                                      f"{lid}Substitution", res.get("Condition"))
        if kind == "AWS::Lambda::Function" and "LoggingConfig" in res["Properties"]:
            # Lambda sets AWS_LAMBDA_LOG_FORMAT and AWS_LAMBDA_LOG_LEVEL from it; moto does not keep it.
            substitutions_logging[lid] = lift(copy.deepcopy(res["Properties"]["LoggingConfig"]), outputs,
                                              f"{lid}Logging", res.get("Condition"))
        if kind == "AWS::ECS::TaskDefinition":
            # moto's CloudFormation registers a task definition with its containers only: the task role, the
            # execution role and the rest of the task's own properties are dropped (5.2.x), so they are read from
            # the template's properties, resolved by moto like any other.
            task_props[lid] = lift({k: v for k, v in res["Properties"].items() if k in TASK_PROPERTIES}, outputs,
                                   f"{lid}Task", res.get("Condition"))
        if kind == "AWS::IAM::Role" and res["Properties"].get("ManagedPolicyArns"):
            # moto's CloudFormation creates the role without attaching the policies it names.
            managed[lid] = lift(copy.deepcopy(res["Properties"]["ManagedPolicyArns"]), outputs, f"{lid}Managed",
                                res.get("Condition"))
        if kind in implemented:
            continue
        if kind not in APPLIED:
            unknown.append(f"{lid} ({kind})")
            continue
        condition = res.get("Condition")
        if condition:
            # Present among the outputs exactly when the resource's condition holds.
            outputs[f"LbCondition{lid}"] = {"Value": "true", "Condition": condition}
        props = lift(copy.deepcopy(res.get("Properties", {})), outputs, lid, condition)
        lifted[lid] = (kind, props, condition)
    if unknown:
        sys.exit("deploy: moto's CloudFormation implements neither these resources nor does this script apply them: "
                 + ", ".join(unknown))
    if a.transformed:
        with open(a.transformed, "w") as f:
            json.dump(transformed, f, indent=1)

    cfn = clients("cloudformation")
    cfn.create_stack(
        StackName=a.stack,
        TemplateBody=json.dumps(transformed),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.time() + 300
    while True:
        stack = cfn.describe_stacks(StackName=a.stack)["Stacks"][0]
        if stack["StackStatus"] == "CREATE_COMPLETE":
            break
        if not stack["StackStatus"].endswith("IN_PROGRESS") or time.time() > deadline:
            events = cfn.describe_stack_events(StackName=a.stack)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events
                       if "FAILED" in e["ResourceStatus"]]
            sys.exit(f"deploy: stack {a.stack} is {stack['StackStatus']}: {reasons}")
        time.sleep(0.5)

    values = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    applied = []
    for lid, (kind, props, condition) in lifted.items():
        if condition and f"LbCondition{lid}" not in values:
            continue  # its condition is false: CloudFormation would not create it either
        apply(kind, put_back(props, values), clients)
        applied.append({"logical_id": lid, "type": kind, "how": APPLIED[kind]})

    summaries = [r for page in cfn.get_paginator("list_stack_resources").paginate(StackName=a.stack)
                 for r in page["StackResourceSummaries"]]
    physical = {r.get("LogicalResourceId"): r.get("PhysicalResourceId") for r in summaries}
    sfn = clients("stepfunctions")
    for lid, subs in substitutions.items():
        arn = physical[lid]
        definition = sfn.describe_state_machine(stateMachineArn=arn)["definition"]
        for key, value in put_back(subs, values).items():
            definition = definition.replace("${" + key + "}", value)
        sfn.update_state_machine(stateMachineArn=arn, definition=definition)
        applied.append({"logical_id": lid, "type": "DefinitionSubstitutions",
                        "how": "substituted into the definition as CloudFormation does (moto keeps the placeholders)"})

    iam = clients("iam")
    for lid, arns in managed.items():
        role = physical[lid]
        attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}
        missing = []
        for arn in put_back(arns, values):
            if arn in attached:
                continue
            try:
                iam.attach_role_policy(RoleName=role, PolicyArn=arn)
            except iam.exceptions.NoSuchEntityException:
                missing.append(arn)  # an AWS managed policy moto does not carry
        applied.append({"logical_id": lid, "type": "ManagedPolicyArns", "not_in_moto": missing,
                        "how": "attached to the role: moto's CloudFormation creates roles without them"})

    resources = {}
    for r in summaries:
        lid = r.get("LogicalResourceId")
        if lid not in transformed["Resources"]:
            continue  # moto lists the resources it has no model for without a logical id
        resources[lid] = {"type": transformed["Resources"][lid]["Type"], "physical_id": r.get("PhysicalResourceId")}

    lam = clients("lambda")
    functions = {}
    roles = {}
    for lid, r in resources.items():
        if r["type"] != "AWS::Lambda::Function":
            continue
        conf = lam.get_function_configuration(FunctionName=r["physical_id"])
        functions[lid] = {
            "name": conf["FunctionName"],
            "arn": conf["FunctionArn"],
            "role": conf["Role"],
            "environment": conf.get("Environment", {}).get("Variables", {}),
            "timeout": conf.get("Timeout"),
            "memory": conf.get("MemorySize"),
            "package_type": conf.get("PackageType", "Zip"),
            "binary": binaries.get(lid),
            "logging": put_back(substitutions_logging.get(lid, {}), values),
        }
    for lid, r in resources.items():
        if r["type"] == "AWS::IAM::Role":
            role = iam.get_role(RoleName=r["physical_id"])["Role"]
            roles[role["Arn"]] = {"logical_id": lid, "name": role["RoleName"],
                                  "policies": role_policies(iam, role["RoleName"])}

    tasks = {}
    ecs = clients("ecs")
    for lid, r in resources.items():
        if r["type"] != "AWS::ECS::TaskDefinition":
            continue
        described = ecs.describe_task_definition(taskDefinition=r["physical_id"])["taskDefinition"]
        props = put_back(task_props.get(lid, {}), values)
        tasks[lid] = {
            "arn": described["taskDefinitionArn"],
            "family": described["family"],
            "task_role": props.get("TaskRoleArn"),
            "execution_role": props.get("ExecutionRoleArn"),
            "containers": [container(c, os.path.dirname(a.template)) for c in described["containerDefinitions"]],
        }

    schedules = []
    sch = clients("scheduler")
    for s in sch.list_schedules()["Schedules"]:
        full = sch.get_schedule(Name=s["Name"], GroupName=s.get("GroupName", "default"))
        schedules.append({"name": full["Name"], "expression": full["ScheduleExpression"],
                          "timezone": full.get("ScheduleExpressionTimezone"), "target": full["Target"]})

    rules = []
    ev = clients("events")
    for rule in ev.list_rules()["Rules"]:
        targets = ev.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        rules.append({"name": rule["Name"], "pattern": rule.get("EventPattern"),
                      "schedule": rule.get("ScheduleExpression"), "targets": targets})

    machines = []
    for m in sfn.list_state_machines()["stateMachines"]:
        d = sfn.describe_state_machine(stateMachineArn=m["stateMachineArn"])
        machines.append({"name": d["name"], "arn": d["stateMachineArn"], "role": d["roleArn"],
                         "definition": json.loads(d["definition"])})

    json.dump({
        "stack": a.stack,
        "region": a.region,
        "account": ACCOUNT,
        "parameters": params,
        "resources": resources,
        "applied": applied,
        "functions": functions,
        "tasks": tasks,
        "roles": roles,
        "schedules": schedules,
        "rules": rules,
        "state_machines": machines,
        "bucket_policies": BUCKET_POLICIES,
    }, sys.stdout, indent=1, default=str)


if __name__ == "__main__":
    main()

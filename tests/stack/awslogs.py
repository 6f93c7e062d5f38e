"""Ships a task's output to its log group as ECS's awslogs log driver does: one stream per container of a run,
`<awslogs-stream-prefix>/<container>/<task id>`, created and written with the task's execution role (the caller
passes that role's name as the access key, so the permission check attributes both calls to it).

Never: writes anywhere but the group and stream it is given.

Usage: awslogs.py --endpoint URL --region R --access-key KEY --group G --stream S --file OUTPUT
"""

import argparse
import time

import boto3


def main():
    ap = argparse.ArgumentParser()
    for name in ("--endpoint", "--region", "--access-key", "--group", "--stream", "--file"):
        ap.add_argument(name, required=True)
    a = ap.parse_args()
    logs = boto3.client("logs", endpoint_url=a.endpoint, region_name=a.region, aws_access_key_id=a.access_key,
                        aws_secret_access_key="local")
    logs.create_log_stream(logGroupName=a.group, logStreamName=a.stream)
    with open(a.file, encoding="utf-8", errors="replace") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    now = int(time.time() * 1000)
    # PutLogEvents takes at most 10,000 events a call.
    for i in range(0, len(lines), 10_000):
        events = [{"timestamp": now, "message": m} for m in lines[i:i + 10_000]]
        logs.put_log_events(logGroupName=a.group, logStreamName=a.stream, logEvents=events)


if __name__ == "__main__":
    main()

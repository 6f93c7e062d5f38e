"""A fault-injecting reverse proxy between the AWS SDK and moto's server: every request is forwarded unchanged
(method, path, headers, body), except where a rule draws a fault for it. Started by `tests/src/faults.rs`; the
Python standard library only, so that it runs from the project's `.venv` beside moto.

Which call a request is (the rules' `service` and `operation`):
- the service is the SigV4 credential scope's, `Credential=<key>/<date>/<region>/<service>/aws4_request` in the
  `Authorization` header (every SDK request is signed; the scope names the signing service: `s3`, `rds`,
  `secretsmanager`, `monitoring` for CloudWatch, `elasticache`, `states` for Step Functions);
- the operation is, in this order: the JSON protocols' `X-Amz-Target` (`secretsmanager.GetSecretValue` ->
  `GetSecretValue`); the query protocol's `Action` parameter (form body or query string; RDS, ElastiCache,
  CloudWatch); for S3 the SDK's own `x-id` query parameter where it sends one (GetObject, PutObject, UploadPart,
  ...), else the method and the URL's shape (`S3_SHAPES`); else the method and path (`GET /`), which a rule can
  still name.
Why from the request and not a table of URLs: the SDK tells, in its signature and headers, which call it makes.

Rules (a JSON list in the rules file): `{"service": "s3", "operation": "UploadPart", "kind": "throttle", "rate":
0.3, "delay_ms": 2000}`; `service` and `operation` may be `*`. Kinds:
- `throttle`: the service's own throttling error, so the SDK classifies it as throttling: `ThrottlingException`
  (JSON protocols, 400), `Throttling` (query XML, 400), `SlowDown` (S3, 503);
- `error500`, `error503`: a server error in the service's shape (`InternalFailure` / `ServiceUnavailable`; S3's
  `InternalError` / `ServiceUnavailable`);
- `reset`: the connection is reset (closed with RST, no answer) before the request reaches moto;
- `lost`: the request reaches moto and takes effect, then the connection is reset: the answer is lost;
- `slow`: the answer is held back `delay_ms` (default 1000) before the request is forwarded.

Decisions are replayable: each (service, operation) has its own PRNG seeded from (seed, service, operation), and
its n-th request draws the n-th number. One number a request: it falls into the first matching rule whose
cumulative rate exceeds it (rates of rules that match one request should sum to at most 1). Why a PRNG per call:
requests of different calls that run concurrently interleave differently from run to run; the order of one call's
requests is what a seed can replay.

Every injected fault is appended to the log file, one JSON object a line: `{"service", "operation", "n", "kind"}`
(`n`: the request's index among its call's requests, from 0). Bodies are forwarded byte for byte: a request's
is read whole first (its `Action` may be in it; S3 parts of a few MiB fit in memory), a response's is streamed
when moto gives its length.

Every request, faulted or not, is appended to the requests file in the same shape (`kind` null when it passed):
what a test reads to know which calls a function made, and how many.

The rules file is read again whenever it changes (its modification time and size), so a run can change its
faults between steps without restarting the proxy, whose port the functions were given once. The PRNGs and
counts carry on across such a change: a seed replays a whole run, rule changes included.

Usage: python faults.py UPSTREAM_PORT LISTEN_PORT SEED RULES_FILE LOG_FILE REQUESTS_FILE
"""

import http.client
import http.server
import json
import os
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse

# Headers of one connection, not of the request: never forwarded (the body is re-sent with its length).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
}

# S3 operations by method and the URL's shape where the SDK sends no `x-id`: (method, key?, subresource) -> name.
S3_SHAPES = {
    ("POST", True, "uploads"): "CreateMultipartUpload",
    ("POST", True, "uploadId"): "CompleteMultipartUpload",
    ("DELETE", True, "uploadId"): "AbortMultipartUpload",
    ("HEAD", True, None): "HeadObject",
    ("PUT", True, "tagging"): "PutObjectTagging",
    ("GET", True, "tagging"): "GetObjectTagging",
    ("PUT", True, None): "PutObject",
    ("GET", True, None): "GetObject",
    ("DELETE", True, None): "DeleteObject",
    ("POST", False, "delete"): "DeleteObjects",
    ("GET", False, "versions"): "ListObjectVersions",
    ("GET", False, "list-type"): "ListObjectsV2",
    ("GET", False, "uploads"): "ListMultipartUploads",
    ("GET", False, "versioning"): "GetBucketVersioning",
    ("PUT", False, "versioning"): "PutBucketVersioning",
    ("GET", False, "location"): "GetBucketLocation",
    ("HEAD", False, None): "HeadBucket",
    ("PUT", False, None): "CreateBucket",
    ("DELETE", False, None): "DeleteBucket",
    ("GET", False, None): "ListObjects",
}
# The subresources looked for, `uploadId` first: a part's URL carries `partNumber` too.
S3_SHAPES_SUBS = sorted({sub for (_, _, sub) in S3_SHAPES if sub}, key=lambda s: s != "uploadId")


def service_of(headers):
    auth = headers.get("Authorization", "")
    scope = auth.partition("Credential=")[2].partition(",")[0].split("/")
    return scope[3] if len(scope) >= 5 else "unknown"


def operation_of(service, target, query, body, content_type):
    if target:
        return target.rpartition(".")[2]
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    if content_type.startswith("application/x-www-form-urlencoded"):
        params.update(urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
    if "Action" in params:
        return params["Action"][0]
    if service == "s3" and "x-id" in params:
        return params["x-id"][0]
    return None


def s3_operation(method, path, query):
    has_key = "/" in path.strip("/")
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    for sub in [s for s in S3_SHAPES_SUBS if s in params] + [None]:
        name = S3_SHAPES.get((method, has_key, sub))
        if name:
            return name
    return None



KINDS = {"throttle", "error500", "error503", "reset", "lost", "slow"}


class Faults:
    """The rules, one PRNG per call, and the log: shared by every connection's thread."""

    def __init__(self, seed, rules_path, log_path, requests_path):
        self.seed = seed
        self.rules_path = rules_path
        self.rules_stamp = None
        self.rules = []
        self.reload()
        self.log_path = log_path
        self.requests_path = requests_path
        self.lock = threading.Lock()
        self.prngs = {}
        self.counts = {}

    def reload(self):
        """Reads the rules file again if it changed since it was last read; a bad file ends the proxy loudly."""
        st = os.stat(self.rules_path)
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self.rules_stamp:
            return
        with open(self.rules_path) as f:
            rules = json.load(f)
        for r in rules:
            if r.get("kind") not in KINDS or not 0 <= float(r.get("rate", -1)) <= 1:
                sys.stderr.write(f"faults.py: a rule needs a kind among {sorted(KINDS)} and a rate in 0..1: {r}\n")
                os._exit(2)
        self.rules, self.rules_stamp = rules, stamp

    def decide(self, service, operation):
        """The rule whose fault this request gets (or None), and the request's index among its call's."""
        key = (service, operation)
        with self.lock:
            self.reload()
            if key not in self.prngs:
                self.prngs[key] = random.Random(f"{self.seed}/{service}/{operation}")
                self.counts[key] = 0
            n = self.counts[key]
            self.counts[key] += 1
            draw = self.prngs[key].random()
        rule = self.draw(service, operation, draw)
        entry = {"service": service, "operation": operation, "n": n, "kind": rule["kind"] if rule else None}
        with self.lock:
            if rule:
                with open(self.log_path, "a") as log:
                    log.write(json.dumps(entry) + "\n")
            with open(self.requests_path, "a") as log:
                log.write(json.dumps(entry) + "\n")
        return rule, n

    def draw(self, service, operation, draw):
        """The first rule matching the call whose cumulative rate exceeds `draw`, or None."""
        total = 0.0
        for rule in self.rules:
            if rule.get("service", "*") not in ("*", service):
                continue
            if rule.get("operation", "*") not in ("*", operation):
                continue
            total += float(rule["rate"])
            if draw < total:
                return rule
        return None


def error_answer(service, kind, json_protocol):
    """(status, headers, body) of an injected error, in the service's own shape."""
    status = {"throttle": 503 if service == "s3" else 400, "error500": 500, "error503": 503}[kind]
    if service == "s3":
        code = {"throttle": "SlowDown", "error500": "InternalError", "error503": "ServiceUnavailable"}[kind]
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>injected fault</Message>"
        body += "<RequestId>lifeboat-faults</RequestId></Error>"
        return status, {"Content-Type": "application/xml"}, body.encode()
    code = {"throttle": "ThrottlingException" if json_protocol else "Throttling", "error500": "InternalFailure",
            "error503": "ServiceUnavailable"}[kind]
    if json_protocol:
        body = json.dumps({"__type": code, "message": "injected fault"}).encode()
        return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}, body
    side = "Sender" if kind == "throttle" else "Receiver"
    body = f"<ErrorResponse><Error><Type>{side}</Type><Code>{code}</Code><Message>injected fault</Message></Error>"
    body += "<RequestId>lifeboat-faults</RequestId></ErrorResponse>"
    return status, {"Content-Type": "text/xml"}, body.encode()


class Proxy(http.server.BaseHTTPRequestHandler):
    # Keep-alive, as the SDK's pooled connections expect; every answer carries its length.
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: an answer is written as its head and then its body, and with Nagle's algorithm on, the body's
    # write waits for the client's delayed ACK of the head (about 40 ms on Linux), on every request.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reset(self):
        # SO_LINGER 0: close() sends RST, as a dropped connection does, and nothing is answered.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def handle_one(self):
        body = self.read_body()
        path, _, query = self.path.partition("?")
        service = service_of(self.headers)
        target = self.headers.get("X-Amz-Target", "")
        content_type = self.headers.get("Content-Type", "")
        operation = operation_of(service, target, query, body, content_type)
        if operation is None and service == "s3":
            operation = s3_operation(self.command, path, query)
        if operation is None:
            operation = f"{self.command} {path}"
        rule, _ = FAULTS.decide(service, operation)
        kind = rule["kind"] if rule else None
        if kind == "reset":
            return self.reset()
        if kind in ("throttle", "error500", "error503"):
            json_protocol = bool(target) or content_type.startswith("application/x-amz-json")
            status, headers, payload = error_answer(service, kind, json_protocol)
            self.send_response_only(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        if kind == "slow":
            time.sleep(float(rule.get("delay_ms", 1000)) / 1000)
        self.forward(body, lose=kind == "lost")

    def forward(self, body, lose):
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM_PORT, timeout=300)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    upstream.putheader(name, value)
            if body or self.command in ("POST", "PUT", "PATCH"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            answer = upstream.getresponse()
            length = answer.getheader("Content-Length")
            if lose:
                answer.read()
                return self.reset()
            self.send_response_only(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            if self.command == "HEAD":
                # The length of what a GET would return (HeadObject's object size), with no body.
                if length is not None:
                    self.send_header("Content-Length", length)
                self.end_headers()
                return
            if length is None:
                payload = answer.read()
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.send_header("Content-Length", length)
            self.end_headers()
            while True:
                block = answer.read(65536)
                if not block:
                    break
                self.wfile.write(block)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_one


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    UPSTREAM_PORT = int(sys.argv[1])
    listen_port = int(sys.argv[2])
    FAULTS = Faults(int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
    open(sys.argv[5], "a").close()
    open(sys.argv[6], "a").close()
    server = Server(("127.0.0.1", listen_port), Proxy)
    print(f"listening on {listen_port}", flush=True)
    server.serve_forever()

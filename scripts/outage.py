#!/usr/bin/env python3
"""A CloudWatch outage under a real Fluent Bit: what is lost, what is sent twice, how long a
stop takes.

Runs a Fluent Bit binary you built (this script builds nothing) with the plugin, a forward
input fed at a steady rate by a client that behaves like a container runtime's log driver
(it reconnects and re-sends what it could not write), and a CloudWatch Logs stand-in on
loopback that fails every call (503s and connection resets, in turn) for a while. Every
record carries a sequence number; at the end the stand-in says which arrived, how often.

Scenarios (--scenario):
  firelens  FireLens's defaults: memory buffering, Retry_Limit unset (1: two flushes).
  restart   storage.type filesystem, Retry_Limit no_limits, and a SIGTERM in the middle
            of the outage followed by a restart on the same storage.path (SIGKILL if the
            process has not exited 40 s after the SIGTERM, as ECS would have by then).

  python3 scripts/outage.py --fluent-bit /path/to/fluent-bit \\
      --plugin target/release/libflb_out_cloudwatch.so --scenario restart

Needs the `msgpack` package (pip install msgpack). Traffic stays on 127.0.0.1.
"""
import argparse
import http.server
import json
import os
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time

import msgpack


class Stand:
    """The CloudWatch Logs stand-in: stores events by sequence number; fails in an outage."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = {}  # seq -> times stored
        self.outage = False
        self.failures = 0
        self.calls = 0

    def handle(self, target, body):
        op = target.split(".")[-1]
        if op == "PutLogEvents":
            for event in body.get("logEvents", []):
                try:
                    seq = json.loads(event["message"])["seq"]
                except (ValueError, KeyError, TypeError):
                    continue
                self.seen[seq] = self.seen.get(seq, 0) + 1
            return {"nextSequenceToken": "1"}
        return {}


def serve(stand, port):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length)
            with stand.lock:
                stand.calls += 1
                if stand.outage:
                    stand.failures += 1
                    if stand.failures % 2:
                        # A reset: no answer at all.
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        self.close_connection = True
                        self.connection.close()
                        return
                    answer, status = {
                        "__type": "ServiceUnavailableException",
                        "message": "outage",
                    }, 503
                else:
                    try:
                        body = json.loads(raw or b"{}")
                    except ValueError:
                        body = {}
                    answer, status = stand.handle(self.headers.get("x-amz-target", ""), body), 200
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/x-amz-json-1.1")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Client:
    """A log driver: one record every 1/rate s over the forward protocol; what it cannot
    write is kept and written after it reconnects."""

    def __init__(self, port, rate):
        self.port, self.rate = port, rate
        self.sent = 0  # records written to a socket
        self.blocked = 0.0  # longest single write, seconds
        self.refused = 0.0  # seconds spent without a connection
        self.stop = False
        # The application is stopped (an ECS task stops its application containers before
        # the log router): no new records, what is pending waits.
        self.paused = False

    def run(self, until):
        sock, pending, seq = None, [], 0
        next_at = time.monotonic()
        while time.monotonic() < until and not self.stop:
            now = time.monotonic()
            if self.paused:
                next_at = now
                if sock is not None:
                    # The stopped task's connection is gone; the next one connects anew.
                    sock.close()
                    sock = None
            elif now >= next_at:
                record = {
                    "log": json.dumps({"seq": seq, "msg": "x" * 200}),
                    "source": "stdout",
                    "container_name": "app",
                }
                pending.append(msgpack.packb(["app", int(time.time()), record]))
                seq += 1
                next_at += 1.0 / self.rate
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
                except OSError:
                    self.refused += 0.05
                    time.sleep(0.05)
                    continue
            while pending:
                started = time.monotonic()
                try:
                    sock.settimeout(5)
                    sock.sendall(pending[0])
                except OSError:
                    sock.close()
                    sock = None
                    break
                self.blocked = max(self.blocked, time.monotonic() - started)
                pending.pop(0)
                self.sent += 1
            time.sleep(max(0.0, min(0.02, next_at - time.monotonic())))
        if sock:
            sock.close()
        self.unsent = len(pending)


def config(args, workdir, fwd, cw):
    storage = args.scenario == "restart"
    lines = [
        "[SERVICE]",
        "    Flush 1",
        f"    Grace {args.grace}",
        "    Log_Level info",
    ]
    if storage:
        lines += [f"    storage.path {workdir}/storage", "    storage.sync normal"]
    lines += [
        "[INPUT]",
        "    Name forward",
        "    Listen 127.0.0.1",
        f"    Port {fwd}",
    ]
    if storage:
        lines += ["    storage.type filesystem"]
    lines += [
        "[OUTPUT]",
        "    Name cloudwatch",
        "    Match *",
        "    region us-east-1",
        "    log_group_name /outage",
        "    log_stream_name s",
        "    log_key log",
        "    auto_create_group true",
        f"    endpoint http://127.0.0.1:{cw}",
    ]
    if storage:
        lines += ["    Retry_Limit no_limits"]
    lines += [f"    {k} {v}" for k, v in (p.split("=", 1) for p in args.option)]
    path = os.path.join(workdir, "fluent-bit.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fluent-bit", required=True)
    p.add_argument("--plugin", required=True)
    p.add_argument("--scenario", choices=["firelens", "restart"], default="firelens")
    p.add_argument("--seconds", type=int, default=420, help="how long records are sent")
    p.add_argument("--outage-start", type=int, default=120)
    p.add_argument("--outage-seconds", type=int, default=180)
    p.add_argument("--sigterm-at", type=int, default=210, help="restart scenario")
    p.add_argument("--rate", type=int, default=50, help="records per second")
    p.add_argument("--grace", type=int, default=30)
    p.add_argument("--option", action="append", default=[], help="KEY=VALUE for [OUTPUT]")
    args = p.parse_args()

    workdir = tempfile.mkdtemp(prefix="outage-")
    fwd, cw = free_port(), free_port()
    stand = Stand()
    serve(stand, cw)
    conf = config(args, workdir, fwd, cw)
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE",
        AWS_SECRET_ACCESS_KEY="outage-secret",
        AWS_EC2_METADATA_DISABLED="true",
    )
    log = open(os.path.join(workdir, "fluent-bit.log"), "ab")

    def start():
        return subprocess.Popen(
            [args.fluent_bit, "-e", os.path.abspath(args.plugin), "-c", conf],
            env=env, stdout=log, stderr=log,
        )

    fb = start()
    time.sleep(2)
    t0 = time.monotonic()
    client = Client(fwd, args.rate)
    feeder = threading.Thread(target=client.run, args=(t0 + args.seconds,))
    feeder.start()
    report = {"scenario": args.scenario, "log": log.name}
    outage_on, outage_off = t0 + args.outage_start, t0 + args.outage_start + args.outage_seconds
    term_at = t0 + args.sigterm_at if args.scenario == "restart" else None
    while feeder.is_alive():
        now = time.monotonic()
        stand.outage = outage_on <= now < outage_off
        if term_at and now >= term_at - 2:
            client.paused = True  # the application stops first
        if term_at and now >= term_at:
            term_at = None
            fb.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            try:
                fb.wait(timeout=40)
                report["exit_after_sigterm_s"] = round(time.monotonic() - signalled, 1)
            except subprocess.TimeoutExpired:
                fb.kill()
                fb.wait()
                report["exit_after_sigterm_s"] = "SIGKILL after 40"
            report["exit_code"] = fb.returncode
            fb = start()
            time.sleep(1)
            client.paused = False
        time.sleep(0.1)
    stand.outage = False
    # Let what is buffered drain: until everything arrived or nothing came for 60 s.
    last, changed = -1, time.monotonic()
    while time.monotonic() - changed < 60:
        with stand.lock:
            got = len(stand.seen)
        if got >= client.sent:
            break
        if got != last:
            last, changed = got, time.monotonic()
        time.sleep(1)
    fb.send_signal(signal.SIGTERM)
    try:
        fb.wait(timeout=60)
    except subprocess.TimeoutExpired:
        fb.kill()
    with stand.lock:
        received = len(stand.seen)
        duplicated = sum(n - 1 for n in stand.seen.values())
        missing = [n for n in range(client.sent) if n not in stand.seen][:20]
    report.update(
        sent=client.sent,
        received=received,
        lost=client.sent - received,
        duplicated=duplicated,
        unsent_by_client=client.unsent,
        first_missing=missing,
        longest_write_s=round(client.blocked, 2),
        seconds_without_connection=round(client.refused, 1),
        calls=stand.calls,
        failed_calls=stand.failures,
    )
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())

"""Shared helpers of the bindings tests: a real `gridsync serve` on a fixed port (so it can be
stopped and started again under the same address, like a server the phones lose and find), the
seeding and inspection of its database through `field-fixture`, and phone clients.

Environment (scripts/test-bindings sets it): GRIDSYNC_BIN (the server binary), FIELD_FIXTURE
(the fixture binary), and PYTHONPATH holding the generated `gridsync_mobile` module.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import gridsync_mobile as gm

PASSWORD = "field test password"
GRID = "g1"
KEY = bytes([0x5A] * 32)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fixture(*args):
    out = subprocess.run(
        [os.environ["FIELD_FIXTURE"], *args], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


class Server:
    """`gridsync serve` on a seeded database, on one port for its whole life."""

    def __init__(self, db=None):
        self.tmp = tempfile.mkdtemp(prefix="gridsync-bindings-")
        self.db = db or f"sqlite://{self.tmp}/server.db"
        fixture("seed", self.db)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.office_token = None
        self.start()

    def start(self):
        env = dict(os.environ, GRIDSYNC_ADMIN_PASSWORD=PASSWORD, RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [os.environ["GRIDSYNC_BIN"], "serve", "--db", self.db, "--bind", f"127.0.0.1:{self.port}"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for line in self.proc.stdout:
            if line.startswith("gridsync is serving on "):
                break
        else:
            raise RuntimeError("gridsync exited before serving")
        # Keep reading stdout so the server never blocks on a full pipe.
        self.reader = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self.reader.start()
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("/healthz did not answer")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
            self.reader.join(timeout=5)
            self.proc.stdout.close()
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def report(self, report_id):
        """What the server holds of a report: projection, heads, changes, conflicts."""
        return json.loads(fixture("report", self.db, report_id))

    def admin_token(self):
        return self.post_json(
            "/api/v1/auth/login",
            {"username": "admin", "password": PASSWORD, "device_id": "py-console", "device_name": "console"},
        )["access_token"]

    def revoke(self, device_id):
        token = self.admin_token()
        req = urllib.request.Request(
            f"{self.base}/api/v1/devices/{device_id}/revoke",
            method="POST",
            headers={"authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 204, r.status

    def post_json(self, path, body, token=None):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        req = urllib.request.Request(
            f"{self.base}{path}", data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def get_json(self, path, token):
        req = urllib.request.Request(
            f"{self.base}{path}", headers={"authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def call(self, method, path, body=None, token=None):
        """Any API call as the admin (or `token`'s user): (status, JSON body or None), also for
        4xx answers, which the office must be able to tell apart."""
        if token is None:
            if self.office_token is None:
                self.office_token = self.admin_token()
            token = self.office_token
        headers = {"authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            headers["content-type"] = "application/json"
            data = json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        return status, (json.loads(raw) if raw else None)

    def add_user(self, username, role, org_unit_id):
        """A user created through the API as the admin, with the seeded password; their id."""
        status, user = self.call(
            "POST",
            "/api/v1/users",
            {"username": username, "display_name": username, "password": PASSWORD,
             "role": role, "org_unit_id": org_unit_id},
        )
        assert status == 201, (status, user)
        return user["id"]

    def add_org_unit(self, unit_id, parent_id, level):
        status, unit = self.call(
            "POST", "/api/v1/org", {"id": unit_id, "parent_id": parent_id, "level": level, "name": unit_id}
        )
        assert status == 201, (status, unit)

    def device(self, device_id):
        """The device as `GET /api/v1/devices` lists it."""
        status, devices = self.call("GET", "/api/v1/devices")
        assert status == 200, (status, devices)
        [device] = [d for d in devices if d["id"] == device_id]
        return device

    def resolve_over_http(self, report_id, path, value):
        """The admin resolves a report's open conflict through the HTTP API, as the console does."""
        token = self.admin_token()
        items = self.get_json(f"/api/v1/conflicts?limit=200", token)["items"]
        [conflict] = [c for c in items if c["report_id"] == report_id and c["path"] == path]
        return self.post_json(f"/api/v1/conflicts/{conflict['id']}/resolve", {"value": value}, token)


class Hub:
    """A village office hub for village v1: registered at `server` by the admin, enrolled with
    `gridsync hub enrol`, and run with `gridsync hub run`, reaching central every second."""

    def __init__(self, server):
        self.tmp = tempfile.mkdtemp(prefix="gridsync-hub-")
        hub_dir = f"{self.tmp}/hub"
        # The sealing key, kept beside the hub's folder rather than in it.
        key_file = f"{self.tmp}/hub.key"
        status, registered = server.call("POST", "/api/v1/hubs", {"unit_id": "v1", "name": "上坪村委会"})
        assert status in (200, 201), (status, registered)
        env = dict(os.environ, GRIDSYNC_HUB_CODE=registered["enrolment_code"], RUST_LOG="warn")
        subprocess.run(
            [os.environ["GRIDSYNC_BIN"], "hub", "enrol", "--central", server.base, "--dir", hub_dir,
             "--key-file", key_file],
            env=env, check=True, capture_output=True,
        )
        with open(f"{hub_dir}/hub.json") as f:
            self.id = json.load(f)["hub_id"]
        self.proc = subprocess.Popen(
            [os.environ["GRIDSYNC_BIN"], "hub", "run", "--dir", hub_dir, "--key-file", key_file,
             "--bind", "127.0.0.1:0", "--every", "1"],
            env=dict(os.environ, RUST_LOG="warn"),
            stdout=subprocess.PIPE,
            text=True,
        )
        for line in self.proc.stdout:
            if "is serving phones on " in line:
                self.base = line.split("is serving phones on ", 1)[1].strip()
                break
        else:
            raise RuntimeError("the hub exited before serving")
        self.reader = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self.reader.start()

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
        self.reader.join(timeout=5)
        self.proc.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def quick_config(**overrides):
    config = gm.default_client_config()
    config.connect_timeout_ms = 2000
    config.request_timeout_ms = 20000
    config.max_attempts = 2
    config.retry_base_delay_ms = 20
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def phone(data_dir, base, **overrides):
    return gm.FieldClient.with_config(str(data_dir), base, KEY, quick_config(**overrides))


def text(value):
    return gm.FieldValue.TEXT(value=value)


def texts(**values):
    return {k: text(v) for k, v in values.items()}


def projection(client, report_id):
    return json.loads(client.report(report_id).json)


def log(*args):
    print(*args, file=sys.stderr, flush=True)

"""Starts the real `kelviq` binary for the official Python SDK to talk to.

Each test module gets a fresh server per backend: SQLite in a temporary data
directory, and PostgreSQL in a fresh database on the local server
(KELVIQ_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres).
The demo keys the server prints on its first start are the keys the tests use.
"""

import os
import queue
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("KELVIQ_BIN", str(REPO / "target" / "debug" / "kelviq"))
ADMIN_URL = os.environ.get("KELVIQ_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


class Server:
    def __init__(self, env):
        full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KELVIQ_DATABASE_URL", "KELVIQ_BIN")}
        full_env.update(env)
        full_env.setdefault("KELVIQ_LOG", "warn")
        # The webhook tests' receiver listens on this machine.
        full_env.setdefault("KELVIQ_WEBHOOK_ALLOW_SUBNETS", "127.0.0.0/8")
        self.env = full_env
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0"], env=full_env, stdout=subprocess.PIPE, text=True
        )
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.proc.stdout], daemon=True).start()
        self.server_key = self.client_key = self.url = None
        deadline = time.monotonic() + 30
        while self.url is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic())).strip()
            except queue.Empty:
                self.stop()
                raise RuntimeError("kelviq serve did not start")
            if line.startswith("sandbox server key: "):
                self.server_key = line.split(": ", 1)[1]
            elif line.startswith("sandbox client key: "):
                self.client_key = line.split(": ", 1)[1]
            elif line.startswith("kelviq listening on "):
                self.url = line.split()[3]
        assert self.server_key and self.client_key, "first start prints the demo keys"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _psql(sql):
    subprocess.run(["psql", ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, capture_output=True)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    if request.param == "sqlite":
        srv = Server({"KELVIQ_DATA_DIR": str(tmp_path_factory.mktemp("data"))})
        yield srv
        srv.stop()
        return
    name = f"kq_py_{uuid.uuid4().hex}"
    _psql(f"CREATE DATABASE {name}")
    parts = urlsplit(ADMIN_URL)
    srv = Server({"DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}"))})
    yield srv
    srv.stop()
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def client(server):
    from kelviq_sdk import Kelviq

    c = Kelviq.create_sync_client(access_token=server.server_key, base_url=server.url, edge_api_url=server.url)
    yield c
    c.close()


@pytest.fixture
def unique():
    """A fresh customer id per test, so tests sharing a server do not collide."""
    return f"py-{uuid.uuid4().hex[:12]}"

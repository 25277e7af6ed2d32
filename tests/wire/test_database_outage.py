"""The database down and back (docs/requests.md): known keys keep working, the admin API answers
503 and the CLI one line, and everything recovers by itself. Two real gateways share a real
embedded Postgres of this test's own (the session's shared server is never stopped)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from gateway.keys.db import EmbeddedPostgres
from tests.helpers import Gateway, run_cli
from tests.upstreams import get_upstreams, proxy_env, start_gateway, within

UNAVAILABLE = {"message": "Database unavailable"}


def status(gw: Gateway, key: str) -> int:
    # A fresh connection each time: every request is admitted on its own.
    return httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": key}, timeout=5).status_code


class Traffic:
    """Requests with a known key, one after another, until stopped; counts the statuses."""

    def __init__(self, gws: list[Gateway], key: str) -> None:
        self.gws, self.key, self.seen = gws, key, Counter[int]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for gw in self.gws:
                try:
                    self.seen[status(gw, self.key)] += 1
                except httpx.HTTPError:
                    self.seen[0] += 1
            time.sleep(0.01)

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_known_keys_work_through_an_outage_and_changes_flow_again_after(tmp_path: Path):
    pg = EmbeddedPostgres(tmp_path / "pg")
    dsn = pg.start()
    gws: list[Gateway] = []
    try:
        # No periodic reload within the test: instance b learns of changes only by notification.
        env = proxy_env("", get_upstreams(), dsn=dsn, GATEWAY_KEYS__REFRESH_SECONDS="600")
        a = start_gateway(env)
        gws.append(a)
        b = start_gateway(env)
        gws.append(b)
        known = a.create_key("secret", "known_key")["api_key"]
        within(2, lambda: status(b, known) == 200)

        with Traffic([a, b], known) as traffic:
            pg.stop()
            # While it is down: the admin API answers 503 (no 500), the CLI one line.
            for method, path, kw in [
                ("GET", "/api-keys", {}), ("GET", "/api-keys?reveal=true", {}), ("GET", "/api-keys/legacy", {}),
                ("POST", "/api-keys", {"json": {"type": "secret", "name": "during_outage"}}),
                ("PUT", "/api-keys/legacy?enabled=false", {}),
                ("GET", "/api-keys/00000000-0000-4000-8000-000000000001", {}),
                ("PATCH", "/api-keys/00000000-0000-4000-8000-000000000001", {"json": {"name": "renamed"}}),
                ("DELETE", "/api-keys/00000000-0000-4000-8000-000000000001", {}),
            ]:
                r = a.admin(method, path, **kw)
                assert (r.status_code, r.json()) == (503, UNAVAILABLE), (method, path, r.text)
            result = run_cli("keys", "list", env={**env, "GATEWAY_DATA_DIR": str(tmp_path / "cli")}, timeout=30)
            assert result.returncode != 0 and "Traceback" not in result.stderr
            assert result.stderr.count("\n") == 1 and "database unavailable" in result.stderr
            time.sleep(1.5)  # known keys keep working meanwhile (checked below, on every request)
            assert pg.start() == dsn
            within(10, lambda: a.admin("GET", "/api-keys").status_code == 200)
        assert set(traffic.seen) == {200}, traffic.seen
        assert traffic.seen[200] > 20

        # Back: a key created on a works on b within a second, a deletion likewise.
        created = a.create_key("secret", "after_outage")
        within(1, lambda: status(b, created["api_key"]) == 200)
        assert a.admin("DELETE", f"/api-keys/{created['id']}").status_code == 200
        within(1, lambda: status(b, created["api_key"]) == 401)
        assert status(a, created["api_key"]) == 401
        assert status(b, known) == 200
        assert "during_outage" not in {k["name"] for k in a.admin("GET", "/api-keys").json()}
        for gw in gws:
            assert "Traceback" not in gw.logs()
    finally:
        for gw in gws:
            gw.stop()
        pg.stop()

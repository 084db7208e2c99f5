"""A real Home Assistant core for the tests: started on loopback, onboarded and given MQTT as a new user would.

Home Assistant lives in its own venv (``scripts/setup_ha.sh``, under ``.cache/ha/``), never the project's. It is
started with ``--skip-pip``: everything it needs was installed by that script, and nothing downloads at run time.
What it shows is read as a user's tools read it: ``/api/states``, the entity and device registries, the
``state_changed`` events (over the websocket API), and its log.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import websocket
from conftest import ROOT, free_port, terminate, wait_for_port
from daemon_helpers import WAIT, wait_until

HA_VERSION = "2025.4.4"
CONFIGURATION = """\
homeassistant:
  name: genrecast test
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: DE
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
websocket_api:
automation: !include automations.yaml
logger:
  default: info
"""


def ha_venv() -> Path:
    """The venv ``scripts/setup_ha.sh`` made (``make test`` runs it first: installing takes minutes, longer than a
    test may)."""
    venv = ROOT / ".cache" / "ha" / HA_VERSION
    assert (venv / ".genrecast-ha-installed").is_file() and (venv / "bin" / "hass").exists(), \
        f"no Home Assistant in {venv}: run scripts/setup_ha.sh (make test does)"
    return venv


@dataclass(frozen=True)
class Change:
    """One ``state_changed`` event: the entity, its new state (``None`` once removed) and attributes."""

    entity_id: str
    state: str | None
    attributes: dict
    at: float  # monotonic time it reached us


class HomeAssistant:
    def __init__(self, venv: Path, workdir: Path) -> None:
        self.venv, self.config = venv, workdir / "ha-config"
        self.config.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = self.config / "home-assistant.log"
        (self.config / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        (self.config / "automations.yaml").write_text("[]\n")  # as a new installation's, until a test writes some
        self.proc: subprocess.Popen | None = None
        self.token = ""
        self.changes: list[Change] = []
        self._cond = threading.Condition()
        self._ws: websocket.WebSocket | None = None
        self._ws_id = 0
        self._replies: dict[int, dict] = {}

    # -- life cycle --

    def start(self) -> None:
        out = (self.config / "stdout.log").open("ab")
        self.proc = subprocess.Popen([str(self.venv / "bin" / "hass"), "-c", str(self.config), "--skip-pip",
                                      "--log-file", str(self.log_file)], stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=240)  # the first start writes its databases and keys

    def stop(self) -> None:
        if self._ws:
            self._ws.close()
        terminate(self.proc, 60)

    @property
    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    # -- set-up as a new user: onboarding, a long-lived token, the MQTT integration --

    def onboard(self) -> None:
        client_id = f"{self.url}/"
        r = requests.post(f"{self.url}/api/onboarding/users", json={
            "client_id": client_id, "name": "Tester", "username": "tester", "password": "genrecast-test-pw",
            "language": "en"}, timeout=WAIT)
        r.raise_for_status()
        r = requests.post(f"{self.url}/auth/token", data={"grant_type": "authorization_code",
                                                          "code": r.json()["auth_code"], "client_id": client_id},
                          timeout=WAIT)
        r.raise_for_status()
        self._connect_ws(r.json()["access_token"])
        self.token = self.ws("auth/long_lived_access_token", client_name="genrecast tests", lifespan=1)
        self._connect_ws(self.token)  # from here on everything uses the long-lived token

    def add_mqtt(self, host: str, port: int) -> dict:
        flow = self.post("/api/config/config_entries/flow", {"handler": "mqtt"})
        assert flow.get("step_id") == "broker", flow
        done = self.post(f"/api/config/config_entries/flow/{flow['flow_id']}", {"broker": host, "port": port})
        assert done.get("type") == "create_entry", done
        return done

    # -- REST --

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def post(self, path: str, body: dict) -> dict:
        r = requests.post(f"{self.url}{path}", json=body, headers=self._headers(), timeout=WAIT)
        assert r.ok, f"POST {path}: {r.status_code} {r.text[:500]}"
        return r.json()

    def automations(self, yaml: str) -> None:
        """Replace ``automations.yaml`` and have Home Assistant load it, as the editor's save does."""
        (self.config / "automations.yaml").write_text(yaml)
        self.post("/api/services/automation/reload", {})

    def fired(self, alias: str, since: int = 0) -> list[Change]:
        """The runs of the automation named ``alias`` recorded from index ``since`` on: each changes its
        ``last_triggered`` (its state changes also come for ``current``, the runs in progress)."""
        with self._cond:
            changes = [c for c in self.changes[since:] if c.entity_id.startswith("automation.")
                       and c.attributes.get("friendly_name") == alias]
        runs, last = [], None
        for c in changes:
            if c.attributes.get("last_triggered") not in (None, last):
                runs.append(c)
            last = c.attributes.get("last_triggered")
        return runs

    def state(self, entity_id: str) -> dict | None:
        """``/api/states/<entity_id>``: ``None`` when Home Assistant has no such entity."""
        r = requests.get(f"{self.url}/api/states/{entity_id}", headers=self._headers(), timeout=WAIT)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    # -- websocket: commands, and the state_changed events recorded as they come --

    def _connect_ws(self, token: str) -> None:
        if self._ws:
            self._ws.close()
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/api/websocket", timeout=WAIT)
        assert json.loads(ws.recv())["type"] == "auth_required"
        ws.send(json.dumps({"type": "auth", "access_token": token}))
        assert json.loads(ws.recv())["type"] == "auth_ok"
        ws.settimeout(None)
        self._ws = ws
        threading.Thread(target=self._read, args=(ws,), daemon=True).start()
        self.ws("subscribe_events", event_type="state_changed")

    def _read(self, ws: websocket.WebSocket) -> None:
        while True:
            try:
                msg = json.loads(ws.recv())
            except (websocket.WebSocketException, OSError, ValueError):
                return
            with self._cond:
                if msg.get("type") == "event":
                    data = msg["event"]["data"]
                    new = data.get("new_state") or {}
                    self.changes.append(Change(data["entity_id"], new.get("state"), new.get("attributes", {}),
                                               time.monotonic()))
                else:
                    self._replies[msg["id"]] = msg
                self._cond.notify_all()

    def ws(self, command: str, **fields):
        """One websocket command; its result (an unsuccessful one fails the test)."""
        with self._cond:
            self._ws_id += 1
            i = self._ws_id
        self._ws.send(json.dumps({"id": i, "type": command, **fields}))
        reply = wait_until(self._cond, lambda: self._replies.pop(i, None), WAIT, lambda: f"no answer to {command}")
        assert reply.get("success"), reply
        return reply["result"]

    def entity_ids(self) -> dict[str, str]:
        """unique_id -> entity_id of every MQTT entity, from the entity registry."""
        return {e["unique_id"]: e["entity_id"] for e in self.ws("config/entity_registry/list")
                if e["platform"] == "mqtt"}

    def entity(self, unique_id: str) -> str:
        """The entity id of the MQTT entity ``unique_id``, once Home Assistant registered it (checked again after
        every state change: a new entity's first state is one)."""
        deadline = time.monotonic() + WAIT
        while True:
            mark = self.mark()
            ids = self.entity_ids()
            if unique_id in ids:
                return ids[unique_id]
            self.wait_for(lambda c: True, f"an entity {unique_id} (has {sorted(ids)})", mark,
                          timeout=max(0.1, deadline - time.monotonic()))

    def devices(self) -> list[dict]:
        return self.ws("config/device_registry/list")

    def wait_for(self, predicate, what: str, since: int = 0, timeout: float = WAIT) -> Change:
        """The first recorded change from index ``since`` on that satisfies ``predicate``."""
        def find():
            return next((c for c in self.changes[since:] if predicate(c)), None)

        return wait_until(self._cond, find, timeout,
                          lambda: f"Home Assistant never showed {what}; last changes: {self.changes[-8:]}")

    def mark(self) -> int:
        """The index the next recorded change will have: for "what happened from now on"."""
        with self._cond:
            return len(self.changes)

    def history(self, entity_id: str, since: int = 0) -> list[str | None]:
        with self._cond:
            return [c.state for c in self.changes[since:] if c.entity_id == entity_id]

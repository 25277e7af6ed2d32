"""The shipped examples stay true: config.example.toml is the defaults, the compose file wires
the gateway to every service with names the gateway understands."""

from __future__ import annotations

import tomllib

import yaml

from gateway.config import Settings, load_settings
from tests.helpers import REPO


def test_config_example_documents_the_defaults(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("GATEWAY_") or name in ("JWT_SECRET", "JWT_KEYS", "ANON_KEY", "SERVICE_ROLE_KEY",
                                                    "DATABASE_URL"):
            monkeypatch.delenv(name, raising=False)
    example = load_settings(REPO / "config.example.toml")
    assert example.model_dump() == Settings().model_dump()


def test_config_example_names_every_option():
    text = tomllib.loads((REPO / "config.example.toml").read_text())
    raw = (REPO / "config.example.toml").read_text()
    for section, model in Settings.model_fields.items():
        sub = getattr(model.annotation, "model_fields", None)
        if sub is None:
            assert section in text or f"# {section} =" in raw, section
            continue
        for option in sub:
            assert f"{option} =" in raw, f"{section}.{option} is not documented"


def test_compose_runs_the_gateway_in_front_of_every_service():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("gateway", "db", "rest", "realtime", "functions", "auth", "storage", "meta"):
        assert name in services
    env = services["gateway"]["environment"]
    for upstream in ("REST", "REALTIME", "FUNCTIONS", "AUTH", "STORAGE", "META"):
        url = env[f"GATEWAY_UPSTREAMS__{upstream}"]
        host = url.split("//")[1].split(":")[0]
        assert host in services or any(s.get("container_name") == host for s in services.values()), url
    assert services["realtime"]["container_name"] == Settings().upstreams.realtime_host
    assert services["gateway"]["ports"][0].endswith(":8000")
    assert services["gateway"]["ports"][1].startswith("127.0.0.1:")  # admin API stays local

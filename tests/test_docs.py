"""The shipped examples stay true: config.example.toml is the defaults, the drop-in override
sets only names the gateway reads, and the repository's compose file builds the image it runs."""

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


def test_drop_in_override_sets_only_names_the_gateway_reads():
    """Every variable the override gives api-gw is a gateway option, one of its aliases, a key it
    imports on first start, or one of Envoy's it blanks (tests/wire/test_dropin.py runs docker-compose)."""
    import re

    from gateway.config import ALIASES
    from gateway.process.server import IMPORT_ENV

    override = yaml.safe_load((REPO / "docker" / "docker-compose.gateway.yml").read_text())
    env = override["services"]["api-gw"]["environment"]
    blanked = {name for name, value in env.items() if value == ""}
    for name in env:
        if name.startswith("GATEWAY_"):
            path = name.removeprefix("GATEWAY_").lower().split("__")
            model = Settings
            for part in path[:-1]:
                model = model.model_fields[part].annotation
            assert path[-1] in model.model_fields, name
        else:
            assert name in ALIASES or name in IMPORT_ENV.values() or name in blanked, name
    image = re.fullmatch(r"\$\{API_GW_IMAGE:-(.+)\}", override["services"]["api-gw"]["image"]).group(1)
    own = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["gateway"]
    assert (own["build"], own["image"]) == (".", image)  # the repository's compose file builds it

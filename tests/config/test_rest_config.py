"""``rest.denied_resources`` and ``keys.quota_flush_seconds`` (docs/protection.md) from the TOML file
and the environment; a bad entry stops start-up with one line naming the option, not the list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.config import ALIASES, ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("GATEWAY_") or name in ALIASES:
            monkeypatch.delenv(name)


def test_defaults():
    settings = load_settings()
    assert settings.rest.denied_resources == [] and settings.keys.quota_flush_seconds == 1.0


def test_from_the_file_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "gateway.toml"
    path.write_text('[rest]\ndenied_resources = ["audit_events", "rpc/admin_*"]\n[keys]\nquota_flush_seconds = 0.5\n')
    settings = load_settings(path)
    assert settings.rest.denied_resources == ["audit_events", "rpc/admin_*"]
    assert settings.keys.quota_flush_seconds == 0.5
    monkeypatch.setenv("GATEWAY_REST__DENIED_RESOURCES", '["storage.objects"]')
    assert load_settings(path).rest.denied_resources == ["storage.objects"]


@pytest.mark.parametrize(("value", "option"), [
    ('["secret_table/x"]', "rest.denied_resources"), ('[" padded"]', "rest.denied_resources"),
    ('["a", ""]', "rest.denied_resources"), ("not json", "rest.denied_resources"),
])
def test_a_bad_entry_is_one_line_naming_the_option(monkeypatch: pytest.MonkeyPatch, value: str, option: str):
    monkeypatch.setenv("GATEWAY_REST__DENIED_RESOURCES", value)
    with pytest.raises(ConfigError) as e:
        load_settings()
    message = str(e.value)
    assert option in message and "\n" not in message and "secret_table" not in message


@pytest.mark.parametrize("value", ["0", "-1", "61"])
def test_the_flush_interval_is_bounded(monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.setenv("GATEWAY_KEYS__QUOTA_FLUSH_SECONDS", value)
    with pytest.raises(ConfigError, match="keys.quota_flush_seconds"):
        load_settings()

"""The opaque key format (docs/requests.md): checksum, hash, display prefix, mask, names; and
compatibility with keys made by Supabase's docker/utils/add-new-auth-keys.sh."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import time

import httpx
import pytest

from gateway.keys import apikeys
from tests.helpers import Gateway, run_cli

REF = "supabase-self-hosted"
B64URL = re.compile(r"[A-Za-z0-9_-]+")

# The key generation of supabase/supabase docker/utils/add-new-auth-keys.sh, verbatim in substance.
SUPABASE_SCRIPT = r"""
const crypto = require("crypto");
const PROJECT_REF = "supabase-self-hosted";
function generateOpaqueKey(prefix) {
    const random = crypto.randomBytes(17).toString("base64url").slice(0, 22);
    const intermediate = prefix + random;
    const checksum = crypto.createHash("sha256")
        .update(PROJECT_REF + "|" + intermediate)
        .digest("base64url")
        .slice(0, 8);
    return intermediate + "_" + checksum;
}
console.log("SUPABASE_PUBLISHABLE_KEY=" + generateOpaqueKey("sb_publishable_"));
console.log("SUPABASE_SECRET_KEY=" + generateOpaqueKey("sb_secret_"));
"""


def script_keys() -> dict[str, str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    out = subprocess.run([node, "-e", SUPABASE_SCRIPT], capture_output=True, text=True, check=True, timeout=30).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def replace_at(s: str, i: int) -> str:
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


# --- generation and checksum -----------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["publishable", "secret"])
def test_generated_keys_have_the_format_and_parse(key_type):
    prefix = apikeys.PREFIXES[key_type]
    keys = {apikeys.generate(key_type, REF) for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert re.fullmatch(rf"{prefix}[A-Za-z0-9_-]{{22}}_[A-Za-z0-9_-]{{8}}", key), key
        body, check = key[:-9], key[-8:]
        expected = base64.urlsafe_b64encode(hashlib.sha256(f"{REF}|{body}".encode()).digest()).decode()[:8]
        assert check == expected
        assert apikeys.parse(key, REF) == key_type


def test_prefixes():
    assert apikeys.PREFIXES == {"publishable": "sb_publishable_", "secret": "sb_secret_"}


def test_checksum_depends_on_the_ref():
    key = apikeys.generate("secret", "other-project")
    assert apikeys.parse(key, "other-project") == "secret"
    assert apikeys.parse(key, REF) is None


@pytest.mark.parametrize("key_type", ["publishable", "secret"])
def test_any_changed_character_is_refused(key_type):
    key = apikeys.generate(key_type, REF)
    start = len(apikeys.PREFIXES[key_type])
    for i in range(start, len(key)):
        if key[i] == "_" and i == len(key) - 9:
            continue  # the separator
        assert apikeys.parse(replace_at(key, i), REF) is None, i


def test_type_prefix_cannot_be_swapped():
    key = apikeys.generate("publishable", REF)
    assert apikeys.parse("sb_secret_" + key.removeprefix("sb_publishable_"), REF) is None


@pytest.mark.parametrize("mutate", [
    lambda k: k + "\n",
    lambda k: k + " ",
    lambda k: " " + k,
    lambda k: k + "A",
    lambda k: k[:-1],
    lambda k: k[:-9] + "_" + k[-7:],  # checksum 7 chars
    lambda k: k[:-9] + "A_" + k[-8:],  # random 23 chars
    lambda k: k[:-10] + "_" + k[-8:],  # random 21 chars
    lambda k: k[:-9] + "-" + k[-8:],  # wrong separator
    lambda k: k.upper(),
    lambda k: k.replace("sb_", "SB_", 1),
    lambda k: k.replace("sb_", "sb-", 1),
    lambda k: k.replace("sb_secret_", "sb_anon_", 1),
    lambda k: "",
    lambda k: "sb_secret_",
])
def test_malformed_keys_are_refused(mutate):
    assert apikeys.parse(mutate(apikeys.generate("secret", REF)), REF) is None


@pytest.mark.parametrize("bad", ["+", "/", "=", ".", " ", "é", "\x00", "٣"])
def test_characters_outside_base64url_are_refused_even_with_a_matching_checksum(bad):
    body = "sb_secret_" + bad + "A" * 21
    key = f"{body}_{apikeys.checksum(REF, body)}"
    assert apikeys.parse(key, REF) is None
    body = "sb_secret_" + "A" * 22
    assert apikeys.parse(f"{body}_{bad}{apikeys.checksum(REF, body)[1:]}", REF) is None


def test_looks_like_key():
    assert apikeys.looks_like_key("sb_publishable_whatever")
    assert apikeys.looks_like_key("sb_anything")
    assert not apikeys.looks_like_key("eyJhbGciOiJIUzI1NiJ9.e30.x")


# --- hash, display prefix, mask, names -------------------------------------------------------


def test_hash_is_unpadded_base64url_sha256():
    assert apikeys.hash_key("abc") == "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
    for _ in range(50):
        key = apikeys.generate("secret", REF)
        h = apikeys.hash_key(key)
        assert len(h) == 43 and B64URL.fullmatch(h) and "=" not in h
        assert base64.urlsafe_b64decode(h + "=") == hashlib.sha256(key.encode()).digest()
        assert key not in h


@pytest.mark.parametrize("key_type", ["publishable", "secret"])
def test_display_prefix_is_the_type_prefix_and_six_characters(key_type):
    key = apikeys.generate(key_type, REF)
    prefix = apikeys.display_prefix(key)
    assert prefix == key[: len(apikeys.PREFIXES[key_type]) + 6]
    assert len(prefix) == len(apikeys.PREFIXES[key_type]) + 6


def test_display_prefix_refuses_what_is_not_a_key():
    with pytest.raises(ValueError):
        apikeys.display_prefix("eyJhbGciOiJIUzI1NiJ9")


@pytest.mark.parametrize("key_type", ["publishable", "secret"])
def test_masked_is_type_prefix_then_mask_characters(key_type):
    m = apikeys.masked(key_type)
    prefix = apikeys.PREFIXES[key_type]
    assert m.startswith(prefix)
    rest = m.removeprefix(prefix)
    assert rest and set(rest) == {"·"}


@pytest.mark.parametrize("name", ["abcd", "default", "_abc", "____", "a_b_", "x123", "a" * 64, "my_key_2"])
def test_valid_names(name):
    assert apikeys.valid_name(name)


@pytest.mark.parametrize("name", ["", "abc", "a" * 65, "Abcd", "ABCD", "1abc", "9_ab", "ab-c", "ab c", "abc.",
                                  "abcd\n", "\nabcd", "ábcd", "abcd٣", "ab$c"])
def test_invalid_names(name):
    assert not apikeys.valid_name(name)


# --- keys made by the official self-hosted script ---------------------------------------------


def test_keys_from_the_supabase_script_parse():
    for _ in range(5):
        keys = script_keys()
        assert apikeys.parse(keys["SUPABASE_PUBLISHABLE_KEY"], REF) == "publishable"
        assert apikeys.parse(keys["SUPABASE_SECRET_KEY"], REF) == "secret"
        # the script's checksum and ours are the same function
        for key in keys.values():
            assert apikeys.checksum(REF, key[:-9]) == key[-8:]
        assert apikeys.parse(keys["SUPABASE_SECRET_KEY"], "another-ref") is None


def test_keys_from_the_supabase_script_import_and_authenticate(gateway_env, tmp_path):
    keys = script_keys()
    with Gateway(gateway_env) as gw:
        for key_type, var in (("publishable", "SUPABASE_PUBLISHABLE_KEY"), ("secret", "SUPABASE_SECRET_KEY")):
            key = keys[var]
            # not known yet: refused
            assert httpx.get(gw.url + "/rest/v1/x", headers={"apikey": key}).status_code == 401
            result = run_cli("keys", "import", "--type", key_type, "--name", f"from_env_{key_type}", "--key", key,
                             "--json", env=gateway_env, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            imported = json.loads(result.stdout)
            assert imported["prefix"] == key[: len(apikeys.PREFIXES[key_type]) + 6]
            assert imported["hash"] == apikeys.hash_key(key)
            # the running gateway learns of it (LISTEN/NOTIFY) and lets it through to the (unset) upstream
            deadline = time.monotonic() + 5
            while True:
                r = httpx.get(gw.url + "/rest/v1/x", headers={"apikey": key})
                if r.status_code != 401 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert r.status_code in (502, 503), r.text
            if r.status_code == 503:
                assert r.headers.get("sb-error-code") == "UPSTREAM_NOT_CONFIGURED"
        listed = {k["name"]: k for k in gw.admin("GET", "/api-keys").json()}
        assert listed["from_env_secret"]["hash"] == apikeys.hash_key(keys["SUPABASE_SECRET_KEY"])
        assert keys["SUPABASE_SECRET_KEY"] not in gw.logs()


# --- properties ---------------------------------------------------------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st

_REF = "supabase-self-hosted"


@given(st.text(max_size=80))
def test_any_text_is_parsed_without_error(text):
    kind = apikeys.parse(text, _REF)
    if kind is not None:  # only the exact format with its checksum
        assert text.startswith(apikeys.PREFIXES[kind]) and len(text) == len(apikeys.generate(kind, _REF))


@given(st.sampled_from(["publishable", "secret"]), st.integers(min_value=0, max_value=45), st.characters())
def test_a_key_changed_anywhere_is_refused(kind, position, char):
    key = apikeys.generate(kind, _REF)
    position %= len(key)
    changed = key[:position] + char + key[position + 1:]
    if changed != key:
        assert apikeys.parse(changed, _REF) is None

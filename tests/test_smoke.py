from tests.helpers import Gateway


def test_gateway_starts_and_answers_health(gateway_env):
    with Gateway(gateway_env) as gw:
        import httpx

        assert httpx.get(gw.url + "/health").json() == {"status": "ok"}
        r = gw.admin("GET", "/api-keys")
        assert r.status_code == 200
        assert {k["name"] for k in r.json()} == {"default"}

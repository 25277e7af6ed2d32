"""Resources a key may reach (docs/protection.md): what a REST path names, exactly as PostgREST reads
it, every hostile spelling we could think of, and the lists that allow or deny. Pure tables."""

from __future__ import annotations

import pytest

from gateway import errors, routes
from gateway.rules.keyrules import DeniedResources, KeyRules, rules_for
from gateway.rules.resources import AMBIGUOUS, GRAPHQL, ResourceSet, parse_entry, profile_header, resource_name


def upstream_path(raw: str) -> tuple[routes.Route, str]:
    """What the gateway forwards for a raw public path: normalised, then routed."""
    found = routes.match(routes.normalize(raw))
    assert found is not None, raw
    return found


@pytest.mark.parametrize(("raw", "name"), [
    ("/rest/v1/todos", "todos"),
    ("/rest/v1/rpc/search", "rpc/search"),
    ("/rest/v1/rpc/search_items", "rpc/search_items"),
    # merged slashes and dot segments: gateway.routes normalises before anything else
    ("/rest/v1//todos", "todos"),
    ("/rest/v1/rpc//search", "rpc/search"),
    ("/rest/v1/./todos", "todos"),
    ("/rest/v1/x/../todos", "todos"),
    ("/rest/v1/rpc/x/../../todos", "todos"),
    # unreserved escapes are decoded by routes; every other escape by the matcher, as WAI does
    ("/rest/v1/tod%6Fs", "todos"),
    ("/rest/v1/%74%6F%64%6F%73", "todos"),
    ("/rest/v1/%72pc/search", "rpc/search"),
    ("/rest/v1/my%20table", "my table"),
    ("/rest/v1/caf%C3%A9", "café"),
    ("/rest/v1/%25", "%"),  # %25 is a literal %: decoded once, never twice
    ("/rest/v1/%2574odos", "%74odos"),
    ("/rest/v1/a+b", "a+b"),  # + is no space in a path
    ("/rest/v1/%ff", "\ufffd"),  # not UTF-8: replaced, as PostgREST's lenient decoding does
    ("/rest/v1/%zz", "%zz"),  # not an escape: kept
    # every character is part of the name (PostgREST quotes it): these are other tables
    ("/rest/v1/Todos", "Todos"),
    ("/rest/v1/TODOS", "TODOS"),
    ("/rest/v1/todos;x", "todos;x"),
    ("/rest/v1/todos;", "todos;"),
    ("/rest/v1/todos%3B", "todos;"),
    ("/rest/v1/todos.json", "todos.json"),
    ("/rest/v1/public.todos", "public.todos"),
    ("/rest/v1/todos%20", "todos "),
    ("/rest/v1/%20todos", " todos"),
    ("/rest/v1/todos%09", "todos\t"),
    ("/rest/v1/*", "*"),
    ("/rest/v1/rpc", "rpc"),  # a table named rpc
    ("/rest/v1/RPC", "RPC"),
    ("/rest/v1/rpc/Search", "rpc/Search"),
    ("/rest/v1/rpc/search;x", "rpc/search;x"),
    # not a resource: PostgREST answers 404 (PGRST125) to all of these
    ("/rest/v1/todos/", None),
    ("/rest/v1/todos/1", None),
    ("/rest/v1/rpc/", None),
    ("/rest/v1/rpc/search/", None),
    ("/rest/v1/rpc/a/b", None),
    ("/rest/v1/RPC/search", None),
    ("/rest/v1/%52PC/search", None),
    ("/rest/v1/rpc%20/search", None),
    ("/rest/v1/ rpc/search", None),
    ("/rest/v1/todos/.", None),  # the trailing dot segment leaves a trailing slash
])
def test_the_name_of_a_path(raw, name):
    route, path = upstream_path(raw)
    assert route is routes.REST
    assert resource_name(path) == name


@pytest.mark.parametrize("raw", [
    "/rest/v1/rpc%2Fsearch", "/rest/v1/rpc%2fsearch", "/rest/v1/todos%5C..", "/rest/v1/%2e%2e/admin", "/rest/v1/a%00",
    "/rest/v1/..%2F..%2Fsecrets",
])
def test_spellings_that_would_change_the_resource_are_refused_before(raw):
    with pytest.raises(routes.BadPath):
        routes.normalize(raw)


@pytest.mark.parametrize(("raw", "route"), [
    ("/rest/v1", routes.REST_ROOT), ("/rest/v1/", routes.REST_ROOT), ("/rest/v1//", routes.REST_ROOT),
    ("/rest/v1/.", routes.REST_ROOT), ("/rest/v1/todos/..", routes.REST_ROOT), ("/rest/v1/%2E", None),
    ("/graphql/v1", routes.GRAPHQL), ("/graphql/v1/", routes.GRAPHQL), ("/graphql//v1", routes.GRAPHQL),
])
def test_the_root_and_graphql_are_their_own_routes(raw, route):
    if route is None:
        with pytest.raises(routes.BadPath):
            routes.normalize(raw)
        return
    assert upstream_path(raw)[0] is route


@pytest.mark.parametrize(("path", "profile", "name"), [
    ("/todos", None, "todos"),
    ("/todos", b"public", "todos"),  # Supabase's first schema: the bare name
    ("/todos", b"storage", "storage.todos"),
    ("/objects", b"storage", "storage.objects"),
    ("/rpc/search", b"storage", "rpc/storage.search"),
    ("/rpc/search", b"public", "rpc/search"),
    ("/todos", b"Public", "Public.todos"),  # PostgREST compares exactly: not public
    ("/todos", b"public ", "todos"),  # trimmed, as PostgREST's server trims header values
    ("/todos", b" storage\t", "storage.todos"),
    ("/todos", b"pub lic", "pub lic.todos"),
    ("/todos", b"", None),
    ("/todos", b"\xff", None),
    ("/todos", AMBIGUOUS, None),
    ("/rpc/graphql", b"graphql_public", GRAPHQL),  # the GraphQL endpoint itself
    ("/rpc/resolve", b"graphql", GRAPHQL),
    ("/rpc/graphql", None, "rpc/graphql"),  # a function of public that happens to be called graphql
    ("/graphql", b"graphql_public", "graphql_public.graphql"),
])
def test_the_schema_comes_from_the_profile_header(path, profile, name):
    assert resource_name(path, profile) == name


@pytest.mark.parametrize(("method", "headers", "profile"), [
    ("GET", [(b"accept-profile", b"storage")], b"storage"),
    ("HEAD", [(b"accept-profile", b"storage")], b"storage"),
    ("OPTIONS", [(b"accept-profile", b"storage")], b"storage"),
    ("GET", [(b"content-profile", b"storage")], None),  # PostgREST reads Accept-Profile on a GET
    ("POST", [(b"content-profile", b"storage")], b"storage"),
    ("PATCH", [(b"content-profile", b"storage")], b"storage"),
    ("PUT", [(b"content-profile", b"storage")], b"storage"),
    ("DELETE", [(b"content-profile", b"storage")], b"storage"),
    ("POST", [(b"accept-profile", b"storage")], None),
    ("post", [(b"accept-profile", b"storage")], b"storage"),  # methods are case-sensitive, as for PostgREST
    ("GET", [(b"accept-profile", b"public"), (b"accept-profile", b"storage")], AMBIGUOUS),
    ("GET", [(b"accept-profile", b"public"), (b"x", b"y"), (b"accept-profile", b"public")], AMBIGUOUS),
    ("GET", [], None),
])
def test_which_profile_header_counts(method, headers, profile):
    assert profile_header(headers, method) is profile or profile_header(headers, method) == profile


@pytest.mark.parametrize("entry", [
    "todos", "public_profiles", "rpc/search_*", "*", "rpc/*", "storage.*", "storage.objects", "rpc/storage.search",
    "graphql", "my table", "café", "Todos", "a" * 200,
])
def test_good_entries(entry):
    assert parse_entry(entry) == entry


@pytest.mark.parametrize("entry", [
    "", " todos", "todos ", "a/b", "rpc/a/b", "/todos", "todos/", "rpc/", "x\n", "x\x00", "a" * 201, 5, None,
    "RPC/x/y", "rpc//x",
])
def test_bad_entries(entry):
    with pytest.raises(ValueError):
        parse_entry(entry)


ENTRIES = ["todos", "public_profiles", "rpc/search_*", "storage.avatars_*", "a*b"]


@pytest.mark.parametrize(("name", "allowed"), [
    ("todos", True), ("public_profiles", True), ("rpc/search_", True), ("rpc/search_items", True),
    ("storage.avatars_2024", True), ("ab", True), ("axxb", True),
    ("todos2", False), ("todo", False), ("xtodos", False), ("Todos", False), ("todos;", False), ("todos ", False),
    ("rpc/todos", False), ("rpc/search", False), ("rpc/Search_x", False), ("search_items", False),
    ("rpc/search_x/y", False), ("rpc/search_x.y", False),  # * never crosses / or .
    ("rpc/storage.search_x", False), ("storage.todos", False), ("public.todos", False), ("a.b", False),
    ("a/b", False), ("storage.avatars_x.y", False),
    (GRAPHQL, False), (None, False),
])
def test_matching(name, allowed):
    assert ResourceSet(ENTRIES).matches(name) is allowed


def test_graphql_only_by_its_literal_entry():
    assert ResourceSet(["graphql"]).matches(GRAPHQL)
    assert ResourceSet(["graphql"]).matches("graphql")  # a table of that name, too
    for entries in (["*"], ["graph*"], ["*ql"], ["rpc/*"], ["*.*"], ["rpc/*.*"]):
        assert not ResourceSet(entries).matches(GRAPHQL), entries


def test_star_is_every_table_of_public_and_nothing_else():
    star = ResourceSet(["*"])
    assert star.matches("todos") and star.matches("") and star.matches("*")
    assert not star.matches("rpc/search") and not star.matches("storage.objects") and not star.matches(GRAPHQL)


def test_answers_are_remembered_and_bounded():
    s = ResourceSet(["todos"])
    assert s.matches_path("/todos", None) is True
    assert s.matches_path("/todos", b"storage") is False
    assert s.matches_path("/todos/", None) is None
    for i in range(3000):
        s.matches_path(f"/t{i}", None)
    assert len(s._seen) <= 1024


REST, ROOT, GQL = routes.REST, routes.REST_ROOT, routes.GRAPHQL


def check(rules: KeyRules, method: str, route: routes.Route, path: str, headers=()) -> str | None:
    try:
        rules.check(method, route, path, list(headers))
    except errors.Refusal as r:
        return r.code
    return None


@pytest.mark.parametrize(("method", "route", "path", "headers", "code"), [
    ("GET", REST, "/todos", [], None),
    ("HEAD", REST, "/todos", [], None),
    ("POST", REST, "/rpc/search_x", [], None),
    ("GET", REST, "/rpc/search_x", [], None),
    ("GET", REST, "/secrets", [], "FORBIDDEN_RESOURCE"),
    ("GET", REST, "/todos/", [], "FORBIDDEN_RESOURCE"),
    ("GET", REST, "/todos", [(b"accept-profile", b"private")], "FORBIDDEN_RESOURCE"),
    ("GET", REST, "/todos", [(b"accept-profile", b"public")], None),
    ("GET", REST, "/todos", [(b"content-profile", b"private")], None),  # not read on a GET
    ("POST", REST, "/todos", [(b"content-profile", b"private")], "FORBIDDEN_RESOURCE"),
    ("GET", REST, "/todos", [(b"accept-profile", b"public"), (b"accept-profile", b"private")], "FORBIDDEN_RESOURCE"),
    ("POST", REST, "/rpc/graphql", [(b"content-profile", b"graphql_public")], "FORBIDDEN_RESOURCE"),
    ("GET", ROOT, "/", [], "FORBIDDEN_RESOURCE"),
    ("POST", GQL, "/rpc/graphql", [], "FORBIDDEN_RESOURCE"),
    ("GET", routes.STORAGE, "/object/x", [], None),  # resources are PostgREST's only
])
def test_a_key_reaches_only_its_resources(method, route, path, headers, code):
    assert check(rules_for(["todos", "rpc/search_*"], None), method, route, path, headers) == code


def test_graphql_in_the_list_opens_graphql_and_the_root():
    rules = rules_for(["todos", "graphql"], None)
    assert check(rules, "POST", GQL, "/rpc/graphql") is None
    assert check(rules, "GET", ROOT, "/") is None
    assert check(rules, "POST", REST, "/rpc/graphql", [(b"content-profile", b"graphql_public")]) is None
    assert check(rules, "GET", REST, "/other") == "FORBIDDEN_RESOURCE"


@pytest.mark.parametrize(("allowed", "method", "code"), [
    (["GET", "HEAD"], "GET", None), (["GET", "HEAD"], "HEAD", None), (["GET"], "HEAD", None),  # GET allows HEAD
    (["HEAD"], "GET", "FORBIDDEN_METHOD"), (["GET", "HEAD"], "POST", "FORBIDDEN_METHOD"),
    (["GET", "HEAD"], "PATCH", "FORBIDDEN_METHOD"), (["GET", "HEAD"], "PUT", "FORBIDDEN_METHOD"),
    (["GET", "HEAD"], "DELETE", "FORBIDDEN_METHOD"), (["GET", "HEAD"], "OPTIONS", "FORBIDDEN_METHOD"),
    (["GET", "HEAD"], "get", "FORBIDDEN_METHOD"), (["GET", "HEAD"], "PROPFIND", "FORBIDDEN_METHOD"),
    (["POST"], "POST", None), (["POST"], "GET", "FORBIDDEN_METHOD"),
])
def test_methods(allowed, method, code):
    rules = rules_for(None, allowed)
    assert check(rules, method, REST, "/anything") == code
    assert check(rules, method, routes.FUNCTIONS, "/hello") == code  # on every route


def test_methods_are_checked_before_resources_and_may_send_follows_post():
    rules = rules_for(["todos"], ["GET"])
    assert check(rules, "POST", REST, "/secrets") == "FORBIDDEN_METHOD"
    assert not rules.may_send and rules_for(None, ["GET", "POST"]).may_send and rules_for(["x"], None).may_send


def test_keys_without_rules_have_none_and_equal_lists_share_one():
    assert rules_for(None, None) is None and rules_for([], []) is None
    assert rules_for(["a"], ["GET"]) is rules_for(["a"], ["GET"])


@pytest.mark.parametrize(("method", "route", "path", "headers", "refused"), [
    ("GET", REST, "/todos", [], False),
    ("GET", REST, "/secrets", [], True),
    ("POST", REST, "/secrets", [], True),
    ("HEAD", REST, "/secrets", [], True),
    ("GET", REST, "/secrets_v2", [], False),
    ("GET", REST, "/Secrets", [], False),  # another table: PostgREST would not serve secrets there
    ("GET", REST, "/secrets;", [], False),
    ("GET", REST, "/secrets/", [], True),  # no resource: refused, fail closed
    ("GET", REST, "/a/b/c", [], True),
    ("POST", REST, "/rpc/admin_reset", [], True),
    ("GET", REST, "/rpc/admin_x", [], True),
    ("POST", REST, "/rpc/public_fn", [], False),
    ("GET", REST, "/objects", [(b"accept-profile", b"storage")], True),
    ("GET", REST, "/objects", [], False),
    ("POST", REST, "/objects", [(b"accept-profile", b"storage")], False),  # Content-Profile counts on a POST
    ("POST", REST, "/objects", [(b"content-profile", b"storage")], True),
    ("GET", REST, "/todos", [(b"accept-profile", b"public"), (b"accept-profile", b"public")], True),
    ("POST", REST, "/rpc/graphql", [(b"content-profile", b"graphql_public")], True),
    ("POST", GQL, "/rpc/graphql", [], True),  # GraphQL reaches every table
    ("GET", GQL, "/rpc/graphql", [], True),
    ("GET", ROOT, "/", [], True),
])
def test_the_denied_list(method, route, path, headers, refused):
    denied = DeniedResources(["secrets", "rpc/admin_*", "storage.objects"])
    try:
        denied.check(method, route, path, list(headers))
    except errors.Refusal as r:
        assert refused and (r.status, r.code) == (403, "FORBIDDEN_RESOURCE")
        assert b"secrets" not in r.body and b"admin" not in r.body  # the list is never echoed
    else:
        assert not refused

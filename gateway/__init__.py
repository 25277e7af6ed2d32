"""A self-hostable API key gateway for Supabase.

A request is admitted by ``serve`` (``request``, ``routes``), its key found and identified in
``keys``, decided by ``decide`` (``auth`` and ``rules``), a JWT minted by ``keys.tokens``, and it
is forwarded by ``upstream`` and recorded by ``observe``. See docs/layout.md.
"""

__version__ = "0.1.0"

# A module of the request path: compiled (mypyc) with the rest of it, or not at all.
_REQUEST_PATH_PROBE = "gateway.decide"


def version() -> str:
    """The installed distribution's version (this package's own when it is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("supabase-api-gateway")
    except metadata.PackageNotFoundError:
        return __version__


def build_info() -> str:
    """Which build runs: "pure Python", or "compiled request path (mypyc)" when the request-path
    modules are extension modules. Found from where ``gateway.decide`` would load from, without
    importing it (the same file as its ``__file__``)."""
    from importlib.util import find_spec

    spec = find_spec(_REQUEST_PATH_PROBE)
    origin = (spec.origin or "") if spec is not None else ""
    return "pure Python" if origin.endswith((".py", ".pyc")) else "compiled request path (mypyc)"

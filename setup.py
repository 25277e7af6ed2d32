"""The build: the request path compiled with mypyc where a C compiler works, pure Python elsewhere.

The same ``.py`` files are the source of both builds (pyproject.toml says everything else about
the package). ``GATEWAY_BUILD`` chooses:

- unset or ``auto``: compiled when a C compiler and Python's headers work, else pure Python (and
  a line says why);
- ``compiled``: compiled, or the build fails (the Docker image, scripts/test-compiled);
- ``pure``: pure Python.

An editable install (``pip install -e .``) is always pure: a compiled module next to its ``.py``
would shadow every later edit of it. ``gateway --version`` says which build runs.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import tempfile

from setuptools import setup

# The request path: parsing the request head, routing, the decision, limits and quotas, the key
# table and the minted JWTs, the upstream head and the response head, the fast path's
# bookkeeping. Compiled together or not at all (gateway.build_info probes gateway.decide).
REQUEST_PATH = [
    "gateway/routes.py", "gateway/request.py", "gateway/auth.py", "gateway/errors.py", "gateway/responses.py",
    "gateway/headers.py", "gateway/decide.py", "gateway/clock.py", "gateway/ids.py",
    "gateway/keys/apikeys.py", "gateway/keys/entries.py", "gateway/keys/keytable.py", "gateway/keys/tokens.py",
    "gateway/rules/browser.py", "gateway/rules/limits.py", "gateway/rules/window.py", "gateway/rules/clientip.py",
    "gateway/rules/origins.py", "gateway/rules/restrictions.py", "gateway/rules/keyrules.py",
    "gateway/rules/resources.py", "gateway/rules/quota.py", "gateway/rules/guard.py", "gateway/rules/blocks.py",
    "gateway/rules/network.py",
    "gateway/upstream/services.py", "gateway/upstream/connection.py", "gateway/upstream/pool.py",
    "gateway/upstream/attempts.py", "gateway/upstream/messages.py",
    "gateway/serve/fastpath.py", "gateway/serve/coalesce.py",
    "gateway/observe/__init__.py", "gateway/observe/accesslog.py", "gateway/observe/metrics.py",
    "gateway/observe/redact.py",
]


def say(line: str) -> None:
    print(f"supabase-api-gateway: {line}", file=sys.stderr)


def compiler_problem() -> str | None:
    """Why a C extension cannot be built here (None: it can): a tiny one is compiled."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"Python's headers are not installed (no Python.h in {include})"
    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("#include <Python.h>\nint probe(void) { return Py_IsInitialized(); }\n")
        try:
            compiler.compile([source], output_dir=tmp, include_dirs=[include])
        except Exception as e:  # CompileError, or no compiler at all
            return f"no working C compiler ({type(e).__name__})"
    return None


def ext_modules() -> list:
    build = os.environ.get("GATEWAY_BUILD") or "auto"
    if build not in ("auto", "compiled", "pure"):
        raise SystemExit(f"GATEWAY_BUILD must be auto, compiled or pure, not {build!r}")
    if build == "pure" or "editable_wheel" in sys.argv or "develop" in sys.argv:
        return []
    if "bdist_wheel" not in sys.argv and "build_ext" not in sys.argv and "build" not in sys.argv:
        return []  # metadata, sdist: nothing is compiled
    problem = compiler_problem()
    if problem is None:
        try:
            from mypyc.build import mypycify
        except ImportError:
            problem = "mypyc is not installed"
    if problem is not None:
        if build == "compiled":
            raise SystemExit(f"GATEWAY_BUILD=compiled, but {problem}")
        say(f"{problem}: installing the pure-Python build")
        return []
    say(f"compiling the request path ({len(REQUEST_PATH)} modules) with mypyc; GATEWAY_BUILD=pure skips it")
    return mypycify(REQUEST_PATH, opt_level="3", debug_level="0", group_name="gateway")


setup(ext_modules=ext_modules())

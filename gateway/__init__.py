"""A self-hostable API key gateway for Supabase.

A request is admitted by ``serve`` (``request``, ``routes``), its key found and identified in
``keys``, decided by ``decide`` (``auth`` and ``rules``), a JWT minted by ``keys.tokens``, and it
is forwarded by ``upstream`` and recorded by ``observe``. See docs/layout.md.
"""

__version__ = "0.1.0"

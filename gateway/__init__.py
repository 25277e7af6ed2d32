"""A self-hostable API key gateway for Supabase.

The request path reads top to bottom: ``routes`` finds the route, ``apikeys`` identifies the
key, ``auth`` decides, ``tokens`` mints, ``proxy`` forwards.
"""

__version__ = "0.1.0"

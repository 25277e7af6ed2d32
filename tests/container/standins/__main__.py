"""``python -m tests.container.standins SERVICE``: rest, auth, realtime, storage, functions or supavisor."""

import sys

from tests.container.standins.servers import HTTP, main

if len(sys.argv) != 2 or sys.argv[1] not in (*HTTP, "supavisor"):
    sys.exit(f"usage: python -m tests.container.standins {{{','.join((*HTTP, 'supavisor'))}}}")
main(sys.argv[1])

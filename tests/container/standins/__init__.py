"""Stand-ins for the self-hosted stack's services that cannot be built here, run in containers
by the container tests (see servers.py; the image: tests/container/images/standins)."""

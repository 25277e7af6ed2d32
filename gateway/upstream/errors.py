"""What can go wrong between the gateway and an upstream, and the one place where it becomes the
client's answer (as httpx's ``map_httpcore_exceptions`` is the one place where transport errors
become httpx's). Messages are fixed text: never a URL, an address or a header."""

from __future__ import annotations

from gateway import errors


class UpstreamError(Exception):
    """The upstream could not be reached or broke the exchange."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer, or stopped answering, in time."""


class UpstreamConnectError(UpstreamError):
    """No connection could be made: nothing of the request was sent (safe to try elsewhere)."""


class UpstreamConnectTimeout(UpstreamConnectError, UpstreamTimeout):
    pass


class UpstreamClosedIdle(UpstreamError):
    """A kept-alive connection the upstream had closed as the request went out, before a byte of
    an answer: the keep-alive race. The request never reached the service; it may be sent again
    on a fresh connection if its body can be."""


class UpstreamRefused(UpstreamError):
    """The upstream answered a WebSocket handshake with an HTTP status instead."""

    def __init__(self, status: int) -> None:
        super().__init__("upstream refused the WebSocket")
        self.status = status


def refusal_for(e: UpstreamError, service: str) -> errors.Refusal:
    """The client's answer to ``e`` (502 unreachable or refused, 504 timed out)."""
    if isinstance(e, UpstreamTimeout):
        return errors.UPSTREAM_TIMEOUT(f"The {service} service did not answer in time.")
    if isinstance(e, UpstreamRefused):
        return errors.UPSTREAM_REFUSED_WEBSOCKET(f"The {service} service answered {e.status}.")
    return errors.UPSTREAM_UNAVAILABLE(f"The {service} service could not be reached.")

"""The run profile of ``newsclf serve``: uvicorn with h11 and a protocol that bounds what a slow client can hold.

uvicorn alone has no deadline for a request head: a connection that sends nothing, or one header byte a second,
stays open for ever, and its keep-alive timer is reset by every byte. ``GuardedH11Protocol`` adds:

- a **head deadline**: a connection must deliver a complete request head within ``header_timeout_s`` of opening
  (or of its previous answer); otherwise it is closed;
- a **connection cap**: past ``max_connections`` open connections, the oldest connection still sending its head is
  closed to make room, so slow clients cannot take every file descriptor while ordinary ones keep being served.

h11 rather than httptools: h11 enforces a size limit on the request head (``max_header_bytes``); httptools
accepted a 256 MiB header. The body has its own deadline in ``BodyGuardMiddleware``. Why these numbers: README,
"Traffic limits".
"""

from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from serving.settings import ServiceSettings

# Descriptors kept for the cache, the model files, logs and outgoing connections.
RESERVED_FDS = 256


def connection_cap(settings: ServiceSettings) -> int:
    """The setting, kept under the process's soft open-file limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections
    return max(16, min(settings.max_connections, soft - RESERVED_FDS))


class GuardedH11Protocol(H11Protocol):
    header_timeout_s = 10.0
    max_connections = 2048
    max_header_bytes = 32 * 1024
    # Connections still sending a request head, oldest first (shared by the server's connections).
    waiting: OrderedDict[GuardedH11Protocol, None] = OrderedDict()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()
        self._make_room()
        # h11 limits only a head still incomplete in its buffer; one that arrives whole in a read is measured here.
        next_event = self.conn.next_event
        limit = self.max_header_bytes

        def bounded_next_event():
            event = next_event()
            if isinstance(event, h11.Request) and \
                    len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers) > limit:
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            return event

        self.conn.next_event = bounded_next_event

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout_s, self._head_too_slow)
        self.waiting[self] = None

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None
        self.waiting.pop(self, None)

    def _make_room(self) -> None:
        while len(self.connections) > self.max_connections and self.waiting:
            oldest = next(iter(self.waiting))
            if oldest is self:
                break
            oldest._head_too_slow()

    def _head_too_slow(self) -> None:
        self._disarm()
        # Still no complete head (h11 keeps the client IDLE until it has one): nothing is lost by closing.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the head is complete: the body has its own deadline

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head, on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def run(app, settings: ServiceSettings) -> None:
    """Serve ``app`` with the service's connection settings."""
    GuardedH11Protocol.header_timeout_s = settings.header_timeout_s
    GuardedH11Protocol.max_connections = connection_cap(settings)
    GuardedH11Protocol.max_header_bytes = settings.max_header_bytes
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=settings.log_level,
        access_log=False,  # the service logs one line per request itself
        http=GuardedH11Protocol,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=int(max(1, settings.keep_alive_s)),
        timeout_graceful_shutdown=30,
        backlog=2048,
    )

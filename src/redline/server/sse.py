"""Server-Sent Events: events, alerts and kills pushed to clients as they happen.

The hub subscribes to the monitor's bus only while someone is listening, so a server with no
stream open adds nothing to ``record()``. Each event is encoded once, whoever receives it; each
client has a bounded queue: when a slow client lags, its oldest messages are dropped and counted,
and the next thing it receives says how many (``event: dropped``). Nothing a client does can block
the thread that recorded the event: offering a message is a deque append and, at most once per
wake-up, a ``call_soon_threadsafe``.

Frames (``text/event-stream``)::

    event: hello      data: {"server_time": ..., "heartbeat_seconds": ...}   (first)
    event: event      data: <an event as JSON>                                (ordinary types)
    event: kill | revive | alert | anomaly   data: <the governance event>
    event: dropped    data: {"dropped": <total so far>}
    : heartbeat                                                                (a comment)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection
from typing import Final

import msgspec

from redline.events import AgentEvent

__all__ = ["StreamClient", "StreamHub"]

#: Event types sent under their own SSE event name; everything else is ``event``.
NAMED_TYPES: Final = frozenset({"kill", "revive", "alert", "anomaly"})

_encode = msgspec.json.Encoder().encode


def frame(name: str, payload: bytes) -> bytes:
    """One SSE message (the payload is compact JSON: it holds no newline)."""
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


class StreamClient:
    """One connected stream: its filters, its bounded queue and its wake-up."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        agent: str | None,
        types: Collection[str] | None,
        maxsize: int,
    ) -> None:
        self._loop = loop
        self.agent = agent
        self.types = frozenset(types) if types else None
        self.maxsize = maxsize
        self.queue: deque[bytes] = deque()
        self.dropped = 0
        self.delivered = 0
        self._reported = 0
        self._pending = False
        self._wake = asyncio.Event()
        self.closed = False

    def wants(self, event: AgentEvent) -> bool:
        """Whether this client's filters let ``event`` through."""
        if self.agent is not None and event.agent not in (self.agent, "*"):
            return False
        return self.types is None or event.event_type in self.types

    def offer(self, message: bytes) -> None:
        """Queue a message (any thread). Drops the oldest when full; never blocks."""
        queue = self.queue
        if len(queue) >= self.maxsize:
            with contextlib.suppress(IndexError):
                queue.popleft()
                self.dropped += 1
        queue.append(message)
        if not self._pending:
            self._pending = True
            self._wake_up()

    def _wake_up(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is closed: the server is gone
            self.closed = True

    def _closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        """End the stream (any thread)."""
        self.closed = True
        self._wake_up()

    async def frames(self, heartbeat: float, hello: bytes) -> AsyncIterator[bytes]:
        """The bytes to send, until the hub closes or the client goes away."""
        yield b"retry: 2000\n\n" + hello
        while not self._closing():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=heartbeat)
            except asyncio.TimeoutError:
                yield b": heartbeat\n\n"
                continue
            if self._closing():
                return
            self._wake.clear()
            self._pending = False  # before draining: an offer from now on wakes us again
            out: list[bytes] = []
            queue = self.queue
            while True:
                try:
                    out.append(queue.popleft())
                except IndexError:
                    break
            if self.dropped != self._reported:
                self._reported = self.dropped
                out.append(frame("dropped", _encode({"dropped": self.dropped})))
            if out:
                self.delivered += len(out)
                yield b"".join(out)


class StreamHub:
    """Fans bus events out to the connected :class:`StreamClient` s."""

    def __init__(
        self,
        subscribe: Callable[[Callable[[AgentEvent], object]], Callable[[], None]],
        *,
        queue_size: int = 1000,
        heartbeat_seconds: float = 15.0,
    ) -> None:
        self._subscribe = subscribe
        self._unsubscribe: Callable[[], None] | None = None
        self._clients: tuple[StreamClient, ...] = ()
        self._lock = threading.Lock()
        self.queue_size = queue_size
        self.heartbeat_seconds = heartbeat_seconds
        self.closed = False

    @property
    def clients(self) -> int:
        """How many streams are open."""
        return len(self._clients)

    @property
    def dropped(self) -> int:
        """Messages dropped for lagging clients that are still connected."""
        return sum(c.dropped for c in self._clients)

    def connect(
        self, *, agent: str | None = None, types: Collection[str] | None = None
    ) -> StreamClient:
        """A new client on the running loop (subscribes to the bus for the first one)."""
        client = StreamClient(
            asyncio.get_running_loop(), agent=agent, types=types, maxsize=self.queue_size
        )
        with self._lock:
            if self.closed:
                client.closed = True
                return client
            self._clients = (*self._clients, client)
            if self._unsubscribe is None:
                self._unsubscribe = self._subscribe(self._on_event)
        return client

    def disconnect(self, client: StreamClient) -> None:
        """Forget a client (unsubscribes from the bus with the last one)."""
        client.closed = True
        with self._lock:
            self._clients = tuple(c for c in self._clients if c is not client)
            if not self._clients and self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

    def hello(self) -> bytes:
        """The first frame of every stream."""
        return frame(
            "hello",
            _encode({"server_time": time.time(), "heartbeat_seconds": self.heartbeat_seconds}),
        )

    def _on_event(self, event: AgentEvent) -> None:
        """Bus handler: runs on the recording thread; encodes once, offers to each client."""
        message: bytes | None = None
        for client in self._clients:
            if client.wants(event):
                if message is None:
                    name = event.event_type if event.event_type in NAMED_TYPES else "event"
                    body = event.to_dict()
                    body.setdefault("event_type", event.event_type)  # omitted when "action"
                    message = frame(name, _encode(body))
                client.offer(message)

    def close(self) -> None:
        """End every stream (on shutdown, so the server need not wait for them)."""
        with self._lock:
            self.closed = True
            clients, self._clients = self._clients, ()
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
        for client in clients:
            client.close()

"""Watching an HTTP response body go by, for the SDK-client integrations (OpenAI, Anthropic).

The usage of a model call is in its response body: one JSON document, or the last events of a
server-sent-event stream. The agent must get the body exactly as the server sent it, when it
asks for it and not later, so nothing here reads ahead: :class:`TeeStream` /
:class:`AsyncTeeStream` replace the response's byte stream and hand every chunk the SDK reads to
a :class:`BodyWatcher` on the way, and the watcher calls ``on_done`` once, when the body ended
or was closed. A JSON body is kept up to :data:`JSON_LIMIT` bytes; of a stream only the
``data:`` lines that mention ``usage`` or ``model`` are parsed, so a long stream costs a
substring test per line.

Nothing here raises into the agent: a watcher that fails stops watching (``on_done`` then gets
what it has).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2

__all__ = ["JSON_LIMIT", "AsyncTeeStream", "BodyWatcher", "TeeStream", "estimate_tokens"]

#: Largest JSON response body parsed for usage (bytes); bigger bodies are recorded without it.
JSON_LIMIT = 8 * 1024 * 1024

#: What an ``on_done`` gets: the JSON body (a dict), the stream's usage-bearing events (a list of
#: dicts, in order), or ``None`` when the body could not be read.
Body = dict[str, Any] | list[dict[str, Any]] | None


def estimate_tokens(body: bytes | None) -> int | None:
    """A rough input-token estimate for a budget reservation: about four bytes a token."""
    return None if not body else max(1, len(body) // 4)


class BodyWatcher:
    """Collects a response body's usage as its chunks pass, then calls ``on_done`` once."""

    __slots__ = ("_broken", "_buf", "_decoder", "_done", "_events", "_on_done", "_size", "_sse")

    def __init__(self, response: httpx2.Response, on_done: Callable[[Body], None]) -> None:
        ctype = response.headers.get("content-type", "")
        self._sse = "text/event-stream" in ctype
        self._on_done = on_done
        self._done = False
        self._broken = False
        self._buf = bytearray()
        self._events: list[dict[str, Any]] = []
        self._size = 0
        # A fresh decoder of our own: the response caches the one the SDK will use.
        self._decoder = (
            httpx2.Response(200, headers={"content-encoding": enc})._get_content_decoder()
            if (enc := response.headers.get("content-encoding"))
            else None
        )

    def feed(self, raw: bytes) -> None:
        """Take one raw chunk (as the server sent it; decompressed here when it must be)."""
        if self._broken or self._done:
            return
        try:
            if self._decoder is None:
                self._take(raw)
            else:
                for part in self._decoder.decode(raw):
                    self._take(part)
        except Exception:
            self._broken = True

    def feed_decoded(self, data: bytes) -> None:
        """Take a body the client has decoded already (``response.content``)."""
        if self._broken or self._done:
            return
        try:
            self._decoder = None
            self._take(data)
        except Exception:
            self._broken = True

    def finish(self, error: BaseException | None = None) -> None:
        """The body ended (or was closed, or failed): hand over what was seen, once."""
        if self._done:
            return
        self._done = True
        body: Body = None
        if not self._broken and error is None:
            try:
                if self._decoder is not None:
                    for part in self._decoder.flush():
                        self._take(part)
                if self._sse:
                    self._line(bytes(self._buf))
                    body = self._events
                elif self._buf:
                    parsed = json.loads(self._buf)
                    body = parsed if isinstance(parsed, dict) else None
            except Exception:
                body = self._events if self._sse else None
        self._buf = bytearray()
        self._on_done(body)

    def _take(self, data: bytes) -> None:
        if not self._sse:
            self._size += len(data)
            if self._size > JSON_LIMIT:
                self._broken = True
                return
            self._buf += data
            return
        self._buf += data
        if b"\n" not in data:
            return
        *lines, rest = bytes(self._buf).split(b"\n")
        self._buf = bytearray(rest)
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:") or (b'"usage"' not in line and b'"model"' not in line):
            return
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            return
        parsed = json.loads(payload)
        if isinstance(parsed, dict):
            self._events.append(parsed)


class TeeStream(httpx2.SyncByteStream):
    """A response byte stream that shows every chunk to a :class:`BodyWatcher` on its way."""

    def __init__(self, inner: Any, watcher: BodyWatcher) -> None:
        self._inner = inner
        self._watcher = watcher

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._inner:
                self._watcher.feed(chunk)
                yield chunk
        except BaseException as exc:
            self._watcher.finish(exc)
            raise
        self._watcher.finish()

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._watcher.finish()


class AsyncTeeStream(httpx2.AsyncByteStream):
    """The async :class:`TeeStream`."""

    def __init__(self, inner: Any, watcher: BodyWatcher) -> None:
        self._inner = inner
        self._watcher = watcher

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                self._watcher.feed(chunk)
                yield chunk
        except BaseException as exc:
            self._watcher.finish(exc)
            raise
        self._watcher.finish()

    async def aclose(self) -> None:
        try:
            close = getattr(self._inner, "aclose", None)
            if close is not None:
                await close()
        finally:
            self._watcher.finish()

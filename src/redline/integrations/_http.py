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
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2

__all__ = [
    "JSON_LIMIT",
    "SMALL_BODY",
    "AsyncTeeStream",
    "BodyWatcher",
    "TeeStream",
    "estimate_tokens",
    "peek_json",
]

#: Largest JSON response body parsed for usage (bytes); bigger bodies are recorded without it.
JSON_LIMIT = 8 * 1024 * 1024

#: Bodies up to this size are parsed whole; larger ones only for the few keys a record needs
#: (a long conversation's request or a long completion costs a regex scan, not a full parse).
SMALL_BODY = 4096

_OBJECT_KEY = {key: re.compile(rb'"' + key.encode() + rb'"\s*:\s*\{') for key in ("usage", "error")}
_STRING_KEY = {
    key: re.compile(rb'"' + key.encode() + rb'"\s*:\s*"([^"\\]{0,256})"')
    for key in ("model", "stop_reason")
}
_INT_KEY = {
    key: re.compile(rb'"' + key.encode() + rb'"\s*:\s*(\d{1,12})')
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens")
}
_STREAM_KEY = re.compile(rb'"stream"\s*:\s*true')
_DECODER = json.JSONDecoder()


def peek_json(body: bytes) -> dict[str, Any]:
    """The keys a record needs from a JSON document, without parsing all of it when it is
    large: the first ``model`` / ``stop_reason`` string, the last ``usage`` / ``error`` object
    (top-level usage comes after the content), ``max_*tokens`` and ``stream``. Text inside JSON
    strings cannot match: its quotes are escaped."""
    if len(body) <= SMALL_BODY:
        parsed = json.loads(body)
        return parsed if isinstance(parsed, dict) else {}
    found: dict[str, Any] = {}
    for key, pattern in _STRING_KEY.items():
        m = pattern.search(body)
        if m:
            found[key] = m.group(1).decode("utf-8", "replace")
    for key, pattern in _INT_KEY.items():
        m = pattern.search(body)
        if m:
            found[key] = int(m.group(1))
    if _STREAM_KEY.search(body):
        found["stream"] = True
    for key, pattern in _OBJECT_KEY.items():
        matches = list(pattern.finditer(body))
        if matches:
            last = matches[-1]
            tail = body[last.end() - 1 :].decode("utf-8", "replace")
            with_obj = _DECODER.raw_decode(tail)[0]
            if isinstance(with_obj, dict):
                found[key] = with_obj
    return found


#: What an ``on_done`` gets: the JSON body (a dict), the stream's usage-bearing events (a list of
#: dicts, in order), or ``None`` when the body could not be read.
Body = dict[str, Any] | list[dict[str, Any]] | None


def estimate_tokens(body: bytes | None) -> int | None:
    """A rough input-token estimate for a budget reservation: about four bytes a token."""
    return None if not body else max(1, len(body) // 4)


class BodyWatcher:
    """Collects a response body's usage as its chunks pass, then calls ``on_done`` once."""

    __slots__ = (
        "_broken",
        "_buf",
        "_decoder",
        "_done",
        "_events",
        "_full",
        "_on_done",
        "_size",
        "_sse",
    )

    def __init__(
        self, response: httpx2.Response, on_done: Callable[[Body], None], *, full: bool = False
    ) -> None:
        """``full``: parse a JSON body whole whatever its size (to capture content)."""
        ctype = response.headers.get("content-type", "")
        self._sse = "text/event-stream" in ctype
        self._on_done = on_done
        self._full = full
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
                elif self._buf and self._full:
                    parsed = json.loads(self._buf)
                    body = parsed if isinstance(parsed, dict) else None
                elif self._buf:
                    body = peek_json(bytes(self._buf))
            except Exception:
                body = self._events if self._sse else None
        self._buf = bytearray()
        on_done, self._on_done = self._on_done, _nothing  # break the response <-> watcher cycle
        on_done(body)

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


def _nothing(body: Body) -> None:
    del body


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

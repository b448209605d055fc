"""Structured logs: logfmt (default) or JSON lines on stderr.

Call sites pass their fields as extra={"kv": {...}} so both formats carry them as keys.

Whoever can reach the port can make the server log, so what a client can cause is kept
small (the `Quieter` filter on the one handler):
- a client's malformed request (aiohttp logs it at error level, with a traceback) is a
  debug-level one-liner: `bad request` with the peer and the parser's complaint;
- client errors, every error-level record and whatever the libraries log (asyncio,
  aiohttp) are rate-limited per kind (logger, message template, exception type): at most
  BURST in WINDOW seconds, then the next one that gets through says how many were dropped
  (`suppressed=N`), and so does shutdown (`flush()`);
- no field is longer than MAX_FIELD characters.
Event-loop errors (e.g. accept() failing with EMFILE, which asyncio reports once per
pending connection) go through `loop_exception_handler`: one line each, no traceback for
OS errors, and the same rate limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections import OrderedDict
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
MAX_FIELD = 1000
BURST = 5
WINDOW = 60.0
#: kinds remembered at once (each is a few numbers); the least recent is forgotten
MAX_KINDS = 512


def shorten(text: str, limit: int = MAX_FIELD) -> str:
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text)} chars)"


def _fields(record: logging.LogRecord) -> dict[str, object]:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    fields: dict[str, object] = {
        "ts": f"{ts}.{int(record.msecs):03d}Z",
        "level": "warn" if record.levelno == logging.WARNING else record.levelname.lower(),
        "logger": record.name,
        "msg": shorten(record.getMessage()),
    }
    for key, value in getattr(record, "kv", {}).items():
        fields[key] = value if isinstance(value, int | float) else shorten(str(value))
    if record.exc_info:
        # a traceback is long but bounded by the rate limit; cut anyway
        fields["exc"] = shorten(logging.Formatter().formatException(record.exc_info), 8000)
    return fields


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\\\n\t'):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


def _client_error(record: logging.LogRecord) -> BaseException | None:
    """The client's fault behind an aiohttp server record (a request it could not parse)."""
    if record.name != "aiohttp.server" or not record.exc_info:
        return None
    exc = record.exc_info[1]
    return exc if isinstance(exc, HttpProcessingError | ConnectionError) else None


class Quieter(logging.Filter):
    """Demotes client errors to debug one-liners and rate-limits what a client can cause
    (see the module's docstring). `clock` is injectable for tests."""

    def __init__(self, level: int, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.level = level
        self.clock = clock
        # kind -> [window start, records let through in it, records dropped since the last]
        self._kinds: OrderedDict[tuple[str, str, str], list[float]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = _client_error(record)
        if exc is not None:
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else ""
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.msg, record.args = "bad request", ()
            record.exc_info, record.exc_text = None, None
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            record.kv = {"peer": peer, "err": shorten(str(reason), 200)}
        if record.levelno < self.level:
            return False
        own = record.name == "exporter" or record.name.startswith("exporter.")
        if own and exc is None and record.levelno < logging.ERROR:
            return True  # the exporter's own info and warnings: not limited
        kind = (record.name, str(record.msg), type(exc).__name__ if exc else _exc_name(record))
        now = self.clock()
        state = self._kinds.get(kind)
        if state is None or now - state[0] >= WINDOW:
            dropped = state[2] if state else 0
            state = [now, 0, dropped]
            self._kinds[kind] = state
        self._kinds.move_to_end(kind)
        while len(self._kinds) > MAX_KINDS:
            self._kinds.popitem(last=False)
        if state[1] >= BURST:
            state[2] += 1
            return False
        state[1] += 1
        if state[2]:
            record.kv = {**getattr(record, "kv", {}), "suppressed": int(state[2])}
            state[2] = 0
        return True

    def flush(self) -> list[tuple[tuple[str, str, str], int]]:
        """The kinds with records dropped since their last line, and how many (cleared)."""
        pending = [(kind, int(state[2])) for kind, state in self._kinds.items() if state[2]]
        for kind, _ in pending:
            self._kinds[kind][2] = 0
        return pending


def _exc_name(record: logging.LogRecord) -> str:
    return type(record.exc_info[1]).__name__ if record.exc_info else ""


_quieter: Quieter | None = None


def setup(level: str, fmt: str) -> None:
    global _quieter
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    _quieter = Quieter(LEVELS[level])
    handler.addFilter(_quieter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # aiohttp's access log is one line per scrape: keep it out of normal operation
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def flush() -> None:
    """At shutdown: say how many records of each kind the rate limit dropped last."""
    if _quieter is None:
        return
    for (logger, message, exc), dropped in _quieter.flush():
        fields = {"source": logger, "about": shorten(message, 200), "exc": exc}
        logging.getLogger("exporter").warning(
            "log lines dropped by the rate limit",
            extra={"kv": {**fields, "suppressed": dropped}},
        )


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's errors as one line each (asyncio's default prints the whole
    context, a traceback and reprs of the objects involved)."""
    message = str(context.get("message") or "error in the event loop")
    exc = context.get("exception")
    kv: dict[str, object] = {}
    exc_info: Any = None
    if isinstance(exc, BaseException):
        kv["err"] = shorten(f"{type(exc).__name__}: {exc}", 300)
        if not isinstance(exc, OSError):  # an OS error's traceback says nothing more
            exc_info = (type(exc), exc, exc.__traceback__)
    logging.getLogger("asyncio").error(message, extra={"kv": kv}, exc_info=exc_info)

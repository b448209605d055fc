"""What a client can make the log say: client errors are debug one-liners, repeated errors
are rate-limited and counted, and no field is unbounded."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import BadHttpMessage

from exporter import logs


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logs.Quieter, Clock]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.LogfmtFormatter())
    clock = Clock()
    quieter = logs.Quieter(logging.INFO, clock)
    handler.addFilter(quieter)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG)  # the filter decides, as it does in setup()
    try:
        yield stream, quieter, clock
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def bad_request() -> None:
    try:
        raise BadHttpMessage("Invalid character in Content-Length")
    except BadHttpMessage as e:
        logging.getLogger("aiohttp.server").exception(
            "Error handling request from %s", "192.0.2.1", exc_info=e
        )


def test_client_errors_are_debug_one_liners(
    captured: tuple[io.StringIO, logs.Quieter, Clock],
) -> None:
    stream, quieter, _ = captured
    for _ in range(5000):
        bad_request()
    assert stream.getvalue() == ""  # debug: not at info
    quieter.level = logging.DEBUG
    for _ in range(5000):
        bad_request()
    lines = stream.getvalue().splitlines()
    assert len(lines) == logs.BURST
    assert lines[0].endswith(
        'level=debug logger=aiohttp.server msg="bad request" peer=192.0.2.1 '
        'err="Invalid character in Content-Length"'
    )
    assert "Traceback" not in stream.getvalue()


def test_repeated_errors_are_summarised(captured: tuple[io.StringIO, logs.Quieter, Clock]) -> None:
    stream, _quieter, clock = captured
    log = logging.getLogger("exporter.web")
    for _ in range(1000):
        log.error("something broke", extra={"kv": {"err": "x"}})
    assert len(stream.getvalue().splitlines()) == logs.BURST
    clock.now += logs.WINDOW
    log.error("something broke", extra={"kv": {"err": "x"}})
    last = stream.getvalue().splitlines()[-1]
    assert last.endswith(f'msg="something broke" err=x suppressed={1000 - logs.BURST}')
    # the exporter's own info lines are not limited
    for _ in range(50):
        log.info("reloaded")
    assert stream.getvalue().count("msg=reloaded") == 50


def test_dropped_records_are_counted_at_shutdown(
    captured: tuple[io.StringIO, logs.Quieter, Clock],
) -> None:
    _stream, quieter, _ = captured
    for _ in range(logs.BURST + 7):
        logging.getLogger("asyncio").error("socket.accept() out of system resource")
    assert quieter.flush() == [(("asyncio", "socket.accept() out of system resource", ""), 7)]
    assert quieter.flush() == []


def test_fields_are_bounded(captured: tuple[io.StringIO, logs.Quieter, Clock]) -> None:
    stream, _, _ = captured
    logging.getLogger("exporter").warning("x" * 100_000, extra={"kv": {"err": "y" * 100_000}})
    assert len(stream.getvalue()) < 2 * logs.MAX_FIELD + 200


def test_loop_errors_are_one_line_without_an_os_traceback(
    captured: tuple[io.StringIO, logs.Quieter, Clock],
) -> None:
    stream, _, _ = captured
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(logs.loop_exception_handler)
        loop.call_exception_handler(
            {
                "message": "socket.accept() out of system resource",
                "exception": OSError(24, "Too many open files"),
                "socket": object(),
            }
        )
    finally:
        loop.close()
    assert stream.getvalue().splitlines() == [
        stream.getvalue().splitlines()[0].split(" level=")[0]
        + ' level=error logger=asyncio msg="socket.accept() out of system resource" '
        'err="OSError: [Errno 24] Too many open files"'
    ]

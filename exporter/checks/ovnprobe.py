"""One Kube-OVN endpoint, probed: is its process alive, and does it serve metrics?

Kube-OVN's controller (10660), monitor (10661) and cni daemon (10665) serve /livez,
/readyz and /healthz beside /metrics (kubeovn/kube-ovn pkg/metrics/server.go
ServeWithListener). The health paths answer whatever else is configured, and their
answers tell apart what /metrics alone cannot:

- ENABLE_METRICS=false leaves a health-only server, plain HTTP even under secure serving
  (pkg/metrics/servers.go NewHealthOnlyServer): /metrics answers 404;
- secure serving (--secure-serving) puts /metrics behind a bearer token checked with a
  TokenReview and a SubjectAccessReview (401 without a valid token, 403 when the account
  may not get /metrics) and exempts the health paths (pkg/metrics/server.go; the filter
  is controller-runtime pkg/metrics/filters/filters.go). The whole port is then HTTPS,
  with a certificate from a CA the process makes in memory (pkg/metrics/dynamic_cert_key.go).

So the health path is probed first, with no credentials and without verifying the
certificate (all it learns is whether the process answers; no token goes with it), on
the configured scheme and, when the peer speaks the other one, on that. Then /metrics
over the scheme that answered, with the configured TLS verification and the token (never
sent over plain HTTP when the configuration says https). Both share one deadline; every
body is bounded; redirects are followed only to the same scheme, host and port.
/metrics is read as it streams in (exporter/checks/promtext.py), in a thread.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urljoin, urlsplit

import aiohttp

from exporter.blocking import BlockingGate
from exporter.checks.promtext import Scan, TextReader
from exporter.model import CheckError

#: the path the kubelet's liveness probe asks (install.sh: livenessProbe /livez on each);
#: kube-ovn-cni's fails (503) when its CNI socket does not answer (pkg/util/health_check.go)
HEALTH_PATH = "/livez"
METRICS_PATH = "/metrics"
MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: what is kept of a body that is not parsed (a health answer, an error page)
HEAD_BYTES = 4096
CHUNK_BYTES = 64 * 1024
#: /metrics is handed to the parser thread in batches of at least this size (a thread per
#: batch, not per small chunk); the parser holds no more than a batch and one line
BATCH_BYTES = 64 * 1024
#: what Go's HTTP server answers plain HTTP with on a TLS port (net/http server.go)
HTTPS_SERVER_ANSWER = "HTTP request to an HTTPS server"


class State(StrEnum):
    """What one endpoint is doing. Only DEAD fails the requirement."""

    SERVING = "serving"  # alive; /metrics 200 with Prometheus text
    METRICS_DISABLED = "metrics_disabled"  # alive; /metrics 404 (ENABLE_METRICS=false)
    UNAUTHORIZED = "unauthorized"  # alive; /metrics 401 or 403 (secure serving)
    METRICS_FAILING = "metrics_failing"  # alive; /metrics fails otherwise
    DEAD = "dead"  # it listens, or must, and the health path does not answer 200
    ABSENT = "absent"  # nothing listens and nothing must: not scheduled on this node

    @property
    def alive(self) -> bool:
        return self not in (State.DEAD, State.ABSENT)


@dataclass(frozen=True)
class Answer:
    """One GET, as far as it got."""

    status: int = 0  # 0: no HTTP answer
    reason: str | None = None  # None: a complete answer
    head: str = ""  # the start of a body that was not parsed, for messages
    refused: bool = False  # the connection was refused: nothing listens at that address
    wrong_scheme: bool = False  # the peer speaks the other protocol (TLS or plain HTTP)
    certificate: bool = False  # the certificate could not be verified
    scan: Scan | None = None  # a 200 /metrics body, read

    def first_line(self) -> str:
        """The start of the body, printable, for a message."""
        line = self.head.strip().split("\n", 1)[0][:160]
        return "".join(c if c.isprintable() else "?" for c in line)


@dataclass(frozen=True)
class Plan:
    """How this run probes: the same for every endpoint."""

    scheme: str  # configured: http or https
    health_tls: ssl.SSLContext  # no verification: the health path carries no secret
    metrics_tls: ssl.SSLContext | bool | None  # True: the system CAs; None: unusable
    metrics_tls_error: str | None  # why metrics_tls is None
    token_headers: dict[str, str]  # Authorization, when a token is configured
    max_bytes: int
    limit_seconds: float
    wanted: Collection[str] = ()  # sample names to keep from /metrics


@dataclass(frozen=True)
class Result:
    state: State
    status: int  # the last HTTP answer's status; 0 when none came
    seconds: float
    scheme: str  # the scheme the endpoint answered on; "" when it did not
    reason: str | None  # why it is not SERVING
    scan: Scan | None  # SERVING: what /metrics held


def unverified_context() -> ssl.SSLContext:
    """TLS that accepts any certificate (the connection is still encrypted)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Progress:
    """What one GET learned so far; it survives a timeout."""

    status = 0


Stream = Callable[[bytes], Awaitable[None]]


async def _exchange(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    tls: ssl.SSLContext | bool,
    max_bytes: int,
    stream: Stream | None,
    progress: _Progress,
) -> tuple[str | None, str]:
    """GET `url`, following redirects only to the same scheme, host and port. A 200 body
    goes to `stream` when one is given; of any other body the first HEAD_BYTES are kept.
    Returns (why the answer is incomplete or None, the kept head)."""
    origin = urlsplit(url)[:2]
    for _ in range(MAX_REDIRECTS + 1):
        async with session.get(url, headers=headers, ssl=tls, allow_redirects=False) as response:
            progress.status = response.status
            if response.status in REDIRECTS and "Location" in response.headers:
                target = urljoin(url, response.headers["Location"])
                if urlsplit(target)[:2] != origin:
                    raise _Refused(response.status, f"redirect to another host refused: {target}")
                url = target
                continue
            if stream is None or response.status != 200:
                head = await response.content.read(HEAD_BYTES)
                return None, head.decode("utf-8", "replace")
            size = 0
            batch = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    return f"body larger than {max_bytes} bytes", ""
                batch += chunk
                if len(batch) >= BATCH_BYTES:
                    data = bytes(batch)
                    batch.clear()
                    await stream(data)
            await stream(bytes(batch))
            return None, ""
    raise _Refused(progress.status, f"more than {MAX_REDIRECTS} redirects")


async def get(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: dict[str, str],
    tls: ssl.SSLContext | bool,
    max_bytes: int,
    deadline: float,
    limit_seconds: float,
    stream: Stream | None = None,
) -> Answer:
    """One bounded GET (see _exchange), classified: refused, the other protocol, an
    untrusted certificate, a timeout, or an answer."""
    progress = _Progress()
    try:
        async with asyncio.timeout_at(deadline):
            reason, head = await _exchange(session, url, headers, tls, max_bytes, stream, progress)
    except TimeoutError:
        return Answer(progress.status, f"no complete answer within {limit_seconds:.3g}s")
    except _Refused as e:
        return Answer(e.status, e.reason)
    except aiohttp.ClientConnectorCertificateError as e:
        error = e.certificate_error
        why = getattr(error, "verify_message", None) or getattr(error, "reason", None) or error
        return Answer(reason=f"certificate not trusted: {why}", certificate=True)
    except aiohttp.ClientConnectorSSLError as e:  # a plain HTTP server, most likely
        why = getattr(e.os_error, "reason", None) or e.os_error
        return Answer(reason=f"TLS handshake failed: {why}", wrong_scheme=True)
    except aiohttp.ClientConnectorError as e:
        refused = e.os_error.errno == errno.ECONNREFUSED
        return Answer(reason=e.os_error.strerror or str(e.os_error), refused=refused)
    except aiohttp.ServerDisconnectedError:  # a TLS server that got plain HTTP, most likely
        return Answer(
            progress.status, "the server closed the connection without an answer", wrong_scheme=True
        )
    except ValueError as e:  # from the parser: the body is not metrics
        return Answer(progress.status, f"not Prometheus text: {e}")
    except aiohttp.ClientError as e:
        return Answer(progress.status, str(e) or type(e).__name__)
    except CheckError as e:  # the parser thread is still busy with an earlier body
        return Answer(progress.status, str(e))
    wrong_scheme = progress.status == 400 and HTTPS_SERVER_ANSWER in head
    if wrong_scheme:
        return Answer(progress.status, "the endpoint serves HTTPS", head, wrong_scheme=True)
    return Answer(progress.status, reason, head)


def _other(scheme: str) -> str:
    return "http" if scheme == "https" else "https"


async def probe(
    session: aiohttp.ClientSession,
    host: str,
    port: int,
    plan: Plan,
    gate: BlockingGate,
    *,
    required: bool,
    listening: frozenset[str] | None,
    not_here: str | None = None,
) -> Result:
    """The health path, then /metrics. `listening`: the addresses the kernel has a
    listener on for the port (None: unknown); `not_here`: why a refused connection is
    no surprise (the port listens elsewhere)."""
    started = time.perf_counter()
    deadline = asyncio.get_running_loop().time() + plan.limit_seconds

    def base(scheme: str) -> str:
        return f"{scheme}://{host}:{port}"

    async def health(scheme: str) -> Answer:
        return await get(
            session,
            base(scheme) + HEALTH_PATH,
            headers={},
            tls=plan.health_tls,
            max_bytes=HEAD_BYTES,
            deadline=deadline,
            limit_seconds=plan.limit_seconds,
        )

    scheme = plan.scheme
    answer = await health(scheme)
    if answer.wrong_scheme:
        other = await health(_other(scheme))
        if other.status:
            scheme, answer = _other(scheme), other
    if answer.status != 200 or answer.reason is not None:
        found = bool(listening) or not answer.refused
        if answer.status and answer.reason is None:
            why = f"GET {HEALTH_PATH} answered {answer.status}"
            if answer.first_line():
                why += f": {answer.first_line()}"
        elif answer.refused and listening == frozenset():
            why = f"nothing listens on port {port}"
        elif answer.refused:
            why = not_here or "connection refused"
        else:
            why = f"GET {HEALTH_PATH}: {answer.reason}"
        return Result(
            State.DEAD if found or required else State.ABSENT,
            answer.status,
            time.perf_counter() - started,
            "",
            why,
            None,
        )
    return await _metrics(session, base(scheme), scheme, plan, gate, deadline, started)


async def _metrics(
    session: aiohttp.ClientSession,
    base: str,
    scheme: str,
    plan: Plan,
    gate: BlockingGate,
    deadline: float,
    started: float,
) -> Result:
    """/metrics of an endpoint that is alive."""

    def alive(state: State, status: int, reason: str | None, scan: Scan | None = None) -> Result:
        return Result(state, status, time.perf_counter() - started, scheme, reason, scan)

    tls = plan.metrics_tls
    if scheme == "https" and tls is None:
        return alive(State.METRICS_FAILING, 200, plan.metrics_tls_error)
    # the token goes only where the configuration sends it: never over plain HTTP when
    # the configuration says https (the endpoint answered plain HTTP: metrics disabled)
    headers = {"Accept": "text/plain;version=0.0.4"}
    if not (plan.scheme == "https" and scheme == "http"):
        headers.update(plan.token_headers)
    reader = TextReader(plan.wanted)

    async def stream(data: bytes) -> None:
        def parse_batch() -> None:  # named: the gate shows the name of what it runs
            reader.feed(data)

        await gate.run(parse_batch)

    answer = await get(
        session,
        base + METRICS_PATH,
        headers=headers,
        tls=tls if tls is not None else True,
        max_bytes=plan.max_bytes,
        deadline=deadline,
        limit_seconds=plan.limit_seconds,
        stream=stream,
    )
    status = answer.status
    if answer.reason is not None:
        why = answer.reason
        if status and answer.first_line():
            why += f": {answer.first_line()}"
        return alive(State.METRICS_FAILING, status, f"GET {METRICS_PATH}: {why}")
    if status == 200:
        try:
            scan = await gate.run(reader.close)
        except (ValueError, CheckError) as e:
            return alive(State.METRICS_FAILING, status, f"not Prometheus text: {e}")
        return alive(State.SERVING, status, None, scan)
    said = f": {answer.first_line()}" if answer.first_line() else ""
    why = f"GET {METRICS_PATH} answered {status}{said}"
    if status == 404:
        return alive(State.METRICS_DISABLED, status, why)
    if status in (401, 403):
        return alive(State.UNAUTHORIZED, status, why)
    return alive(State.METRICS_FAILING, status, why)

"""The web layer of ``flowgrad explore``: a Starlette app and the uvicorn server around it.

Routes (the JSON API is described in ``docs/explore.md``):

* ``GET /`` the page; ``GET /static/...`` its files (only from the package's static folder);
* ``GET /api/info``; ``POST /api/explain``, ``/api/surface``, ``/api/curve``,
  ``/api/descent`` (see :mod:`flowgrad.explore.api`);
* ``POST /api/train``, ``POST /api/train/stop``, ``GET /api/train``, ``GET
  /api/train/events`` (a server-sent event stream), ``POST /api/predict`` (see
  :mod:`flowgrad.explore.jobs`).

Safety, for a server that runs code on the user's machine:

* it listens on 127.0.0.1 unless told otherwise (the CLI warns for any other address);
* a request whose ``Host`` header is not one this server answers to gets 403, which defeats
  DNS rebinding (a hostile page whose name resolves to 127.0.0.1), as Jupyter does;
* writes (POST) must be same-origin: a foreign ``Origin`` or ``Sec-Fetch-Site:
  cross-site`` gets 403, and a body must be ``application/json`` (415), which a plain
  cross-site form cannot send;
* bodies over :attr:`Limits.max_body_bytes` get 413; every field is checked (400 with a
  one-line JSON error); formulas only go through the whitelisting parser; steps, grid
  sizes, epochs and compute time are capped; a second training run gets 409;
* any unexpected failure of one request is a 500 JSON answer; the server carries on.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowgrad.explore import api
from flowgrad.explore.api import DEFAULT_LIMITS, ApiError, Limits
from flowgrad.explore.jobs import TrainingJob, available_models
from flowgrad.viz.explain import _json_safe  # non-finite floats as strings, as explain --json

__all__ = ["STATIC_DIR", "allowed_hosts", "create_app", "open_socket", "serve"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# The page needs nothing from anywhere else: no CDN, no inline script, no framing.
_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Guard:
    """ASGI middleware: Host check, same-origin writes, body size, security headers."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str] | None, limits: Limits):
        self.app = app
        self.hosts = None if hosts is None else {h.lower() for h in hosts}
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        refusal = self._refusal(scope["method"], headers)
        if refusal is not None:
            await refusal(scope, receive, self._with_headers(send))
            return
        await self.app(scope, receive, self._with_headers(send))

    def _refusal(self, method: str, headers: dict[str, str]) -> Response | None:
        host = headers.get("host", "").lower()
        if self.hosts is not None and host not in self.hosts:
            return _error(403, f"Host header {host!r} is not one this server answers to "
                               "(DNS-rebinding protection); open the URL it printed")
        if method not in _SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and origin.lower() not in (f"http://{host}",
                                                             f"https://{host}"):
                return _error(403, f"cross-origin request from {origin!r} refused")
            if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return _error(403, "cross-site request refused")
            length = headers.get("content-length")
            if length is not None and (not length.isdigit()
                                       or int(length) > self.limits.max_body_bytes):
                return _error(413, f"request body over {self.limits.max_body_bytes} bytes")
        return None

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_HEADERS]}
            await send(message)

        return wrapped


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


async def _read_json(request: Request, limits: Limits) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:  # a chunked body has no Content-Length to check
            raise ApiError(413, f"request body over {limits.max_body_bytes} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({str(exc)[:120]})") from None


def _answer(result: Any) -> Response:
    if isinstance(result, str):  # already JSON text (explain's, byte for byte)
        return Response(result, media_type="application/json")
    return Response(json.dumps(_json_safe(result), allow_nan=False),
                    media_type="application/json")


def create_app(allowed_hosts: Iterable[str] | None = None, limits: Limits = DEFAULT_LIMITS,
               job: TrainingJob | None = None) -> Starlette:
    """The explore web app.

    Args:
        allowed_hosts: the ``Host`` header values to answer (e.g. ``{"127.0.0.1:8765",
            "localhost:8765"}``); ``None`` answers any (for tests only).
        limits: the request limits.
        job: the training manager (a new one by default).

    Returns:
        The ASGI app; its ``state.job`` is the :class:`TrainingJob` (closed at shutdown).
    """
    # Requests are short and CPU-bound: one at a time keeps each one's latency predictable
    # on a small machine (grad mode itself is per thread, so this is not for correctness).
    compute = threading.Lock()
    job = job if job is not None else TrainingJob(limits, compute)

    def locked(handler: Callable[..., Any], body: Any) -> Any:
        with compute:
            return handler(body, limits)

    def endpoint(handler: Callable[..., Any], *, with_body: bool = True,
                 lock: bool = True) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                body = await _read_json(request, limits) if with_body else None
                call = partial(locked, handler, body) if lock else partial(handler, body)
                return _answer(await anyio.to_thread.run_sync(call))
            except ApiError as exc:
                return _error(exc.status, exc.message)
            except Exception as exc:  # one bad request must never take the server down
                traceback.print_exc(file=sys.stderr)
                return _error(500, f"internal error: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}")

        return run

    models = available_models()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def info(request: Request) -> Response:
        return _answer(api.info(limits, models))

    async def train_status(request: Request) -> Response:
        return _answer(job.status())

    async def train_events(request: Request) -> Response:
        async def stream():
            seen, quiet = -1, 0.0
            yield "retry: 1000\n\n"
            while True:
                version = job.version
                if version != seen:
                    seen = version
                    status = job.status()
                    yield f"event: status\ndata: {json.dumps(_json_safe(status))}\n\n"
                    if status["state"] not in ("running", "stopping"):
                        return
                    quiet = 0.0
                await anyio.sleep(0.1)
                quiet += 0.1
                if quiet >= 10.0:  # a comment keeps proxies and the browser from timing out
                    yield ": keep-alive\n\n"
                    quiet = 0.0

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, f"no such page or endpoint: {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _error(405, f"{request.method} is not allowed on {request.url.path}")

    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        job.close()

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/parse", endpoint(api.parse), methods=["POST"]),
        Route("/api/explain", endpoint(api.explain), methods=["POST"]),
        Route("/api/surface", endpoint(api.surface), methods=["POST"]),
        Route("/api/curve", endpoint(api.curve), methods=["POST"]),
        Route("/api/descent", endpoint(api.descent), methods=["POST"]),
        Route("/api/train", train_status, methods=["GET"]),
        Route("/api/train", endpoint(lambda body: job.start(body), lock=False),
              methods=["POST"]),
        Route("/api/train/stop",
              endpoint(lambda body: job.stop(), with_body=False, lock=False),
              methods=["POST"]),
        Route("/api/train/events", train_events),
        Route("/api/predict", endpoint(lambda body: job.predict(body), lock=False),
              methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: not_found, 405: not_allowed})
    app.state.job = job
    app.add_middleware(_Guard, hosts=allowed_hosts, limits=limits)
    return app


# ---------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------


_WILDCARDS = ("", "0.0.0.0", "::")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def open_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port).

    Raises:
        OSError: the address cannot be resolved or bound (e.g. the port is in use).
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def allowed_hosts(host: str, sock: socket.socket) -> tuple[set[str], str, bool]:
    """The Host headers to answer, the URL to print, and whether the address is loopback."""
    address, port = sock.getsockname()[:2]
    names = {"localhost", "127.0.0.1", "[::1]"}
    loopback = _is_loopback(address)
    if host in _WILDCARDS:
        loopback = False
        names.add(socket.gethostname().lower())
        names.add(socket.getfqdn().lower())
        try:
            for info in socket.getaddrinfo(socket.gethostname(), None):
                ip = info[4][0]
                names.add(f"[{ip}]" if ":" in ip else ip)
        except OSError:
            pass
    else:
        names.add(f"[{host}]" if ":" in host else host.lower())
    hosts = {f"{n}:{port}" for n in names}
    if port == 80:
        hosts |= names  # browsers leave the default port out of Host
    shown = "127.0.0.1" if host in _WILDCARDS else (f"[{host}]" if ":" in host else host)
    return hosts, f"http://{shown}:{port}/", loopback


def serve(host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True,
          limits: Limits = DEFAULT_LIMITS, announce: Callable[[str], None] = print) -> None:
    """Run the explore server until Ctrl-C.

    Args:
        host: the address to listen on (127.0.0.1: this machine only).
        port: the port (0: any free one).
        open_browser: open the page in the default browser.
        limits: the request limits.
        announce: called with the lines to show the user (the URL, warnings).

    Raises:
        OSError: the address cannot be bound.
    """
    import webbrowser

    import uvicorn

    sock = open_socket(host, port)
    hosts, url, loopback = allowed_hosts(host, sock)
    if not loopback:
        announce(f"warning: listening on {host or 'all interfaces'}, not only this machine: "
                 "anyone who can reach this address can use the page (and train on this "
                 "machine's CPU); use --host 127.0.0.1 unless you mean it")
    app = create_app(allowed_hosts=hosts, limits=limits)
    config = uvicorn.Config(app, log_level="warning", proxy_headers=False,
                            server_header=False, timeout_graceful_shutdown=2, lifespan="on")
    server = uvicorn.Server(config)
    announce(f"flowgrad explore: {url}  (Ctrl-C to stop)")
    if open_browser:
        threading.Timer(0.3, webbrowser.open, args=(url,)).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises Ctrl-C after its graceful shutdown: a normal stop
    finally:
        app.state.job.close()
        sock.close()

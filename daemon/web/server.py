"""The HTTP server on ``VOICE_DAEMON_METRICS_ADDR``: ``/metrics`` and ``/healthz`` from ``Metrics``,
and the pages plugged in with ``route()`` (the status page and ``/api/status``, ``daemon/web``).

``serve(metrics, addr)`` starts a ThreadingHTTPServer in a daemon thread (None when ``addr`` is
empty); ``/healthz`` answers 200 when ``metrics.health()`` says ok, 503 otherwise.

What goes wrong with a client (it hangs up before the answer, resets, stalls past the idle
timeout, sends something that is not HTTP) is one JSON event each (``http.client_error``),
never a traceback on stderr, and at most ``CLIENT_ERROR_BURST`` of them per
``CLIENT_ERROR_WINDOW`` seconds (the next one says how many were held back).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping

from daemon import __version__, log
from daemon.errors import VoiceDaemonError
from daemon.metrics import Metrics

#: A connection that sends nothing for this long is closed: each open one holds a thread.
IDLE_TIMEOUT_SECONDS = 10.0
#: Client faults logged per window; the rest are counted in the next one logged.
CLIENT_ERROR_BURST, CLIENT_ERROR_WINDOW = 10, 60.0
#: A client that went away: its fault, not the server's (logged at info level).
CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)

#: A page: () -> (status, content type, body)
Page = Callable[[], tuple[int, str, bytes]]


class MetricsError(VoiceDaemonError):
    """The server cannot listen where VOICE_DAEMON_METRICS_ADDR says."""


def serve(metrics: Metrics, addr: str, *, routes: Mapping[str, Page] | None = None,
          idle_timeout: float = IDLE_TIMEOUT_SECONDS) -> "HttpServer | None":
    """Serve ``metrics`` (and ``routes``) on ``addr`` (``host:port``); None when ``addr`` is empty.

    Raises MetricsError when the address cannot be bound (in use, not local).
    """
    if not addr:
        return None
    host, port = split_addr(addr)
    return HttpServer(metrics, host, port, routes=routes, idle_timeout=idle_timeout)


def split_addr(addr: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    host, _, port = addr.strip().rpartition(":")
    return host.strip("[]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    throttle = log.Throttle(CLIENT_ERROR_BURST, CLIENT_ERROR_WINDOW)  # replaced per server in HttpServer

    def handle_error(self, request, client_address):
        """socketserver prints a traceback on stderr here: one throttled JSON event instead."""
        exc = sys.exc_info()[1]
        client_error(self.throttle, client_address, f"{type(exc).__name__}: {exc}",
                     gone=isinstance(exc, CLIENT_GONE))


def client_error(throttle: log.Throttle, client_address, error: str, *, gone: bool, request: str | None = None) -> None:
    """``http.client_error``: info for a client's own fault (it hung up, stalled, sent garbage), error
    for one the server raised; dropped beyond the throttle's burst, counted in ``held_back``."""
    logged, held = throttle.allow()
    if not logged:
        return
    client = client_address[0] if isinstance(client_address, tuple) and client_address else str(client_address)
    fields = {"client": client, "error": error[:300], "held_back": held}
    if request:
        fields["request"] = request[:200]
    (log.get("metrics").info if gone else log.get("metrics").error)("http.client_error", **fields)


class HttpServer:
    """A ThreadingHTTPServer in a daemon thread; ``close()`` stops it and joins the thread."""

    def __init__(self, metrics: Metrics, host: str, port: int, *, routes: Mapping[str, Page] | None = None,
                 idle_timeout: float = IDLE_TIMEOUT_SECONDS):
        #: the pages served beside /metrics and /healthz (read by the request threads)
        self.routes: dict[str, Page] = dict(routes or {})
        server_cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6}) if ":" in host else _Server
        try:
            self.httpd = server_cls((host, port), _handler(metrics, self.routes, idle_timeout))
        except OSError as exc:
            raise MetricsError(f"VOICE_DAEMON_METRICS_ADDR={host}:{port}: cannot listen: {exc.strerror or exc}") from exc
        self.httpd.throttle = log.Throttle(CLIENT_ERROR_BURST, CLIENT_ERROR_WINDOW)
        self.host, self.port = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="metrics-http", daemon=True)
        self.thread.start()
        log.get("metrics").info("metrics.listening", url=self.url + "/metrics")

    def route(self, path: str, page: Page) -> None:
        """Serve ``page()``'s (status, content type, body) at ``path`` too."""
        self.routes[path] = page

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _handler(metrics: Metrics, routes: Mapping[str, Page], idle_timeout: float):
    class Handler(BaseHTTPRequestHandler):
        server_version = f"voice-daemon/{__version__}"
        timeout = idle_timeout  # on the connection's socket: a silent client is dropped, its thread ends

        def do_GET(self):  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            page = routes.get(path)
            if page is not None:
                try:
                    code, content_type, body = page()
                except Exception as exc:  # a broken page must not take the scrape endpoint with it
                    log.get("metrics").error("metrics.route_error", path=path, error=f"{type(exc).__name__}: {exc}")
                    code, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
                self._send(code, content_type, body)
            elif path == "/metrics":
                self._send(200, *metrics.exposition(self.headers.get("Accept")))
            elif path == "/healthz":
                ok, body = metrics.health()
                self._send(200 if ok else 503, "application/json",
                           json.dumps(body, ensure_ascii=False).encode() + b"\n")
            elif path == "/":
                self._send(200, "text/plain; charset=utf-8", b"voice-daemon: /metrics /healthz\n")
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_error(self, fmt, *args):
            """A request that is not HTTP (400, 414, 501) or a client silent past the idle timeout:
            http.server would print it on stderr."""
            client_error(self.server.throttle, self.client_address, fmt % args,
                         gone=True, request=getattr(self, "requestline", None))

        def log_message(self, fmt, *args):  # quiet: scrapes every few seconds would flood the journal
            log.get("metrics").debug("metrics.request", client=self.client_address[0], request=fmt % args)

    return Handler

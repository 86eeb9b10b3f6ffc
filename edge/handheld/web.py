"""The officer's page, served with the standard library (ThreadingHTTPServer): static files, a JSON API and
a Server-Sent Events stream that pushes each alert the moment it is verified.

Protection: the server binds loopback by default, and every API call needs the random token made at each
start. The page's address carries it in the fragment (`/#token=…`), which browsers never send to a server
or in a Referer; the page passes it in an `X-Edge-Token` header (a cross-site form cannot set one) and, for
the event stream, in the query string. Static files hold no data and need no token. Responses forbid
framing, sniffing and any script or connection that is not this server's own. The token says only that the
request comes from the handheld's page: a decision as an officer who has a PIN must also carry that PIN.
"""

import hmac
import json
import logging
import queue
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, ValidationError

from edge.config.base import StrictModel
from edge.handheld.app import DecisionError, HandheldApp
from edge.protocol.adjudication import Decision

log = logging.getLogger(__name__)

_STATIC = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
_KEEPALIVE_S = 15.0
_MAX_BODY = 8192
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class DecisionRequest(StrictModel):
    """What the page POSTs to /api/decisions."""

    event_id: str = Field(max_length=64)
    officer_id: str = Field(max_length=64)
    decision: Decision
    note: str = Field("", max_length=500)
    pin: str | None = Field(None, max_length=64, description="the deciding officer's PIN when they have one: checked, "
                                                             "never stored or logged")


class PageServer:
    """Serves one HandheldApp on (bind, port); `url` carries the access token."""

    def __init__(self, app: HandheldApp, bind: str, port: int, token: str | None = None) -> None:
        self.app = app
        self.token = token or secrets.token_urlsafe(24)
        self._static = {name: resources.files("edge.handheld").joinpath("static", name).read_bytes()
                        for name in _STATIC}
        self._httpd = ThreadingHTTPServer((bind, port), self._handler())
        self._httpd.daemon_threads = False  # server_close() joins request threads: none outlives stop()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="edge-handheld-web", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._httpd.server_address[0])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/#token={self.token}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end open event streams, and wait for every request thread."""
        self._httpd.shutdown()
        self.app.listeners.close()
        self._httpd.server_close()
        self._thread.join(5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "edge-handheld"
            sys_version = ""
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # the request line carries the event stream's token
                log.debug("page %s: %s", self.address_string(), (format % args).replace(server.token, "<token>"))

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                name = "index.html" if url.path == "/" else url.path.removeprefix("/static/")
                if name in _STATIC and (url.path == "/" or url.path.startswith("/static/")):
                    self._send(HTTPStatus.OK, server._static[name], f"{_STATIC[name]}; charset=utf-8")
                elif url.path == "/api/state":
                    if self._authorised(parse_qs(url.query)):
                        self._json(HTTPStatus.OK, server.app.snapshot())
                elif url.path == "/api/events":
                    if self._authorised(parse_qs(url.query)):
                        self._events()
                else:
                    self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {url.path}"})

            def do_POST(self) -> None:
                if urlsplit(self.path).path != "/api/decisions":
                    self._json(HTTPStatus.NOT_FOUND, {"error": "unknown address"})
                    return
                if not self._authorised({}):
                    return
                length_text = self.headers.get("Content-Length") or "0"
                length = int(length_text) if length_text.isdigit() else 0
                if not 0 < length <= _MAX_BODY:
                    self._json(HTTPStatus.BAD_REQUEST, {"error": f"request body must be 1..{_MAX_BODY} bytes"})
                    return
                try:
                    request = DecisionRequest.model_validate_json(self.rfile.read(length))
                    view = server.app.decide(request.event_id, request.officer_id, request.decision, request.note,
                                             pin=request.pin)
                except ValidationError as exc:
                    self._json(HTTPStatus.BAD_REQUEST, {"error": f"bad decision request: {exc.errors()[0]['msg']}"})
                except DecisionError as exc:
                    self._json(exc.status, {"error": str(exc)})
                except Exception as exc:  # the officer must learn the decision was NOT recorded
                    log.exception("decision failed")
                    self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"decision not recorded: {exc}"})
                else:
                    self._json(HTTPStatus.OK, view)

            def _authorised(self, query: dict[str, list[str]]) -> bool:
                given = self.headers.get("X-Edge-Token") or (query.get("token") or [""])[0]
                if hmac.compare_digest(given.encode(), server.token.encode()):
                    return True
                self._json(HTTPStatus.FORBIDDEN, {"error": "missing or wrong access token: open the address that "
                                                            "`edge handheld` printed when it started"})
                return False

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for key, value in _SECURITY_HEADERS.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, data: Any) -> None:
                self._send(status, json.dumps(data, ensure_ascii=False).encode(), "application/json; charset=utf-8")

            def _events(self) -> None:
                """Server-Sent Events: a snapshot first (so a reconnecting page misses nothing), then changes."""
                listener = server.app.listeners.add()
                try:
                    self.send_response(HTTPStatus.OK)
                    self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                    self.send_header("Cache-Control", "no-store")
                    self.send_header("Connection", "close")
                    for key, value in _SECURITY_HEADERS.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.close_connection = True
                    self.wfile.write(b"retry: 1000\n\n")  # reconnect after 1 s, not the browser's default 3-5 s
                    self._event("snapshot", server.app.snapshot())
                    while True:
                        try:
                            item = listener.get(timeout=_KEEPALIVE_S)
                        except queue.Empty:
                            self.wfile.write(b": keepalive\n\n")
                            self.wfile.flush()
                            continue
                        if item is None:
                            return
                        self._event(*item)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the page went away; it reconnects and gets a fresh snapshot
                finally:
                    server.app.listeners.remove(listener)

            def _event(self, kind: str, data: Any) -> None:
                payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
                self.wfile.write(f"event: {kind}\ndata: {payload}\n\n".encode())
                self.wfile.flush()

        return Handler

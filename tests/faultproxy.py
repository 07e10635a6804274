"""A fault-injecting HTTP proxy on loopback, in front of a real registry (test helper).

``rule(method, path)`` returns an HTTP status to answer instead of forwarding, "reset" to
drop the connection, or None to forward the request unchanged.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator
from contextlib import contextmanager

import requests

Rule = Callable[[str, str], "int | str | None"]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate", "host", "content-length"}


@contextmanager
def fault_proxy(upstream: str, rule: Rule) -> Iterator[tuple[str, dict[str, int]]]:
    """Yield (proxy host:port, counters of forwarded and injected requests)."""
    counts = {"forwarded": 0, "injected": 0}
    session = requests.Session()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            fault = rule(self.command, self.path)
            if fault == "reset":
                counts["injected"] += 1
                self.close_connection = True
                self.connection.close()
                return
            if isinstance(fault, int):
                counts["injected"] += 1
                payload = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
                self.send_response(fault)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            counts["forwarded"] += 1
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            response = session.request(self.command, f"http://{upstream}{self.path}", data=body, headers=headers,
                                        allow_redirects=False, timeout=60)
            content = response.content if self.command != "HEAD" else b""
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() in HOP_BY_HOP:
                    continue
                if key.lower() == "location":
                    value = value.replace(f"http://{upstream}", f"http://{host}")
                self.send_header(key, value)
            length_header = response.headers.get("Content-Length") if self.command == "HEAD" else str(len(content))
            self.send_header("Content-Length", length_header or "0")
            self.end_headers()
            if content:
                self.wfile.write(content)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host, counts
    finally:
        server.shutdown()
        server.server_close()

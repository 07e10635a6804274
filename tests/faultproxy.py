"""A fault-injecting HTTP proxy on loopback, in front of a real registry (test helper).

``rule(method, path)`` returns an HTTP status to answer instead of forwarding, "reset" to drop
the connection, "stall" to wait ``stall_s`` before forwarding, "truncate" to forward but cut the
response body off half way, "corrupt" to change a byte of the response body, "drip" to send the body one
byte every ``stall_s``, or None to forward the request unchanged.

A hostile registry's other tricks: ``challenge`` answers every request without an Authorization header
with 401 and that WWW-Authenticate value; ``relocate_to`` points every Location header at another host.
``recording_server`` is a host that keeps the headers of every request it gets.
"""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from contextlib import contextmanager

import requests

Rule = Callable[[str, str], "int | str | None"]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate", "host", "content-length"}


@contextmanager
def fault_proxy(upstream: str, rule: Rule, *, stall_s: float = 3.0, challenge: str = "",
                relocate_to: str = "", bind: str = "127.0.0.1") -> Iterator[tuple[str, dict[str, int]]]:
    """Yield (proxy host:port, counters: forwarded, injected, and one per fault kind)."""
    counts = {"forwarded": 0, "injected": 0}
    lock = threading.Lock()

    def count(key: str) -> None:
        with lock:
            counts[key] = counts.get(key, 0) + 1
    session = requests.Session()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else None

        def _handle(self) -> None:
            body = self._body()
            fault = rule(self.command, self.path)
            if fault is not None:
                count("injected")
                count(str(fault))
            if fault == "reset":
                self.close_connection = True
                self.connection.close()
                return
            if fault == "stall":
                time.sleep(stall_s)
            if challenge and "Authorization" not in self.headers:
                fault = 401
            if isinstance(fault, int):
                payload = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
                self.send_response(fault)
                if fault == 401:
                    self.send_header("WWW-Authenticate", challenge)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            count("forwarded")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            response = session.request(self.command, f"http://{upstream}{self.path}", data=body, headers=headers,
                                        allow_redirects=False, timeout=60)
            content = response.content if self.command != "HEAD" else b""
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() in HOP_BY_HOP:
                    continue
                if key.lower() == "location":
                    value = value.replace(f"http://{upstream}", f"http://{relocate_to or host}")
                    value = f"http://{relocate_to}{value}" if relocate_to and value.startswith("/") else value
                self.send_header(key, value)
            length_header = response.headers.get("Content-Length") if self.command == "HEAD" else str(len(content))
            self.send_header("Content-Length", length_header or "0")
            self.end_headers()
            if content and fault == "corrupt":
                content = bytes([content[0] ^ 0x20]) + content[1:]  # same length, different bytes
            if content and fault == "truncate":
                self.wfile.write(content[: len(content) // 2])
                self.close_connection = True
                self.connection.close()
            elif content and fault == "drip":
                for byte in content:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(stall_s)
            elif content:
                self.wfile.write(content)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # clients hanging up on injected faults is the point, not news

    server = Server((bind, 0), Handler)
    host = f"{bind}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host, counts
    finally:
        server.shutdown()
        server.server_close()


class EngineLine:
    """TCP on loopback piped to the Docker socket: DOCKER_HOST=tcp://<address>. ``cut()`` kills the line,
    as an engine that dies does, for every connection at once."""

    def __init__(self, socket_path: str = "/var/run/docker.sock") -> None:

        self.socket_path = socket_path
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: list[Any] = []
        self.alive = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:

        while self.alive:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(self.socket_path)
            self.open += [client, engine]
            for a, b in ((client, engine), (engine, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, target: Any) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.close()
                except OSError:
                    pass

    def cut(self) -> None:

        self.alive = False
        for sock in [self.listener, *self.open]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def non_loopback_address() -> str:
    """This machine's address on its default route (no packet is sent): a host that is not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.200", 9))
        address = str(probe.getsockname()[0])
    assert not address.startswith("127."), "the test needs an address that is not loopback"
    return address


@contextmanager
def recording_server(status: int = 401, body: bytes = b"{}", *, headers: dict[str, str] | None = None,
                     bind: str = "127.0.0.1") -> Iterator[tuple[int, list[dict[str, str]]]]:
    """Yield (port, the headers of every request so far): a host that answers everything with ``status``."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _handle(self) -> None:
            seen.append({"method": self.command, "path": self.path, **dict(self.headers.items())})
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    server = ThreadingHTTPServer((bind, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()

"""Starting the API: the store opened read-only (and, on PostgreSQL, its role checked to write nothing), tags
resolved through the stack's registry, access logs as JSON lines on stdout, and uvicorn serving it."""
from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from stack_builder.errors import StackError
from stack_builder.precalc import urls
from stack_builder.precalc.reader import open_reader
from stack_builder.secrets import RedactingFilter
from stack_builder.serving import access
from stack_builder.serving.questions import ApiError
from stack_builder.serving.service import Service, ServiceOptions, TagLookup

if TYPE_CHECKING:
    from stack_builder.config import Config

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    store: str  # the store's URL ("": spec.yml's precalc.store, else the stack's artifacts/precalc.duckdb)
    host: str = "127.0.0.1"
    port: int = 8000
    service: ServiceOptions = field(default_factory=ServiceOptions)


def tag_lookup(config: Config) -> TagLookup:
    """(image, tag) -> the digest the stack's registry has for that tag of that image (its repository as the
    spec names it, on the task's registry), or None."""
    registry = config.registry_client()
    spec = config.spec

    def lookup(image: str, tag: str) -> str | None:
        if image not in spec.images:
            return None
        return registry.manifest_digest(spec.images[image].repository.on(config.registry).path, tag)

    return lookup


def spec_models(config: Config) -> dict[str, tuple[tuple[str, str], ...]]:
    return {name: image.model.columns for name, image in config.spec.images.items() if image.model is not None}


def log_access_to_stdout() -> None:
    """The access log: one JSON line per request on stdout, secrets redacted, nothing else on that stream."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    access.LOGGER.addHandler(handler)
    access.LOGGER.setLevel(logging.INFO)
    access.LOGGER.propagate = False


def listening(host: str, port: int) -> socket.socket:
    """The server's socket, bound now: a port in use is a clear error before anything is served."""
    if not 0 <= port < 65536:
        raise StackError(f"--port {port}: give a port from 1 to 65535 (0: any free port)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise StackError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): give another --host or "
                         "--port") from None
    sock.set_inheritable(True)
    return sock


def serve(config: Config, options: ServeOptions) -> None:
    """Serve until stopped (SIGINT or SIGTERM: uvicorn finishes the requests in flight, then returns)."""
    import uvicorn

    from stack_builder.precalc.run import store_url  # precalc's rule: --store, else spec.yml's, else the default
    from stack_builder.serving.api import make_app
    from stack_builder.serving.roles import check_read_only

    url = store_url(config, options.store)
    where = urls.parse(url)
    check_read_only(where)
    sock = listening(options.host, options.port)
    with sock, open_reader(url) as reader:
        service = Service(reader, options.service, tags=tag_lookup(config), spec_models=spec_models(config))
        try:
            service.ready()
            count = len(service.catalog.current())  # read now, so that the first request does not wait for it
        except ApiError as exc:
            raise StackError(f"--store {where.shown}: {exc.message}") from None
        log_access_to_stdout()
        host, port = sock.getsockname()[:2]
        LOGGER.info("serving the prediction store %s (%d model digest(s)) on http://%s:%d (API docs: /docs)",
                    where.shown, count, host, port)
        settings: dict[str, Any] = {"log_config": None, "access_log": False, "server_header": False,
                                    "timeout_graceful_shutdown": 30}
        uvicorn.Server(uvicorn.Config(make_app(service), **settings)).run(sockets=[sock])


@contextlib.contextmanager
def in_thread(service: Service, host: str = "127.0.0.1") -> Iterator[str]:
    """The API served by uvicorn in a thread of this process, on a free port, until the block ends; yields its
    base URL. For tests and benchmarks: the same server as ``serve``'s, without its start-up checks."""
    import uvicorn

    from stack_builder.serving.api import make_app

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            try:
                await super().startup(sockets=sockets)
            finally:
                up.set()

    up = threading.Event()
    sock = listening(host, 0)
    server = Server(uvicorn.Config(make_app(service), log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="serve", daemon=True)
    thread.start()
    try:
        if not up.wait(30) or not server.started:
            raise StackError("the API did not start in a thread (see the log)")
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()

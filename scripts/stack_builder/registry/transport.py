"""How the registry client speaks to one host: TLS, Basic and Bearer auth, retries, and a deadline per request.

Only transient failures (connection errors, 429, 5xx) are retried, with exponential
backoff; a 401, a 404 or a digest mismatch is definitive.

TLS as dockerd does it: HTTPS everywhere, except that a loopback or insecure registry
(``STACK_REGISTRY_INSECURE=1``) that does not speak TLS is spoken to in plain HTTP. The CA to
trust is ``STACK_REGISTRY_CA``, else the engine's ``/etc/docker/certs.d/<host>/ca.crt``.
``STACK_REGISTRY_TLS=1`` forces HTTPS and ``STACK_REGISTRY_TLS=0`` forces plain HTTP. These come in
a ``RegistrySettings`` (``config.registry_client()`` passes the task's).

Credentials go only where they belong: to this registry's own host, over HTTPS (or over plain HTTP to a
loopback or insecure registry). An upload ``Location`` or a redirect to another host gets no Authorization
header, and a Bearer realm is given the credentials only over HTTPS (else its token is fetched without them).

Each request has a total deadline of ``STACK_REGISTRY_TIMEOUT`` seconds (``deadline.py``): a registry that
sends its answer a byte at a time fails the request, with a clear error, instead of holding it forever.

``RegistryTransport`` speaks to the host; ``client.RegistryClient`` is the API on top.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import requests

from stack_builder.registry.credentials import Credentials
from stack_builder.errors import RegistryError, Transient, shown
from stack_builder.registry import deadline, tls_probe
from stack_builder.registry.auth import RegistryAuth, is_loopback
from stack_builder.registry.mediatypes import ACCEPT
from stack_builder.retry import RetryPolicy
from stack_builder.settings import RegistrySettings

LOGGER = logging.getLogger(__name__)

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
CERTS_D = Path("/etc/docker/certs.d")  # where dockerd looks for a registry's CA (ca.crt)
POOL_SIZE = 32  # connections kept per host: lookups run concurrently
UNTRUSTED = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "doesn't match", "does not match")
PROBE_TIMEOUT_S = 5.0  # the most the TLS probe of a loopback or insecure registry waits


def _existing(ca: str) -> str:
    """STACK_REGISTRY_CA as given, when it names a file; a clear error when it does not."""
    if ca and not Path(ca).is_file():
        raise RegistryError(f"STACK_REGISTRY_CA={ca!r}: no such file. Give the path of the PEM certificate of the "
                            "authority that signed the registry's certificate, or unset it")
    return ca


def trusted_ca(host: str, named: str = "") -> str | None:
    """The CA certificate to trust for ``host``: ``named`` (STACK_REGISTRY_CA), else the engine's certs.d file."""
    if named:
        return named
    engine_ca = CERTS_D / host / "ca.crt"
    return str(engine_ca) if engine_ca.is_file() else None


class RegistryTransport:
    """One registry host's requests: HTTPS, or plain HTTP for a loopback/insecure one that has no TLS; auth
    challenges answered; transient failures retried. ``RegistryClient`` is its API."""

    def __init__(self, host: str, credentials: Credentials | None = None, *, settings: RegistrySettings | None = None,
                 retries: int = 5, backoff: float = 0.5, timeout: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        # Without settings (a test, a benchmark): those of the environment as it is now.
        self.settings = RegistrySettings.from_env() if settings is None else settings
        self.host = host
        self.credentials = credentials
        self.insecure = self.settings.insecure or is_loopback(host)  # plain HTTP allowed, credentials too
        self.forced_scheme = {"1": "https", "0": "http"}.get(self.settings.tls)
        self.may_fall_back = self.forced_scheme is None and self.insecure  # dockerd's rule for insecure registries
        self.base = f"{self.forced_scheme or 'https'}://{host}"
        self.session = requests.Session()
        # The proxy settings are read once, here, not on every request (a tenth of a lookup's time at scale);
        # credentials come only from our settings, never from a .netrc.
        self._proxies: dict[str, dict[str, str]] = {}  # scheme://host -> the environment's proxies for it
        self.session.trust_env = False
        adapter = deadline.DeadlineAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # Passed on every request: a Session's own verify loses to REQUESTS_CA_BUNDLE from the environment.
        self.verify: str | bool = trusted_ca(host, _existing(self.settings.ca)) or True
        self.policy = RetryPolicy(retries=retries, backoff_s=backoff, sleep=sleep)
        self.timeout = timeout or self.settings.timeout_s
        self.auth = RegistryAuth(host, credentials, insecure=self.insecure, fetch_token=self._token_request)
        self.stats = {"requests": 0, "retries": 0}
        self._probed, self._probing = not self.may_fall_back, threading.Lock()  # (``_probe_scheme``)

    # -- transport -------------------------------------------------------------------------------

    def proxies_for(self, url: str) -> dict[str, str]:
        """The proxies the environment names for ``url``'s host (HTTPS_PROXY, NO_PROXY...), read once per host."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._proxies:
            self._proxies[origin] = dict(requests.utils.get_environ_proxies(origin))
        return self._proxies[origin]

    def _url(self, repository: str | None, path: str) -> str:
        return f"{self.base}/v2/{repository}{path}" if repository else f"{self.base}/v2{path}"

    def _request(self, method: str, repository: str | None, path: str, *, accept_missing: bool = False,
                 data: bytes | None = None, headers: dict[str, str] | None = None,
                 url: str | None = None, policy: RetryPolicy | None = None,
                 accept: tuple[int, ...] = ()) -> requests.Response:
        """One request under the retry policy: transient failures are retried, anything else raised at once
        (but the statuses in ``accept``, and 404 with ``accept_missing``, which are returned)."""
        if not self._probed:
            self._probe_scheme()
        scope = f"repository:{repository}:pull,push" if repository else ""
        sent_headers = {"Accept": ACCEPT, **(headers or {})}
        attempts = [0]

        def attempt() -> requests.Response:
            attempts[0] += 1
            target = url or self._url(repository, path)  # per attempt: the scheme may have fallen back
            return self._attempt(method, target, scope, sent_headers, data, accept_missing, attempts[0], accept)

        def count(_number: int, _delay: float, _reason: str) -> None:
            self.stats["retries"] += 1

        return (policy or self.policy).run(attempt, what=f"registry {self.host}", on_retry=count)

    def _attempt(self, method: str, url: str, scope: str, headers: dict[str, str], data: bytes | None,
                 accept_missing: bool, number: int, accept: tuple[int, ...] = ()) -> requests.Response:
        authed_once = False
        while True:  # at most twice: once more after answering an auth challenge
            headers.pop("Authorization", None)
            credential = self.auth.header(url, scope)
            if credential:
                headers["Authorization"] = credential
            self.stats["requests"] += 1
            try:
                response = self._send(method, url, headers, data)
            except requests.exceptions.SSLError as exc:
                if self._fell_back(url, exc):
                    url = "http://" + url[len("https://"):]
                    continue
                raise RegistryError(_tls_failure(self.host, self.verify, self.settings.ca, exc)) from None
            except requests.exceptions.RequestException as exc:
                raise Transient(f"{type(exc).__name__} on {method} {url}", RegistryError(
                    f"registry {self.host} is not running or not reachable: {type(exc).__name__} after {number} "
                    f"attempts on {method} {url}. Start it, or check --registry / the host and port")) from None
            if response.status_code == 401 and not authed_once:
                authed_once = True
                self.auth.answer(response.headers.get("WWW-Authenticate", ""), scope, url)
                continue
            if response.status_code in TRANSIENT_STATUS:
                raise Transient(f"HTTP {response.status_code} on {method} {url}", RegistryError(
                    f"registry {self.host} kept failing: HTTP {response.status_code} on {method} {url} "
                    f"after {number} attempts"))
            if (response.status_code == 404 and accept_missing) or response.status_code in accept:
                return response
            if response.status_code == 401 and self.credentials is not None and self.auth.sent_basic:
                raise RegistryError(f"registry {self.host} refused the credentials of "
                                    f"'{self.credentials.username}' (HTTP 401): check STACK_REGISTRY_USER and "
                                    "STACK_REGISTRY_PASSWORD, or the login in ~/.docker/config.json")
            if response.status_code == 400 and url.startswith("http://") and b"HTTPS server" in response.content:
                raise RegistryError(f"registry {self.host} speaks TLS (HTTPS), but this client spoke plain HTTP "
                                    "to it" + (": unset STACK_REGISTRY_TLS=0" if self.forced_scheme == "http" else ""))
            if response.status_code >= 400:
                raise RegistryError(_describe(response, method, url, self.host))
            return response

    def _send(self, method: str, url: str, headers: dict[str, str], data: bytes | None) -> requests.Response:
        """One HTTP request, its redirects and its whole body within the deadline (``deadline.within``); a passed
        deadline is a ``Transient`` failure."""
        with deadline.within(self.timeout) as limit:
            try:
                return self.session.request(method, url, data=data, headers=headers, timeout=self.timeout,
                                            verify=self.verify, proxies=self.proxies_for(url))
            except Exception:
                if not limit.passed:
                    raise
        # Retried as a read timeout is: the policy bounds the attempts, so the whole stays bounded too.
        raise Transient(f"deadline passed on {method} {url}", RegistryError(
            f"registry {self.host} did not finish {method} {url} within {self.timeout:g} s (STACK_REGISTRY_TIMEOUT), "
            "on every attempt: it is too slow or stalled; raise the timeout or check it"))

    def _probe_scheme(self) -> None:
        """Before the first request to a loopback or insecure registry, unproxied: ``tls_probe`` (else HTTPS first)."""
        with self._probing:
            if not self._probed and self.base.startswith("https://") and not self.proxies_for(self.base) and \
                    tls_probe.speaks_plain_http(self.host, min(self.timeout, PROBE_TIMEOUT_S)):
                self.base = f"http://{self.host}"  # (the probe logs it)
            self._probed = True

    def _fell_back(self, url: str, exc: requests.exceptions.SSLError) -> bool:
        """True when an insecure registry turned out not to speak TLS: from now on, plain HTTP (as dockerd)."""
        if not self.may_fall_back or not url.startswith("https://") or not tls_probe.answers_as_plain_http(exc):
            return False  # (an untrusted certificate, or a reset mid-handshake, is not "no TLS here")
        if self.base.startswith("https://"):
            LOGGER.debug("registry %s does not speak TLS (%s): plain HTTP, as dockerd", self.host, _reason(exc))
            self.base = f"http://{self.host}"
        return True

    def _token_request(self, realm: str, query: dict[str, str], auth: tuple[str, str] | None) -> requests.Response:
        with deadline.within(self.timeout) as limit:
            try:
                # No redirect is followed: it would take the credentials along.
                return self.session.get(realm, params=query, auth=auth, timeout=self.timeout, verify=self.verify,
                                        proxies=self.proxies_for(realm), allow_redirects=False)
            except Exception:
                if not limit.passed:
                    raise
        raise RegistryError(f"token service of {self.host} did not answer within {self.timeout:g} s "
                            "(STACK_REGISTRY_TIMEOUT)")


def _tls_failure(host: str, verify: str | bool, named_ca: str, exc: requests.exceptions.SSLError) -> str:
    if _untrusted(exc):
        where = f"STACK_REGISTRY_CA ({verify})" if named_ca else (
            f"{verify}" if isinstance(verify, str) else "the system's certificate store")
        return (f"registry {host} speaks TLS, but its certificate is not trusted by {where} "
                f"({_reason(exc)}): set STACK_REGISTRY_CA to the certificate of the authority that signed it, "
                f"or put that certificate in {CERTS_D / host / 'ca.crt'} as dockerd expects")
    return (f"TLS with registry {host} failed ({_reason(exc)}): if it speaks plain HTTP, set "
            "STACK_REGISTRY_INSECURE=1 (loopback registries fall back to HTTP by themselves)")


def _untrusted(exc: Exception) -> bool:
    text = str(exc)
    return any(marker in text for marker in UNTRUSTED)


def _reason(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"\[SSL: [A-Z_]+\][^(\"']*", text)
    return found.group(0).strip() if found else type(exc).__name__


def _describe(response: requests.Response, method: str, url: str, host: str) -> str:
    code = ""
    try:
        errors = response.json().get("errors") or []
        if errors:
            code = f" {errors[0].get('code', '')}: {errors[0].get('message', '')}"
    except ValueError:
        pass
    if response.status_code in (401, 403):
        return f"registry {host} denied {method} {url} (HTTP {response.status_code}{code}): check the credentials"
    return f"registry {host} answered HTTP {response.status_code}{code} to {method} {url}"

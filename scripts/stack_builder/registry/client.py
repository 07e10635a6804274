"""An OCI distribution (v2) registry client: manifests by tag or digest, Basic and Bearer auth.

Only transient failures (connection errors, 429, 5xx) are retried, with exponential
backoff; a 401, a 404 or a digest mismatch is definitive.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Callable

import requests

from stack_builder.registry.credentials import Credentials
from stack_builder.errors import RegistryError, Transient
from stack_builder.registry.mediatypes import ACCEPT
from stack_builder.retry import RetryPolicy

LOGGER = logging.getLogger(__name__)

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses, with or without a port."""
    name = host[1:host.index("]")] if host.startswith("[") else host.partition(":")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str


class RegistryClient:
    """Talks to one registry host. Plain HTTP on loopback (as dockerd does), HTTPS elsewhere."""

    def __init__(self, host: str, credentials: Credentials | None = None, *, retries: int = 5,
                 backoff: float = 0.5, timeout: float | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.host = host
        self.credentials = credentials
        insecure = os.environ.get("STACK_REGISTRY_INSECURE") == "1" or is_loopback(host)
        scheme = "https" if os.environ.get("STACK_REGISTRY_TLS") == "1" else ("http" if insecure else "https")
        self.base = f"{scheme}://{host}"
        self.session = requests.Session()
        # Passed on every request: a Session's own verify loses to REQUESTS_CA_BUNDLE from the environment.
        self.verify: str | bool = os.environ.get("STACK_REGISTRY_CA") or True
        self.policy = RetryPolicy(retries=retries, backoff_s=backoff, sleep=sleep)
        self.timeout = timeout or float(os.environ.get("STACK_REGISTRY_TIMEOUT") or 30)
        self._auth: dict[str, str] = {}  # scope -> Authorization header value
        self.stats = {"requests": 0, "retries": 0}

    # -- manifests -------------------------------------------------------------------------------

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """Digest of ``repository:reference``, or None when the registry does not have it."""
        response = self._request("HEAD", repository, f"/manifests/{reference}", accept_missing=True)
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:
            # Some registries omit the header on HEAD; GET always lets us compute it.
            manifest = self.get_manifest(repository, reference)
            return manifest.digest if manifest else None
        return digest

    def get_manifest(self, repository: str, reference: str) -> Manifest | None:
        response = self._request("GET", repository, f"/manifests/{reference}", accept_missing=True)
        if response.status_code == 404:
            return None
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        actual = _sha256(response.content)
        claimed = response.headers.get("Docker-Content-Digest")
        wanted = reference if reference.startswith("sha256:") else claimed
        if wanted and wanted != actual:
            # Definitive: retrying a registry that serves the wrong bytes would only hide it.
            raise RegistryError(f"digest mismatch for {repository}:{reference} from {self.host}: expected {wanted}, "
                                f"the body is {actual}")
        return Manifest(response.content, media_type, actual)

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        response = self._request("PUT", repository, f"/manifests/{reference}", data=body,
                                 headers={"Content-Type": media_type})
        return response.headers.get("Docker-Content-Digest") or _sha256(body)

    def upload_blob(self, repository: str, data: bytes) -> str:
        """Upload ``data`` as a blob in one request (monolithic upload); return its digest."""
        digest = _sha256(data)
        if self._request("HEAD", repository, f"/blobs/{digest}", accept_missing=True).status_code == 200:
            return digest
        started = self._request("POST", repository, "/blobs/uploads/")
        location = started.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.host} started an upload without a Location")
        url = location if "://" in location else f"{self.base}{location}"
        separator = "&" if "?" in url else "?"
        self._request("PUT", repository, "", url=f"{url}{separator}digest={digest}", data=data,
                      headers={"Content-Type": "application/octet-stream"})
        return digest

    def get_blob(self, repository: str, digest: str) -> bytes:
        data = self._request("GET", repository, f"/blobs/{digest}").content
        if _sha256(data) != digest:
            raise RegistryError(f"blob {digest} from {self.host} does not match its digest")
        return data

    def ping(self) -> None:
        """Raise ``RegistryError`` unless the registry answers its API root."""
        self._request("GET", None, "/")

    # -- transport -------------------------------------------------------------------------------

    def _url(self, repository: str | None, path: str) -> str:
        return f"{self.base}/v2/{repository}{path}" if repository else f"{self.base}/v2{path}"

    def _request(self, method: str, repository: str | None, path: str, *, accept_missing: bool = False,
                 data: bytes | None = None, headers: dict[str, str] | None = None,
                 url: str | None = None) -> requests.Response:
        """One request under the retry policy: transient failures are retried, anything else raised at once."""
        target = url or self._url(repository, path)
        scope = f"repository:{repository}:pull,push" if repository else ""
        sent_headers = {"Accept": ACCEPT, **(headers or {})}
        attempts = [0]

        def attempt() -> requests.Response:
            attempts[0] += 1
            return self._attempt(method, target, scope, sent_headers, data, accept_missing, attempts[0])

        def count(_number: int, _delay: float, _reason: str) -> None:
            self.stats["retries"] += 1

        return self.policy.run(attempt, what=f"registry {self.host}", on_retry=count)

    def _attempt(self, method: str, url: str, scope: str, headers: dict[str, str], data: bytes | None,
                 accept_missing: bool, number: int) -> requests.Response:
        authed_once = False
        while True:  # at most twice: once more after answering an auth challenge
            if scope in self._auth:
                headers["Authorization"] = self._auth[scope]
            self.stats["requests"] += 1
            try:
                response = self.session.request(method, url, data=data, headers=headers, timeout=self.timeout,
                                                verify=self.verify)
            except requests.exceptions.SSLError as exc:
                raise RegistryError(f"TLS verification of registry {self.host} failed ({_reason(exc)}): if it uses "
                                    "a private certificate authority, set STACK_REGISTRY_CA to its certificate") from None
            except requests.exceptions.RequestException as exc:
                raise Transient(f"{type(exc).__name__} on {method} {url}", RegistryError(
                    f"registry {self.host} is unreachable after {number} attempts ({type(exc).__name__}): "
                    f"is it running? {method} {url}")) from None
            if response.status_code == 401 and not authed_once:
                authed_once = True
                self._authenticate(response, scope)
                continue
            if response.status_code in TRANSIENT_STATUS:
                raise Transient(f"HTTP {response.status_code} on {method} {url}", RegistryError(
                    f"registry {self.host} kept failing: HTTP {response.status_code} on {method} {url} "
                    f"after {number} attempts"))
            if response.status_code == 404 and accept_missing:
                return response
            if response.status_code >= 400:
                raise RegistryError(_describe(response, method, url, self.host))
            return response

    def _authenticate(self, response: requests.Response, scope: str) -> None:
        challenge = response.headers.get("WWW-Authenticate", "")
        if self.credentials is None and not challenge.lower().startswith("bearer"):
            raise RegistryError(f"registry {self.host} requires login: set STACK_REGISTRY_USER and "
                                "STACK_REGISTRY_PASSWORD, or `docker login` so ~/.docker/config.json has it")
        kind, _, params = challenge.partition(" ")
        if kind.lower() == "basic":
            if self.credentials is None:
                raise RegistryError(f"registry {self.host} requires login")
            self.session.auth = (self.credentials.username, self.credentials.password)
            self._auth.pop(scope, None)
            return
        if kind.lower() != "bearer":
            raise RegistryError(f"registry {self.host} asks for unsupported auth '{kind}'")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.host} sent a Bearer challenge without a realm")
        query = {"service": fields.get("service", "")}
        query["scope"] = fields.get("scope") or scope
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        try:
            token_response = self.session.get(realm, params=query, auth=auth, timeout=self.timeout,
                                              verify=self.verify)
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"token service of {self.host} unreachable ({type(exc).__name__})") from None
        if token_response.status_code != 200:
            raise RegistryError(f"token service of {self.host} refused the credentials "
                                f"(HTTP {token_response.status_code})")
        try:
            body = token_response.json()
        except ValueError:
            raise RegistryError(f"token service of {self.host} sent no JSON") from None
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"token service of {self.host} sent no token")
        self._auth[scope] = f"Bearer {token}"


def _reason(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"\[SSL: [A-Z_]+\][^(\"']*", text)
    return found.group(0).strip() if found else type(exc).__name__


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


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

"""An OCI distribution (v2) registry client: manifests by tag or digest, tag lists, Basic and Bearer auth.

Only transient failures (connection errors, 429, 5xx) are retried, with exponential
backoff; a 401, a 404 or a digest mismatch is definitive.

TLS as dockerd does it: HTTPS everywhere, except that a loopback or insecure registry
(``STACK_REGISTRY_INSECURE=1``) that does not speak TLS is spoken to in plain HTTP. The CA to
trust is ``STACK_REGISTRY_CA``, else the engine's ``/etc/docker/certs.d/<host>/ca.crt``.
``STACK_REGISTRY_TLS=1`` forces HTTPS and ``STACK_REGISTRY_TLS=0`` forces plain HTTP. These come in
a ``RegistrySettings`` (``config.registry_client()`` passes the task's).

``RegistryTransport`` speaks to the host (TLS, auth, retries); ``RegistryClient`` is the API on top.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from stack_builder.registry.credentials import Credentials
from stack_builder.errors import RegistryError, Transient, shown
from stack_builder.registry.mediatypes import ACCEPT, OCI_INDEX
from stack_builder.retry import RetryPolicy
from stack_builder.settings import RegistrySettings

LOGGER = logging.getLogger(__name__)

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
CERTS_D = Path("/etc/docker/certs.d")  # where dockerd looks for a registry's CA (ca.crt)
POOL_SIZE = 32  # connections kept per host: lookups run concurrently
UNTRUSTED = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "doesn't match", "does not match")
PLAIN_HTTP = ("WRONG_VERSION_NUMBER", "wrong version number", "RECORD_LAYER_FAILURE", "record layer failure",
              "UNKNOWN_PROTOCOL", "unknown protocol", "HTTP_REQUEST")  # what TLS to a plain-HTTP server says


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
        insecure = self.settings.insecure or is_loopback(host)
        self.forced_scheme = {"1": "https", "0": "http"}.get(self.settings.tls)
        self.may_fall_back = self.forced_scheme is None and insecure  # dockerd's rule for insecure registries
        self.base = f"{self.forced_scheme or 'https'}://{host}"
        self.session = requests.Session()
        # The proxy settings are read once, here, not on every request (a tenth of a lookup's time at scale);
        # credentials come only from our settings, never from a .netrc.
        self._proxies: dict[str, dict[str, str]] = {}  # scheme://host -> the environment's proxies for it
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # Passed on every request: a Session's own verify loses to REQUESTS_CA_BUNDLE from the environment.
        self.verify: str | bool = trusted_ca(host, self.settings.ca) or True
        self.policy = RetryPolicy(retries=retries, backoff_s=backoff, sleep=sleep)
        self.timeout = timeout or self.settings.timeout_s
        self._auth: dict[str, str] = {}  # scope -> Authorization header value
        self.stats = {"requests": 0, "retries": 0}

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
            if scope in self._auth:
                headers["Authorization"] = self._auth[scope]
            self.stats["requests"] += 1
            try:
                response = self.session.request(method, url, data=data, headers=headers, timeout=self.timeout,
                                                verify=self.verify, proxies=self.proxies_for(url))
            except requests.exceptions.SSLError as exc:
                if self._fell_back(url, exc):
                    url = "http://" + url[len("https://"):]
                    continue
                raise RegistryError(self._tls_failure(exc)) from None
            except requests.exceptions.RequestException as exc:
                raise Transient(f"{type(exc).__name__} on {method} {url}", RegistryError(
                    f"registry {self.host} is not running or not reachable: {type(exc).__name__} after {number} "
                    f"attempts on {method} {url}. Start it, or check --registry / the host and port")) from None
            if response.status_code == 401 and not authed_once:
                authed_once = True
                self._authenticate(response, scope)
                continue
            if response.status_code in TRANSIENT_STATUS:
                raise Transient(f"HTTP {response.status_code} on {method} {url}", RegistryError(
                    f"registry {self.host} kept failing: HTTP {response.status_code} on {method} {url} "
                    f"after {number} attempts"))
            if (response.status_code == 404 and accept_missing) or response.status_code in accept:
                return response
            if response.status_code == 401 and self.credentials is not None and self.session.auth is not None:
                raise RegistryError(f"registry {self.host} refused the credentials of "
                                    f"'{self.credentials.username}' (HTTP 401): check STACK_REGISTRY_USER and "
                                    "STACK_REGISTRY_PASSWORD, or the login in ~/.docker/config.json")
            if response.status_code == 400 and url.startswith("http://") and b"HTTPS server" in response.content:
                raise RegistryError(f"registry {self.host} speaks TLS (HTTPS), but this client spoke plain HTTP "
                                    "to it" + (": unset STACK_REGISTRY_TLS=0" if self.forced_scheme == "http" else ""))
            if response.status_code >= 400:
                raise RegistryError(_describe(response, method, url, self.host))
            return response

    def _fell_back(self, url: str, exc: requests.exceptions.SSLError) -> bool:
        """True when an insecure registry turned out not to speak TLS: from now on, plain HTTP (as dockerd)."""
        if not self.may_fall_back or not url.startswith("https://") or not any(m in str(exc) for m in PLAIN_HTTP):
            return False  # (an untrusted certificate, or a reset mid-handshake, is not "no TLS here")
        if self.base.startswith("https://"):
            LOGGER.debug("registry %s does not speak TLS (%s): using plain HTTP, as dockerd does for a "
                        "loopback or insecure registry", self.host, _reason(exc))
            self.base = f"http://{self.host}"
        return True

    def _tls_failure(self, exc: requests.exceptions.SSLError) -> str:
        if _untrusted(exc):
            where = f"STACK_REGISTRY_CA ({self.verify})" if self.settings.ca else (
                f"{self.verify}" if isinstance(self.verify, str) else "the system's certificate store")
            return (f"registry {self.host} speaks TLS, but its certificate is not trusted by {where} "
                    f"({_reason(exc)}): set STACK_REGISTRY_CA to the certificate of the authority that signed it, "
                    f"or put that certificate in {CERTS_D / self.host / 'ca.crt'} as dockerd expects")
        return (f"TLS with registry {self.host} failed ({_reason(exc)}): if it speaks plain HTTP, set "
                "STACK_REGISTRY_INSECURE=1 (loopback registries fall back to HTTP by themselves)")

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
                                              verify=self.verify, proxies=self.proxies_for(realm))
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"token service of {self.host} unreachable ({type(exc).__name__})") from None
        self._auth[scope] = f"Bearer {_token(token_response, self.host)}"


class RegistryClient(RegistryTransport):
    """An OCI distribution (v2) API on one registry host: manifests, blobs, referrers, tags."""

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

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete ``repository@digest`` (and so every tag on it); False when it was not there. A registry that
        does not allow deletes answers with an error, raised as ``RegistryError``."""
        return self._request("DELETE", repository, f"/manifests/{digest}", accept_missing=True).status_code != 404

    def referrers(self, repository: str, digest: str) -> dict[str, object] | None:
        """The OCI referrers index of ``repository@digest``, or None when the registry has no referrers API."""
        # A registry without the API may answer 400, 405 or 501 rather than 404.
        response = self._request("GET", repository, f"/referrers/{digest}", accept_missing=True,
                                 headers={"Accept": OCI_INDEX}, accept=(400, 405, 501))
        if response.status_code != 200 or "json" not in response.headers.get("Content-Type", ""):
            return None
        try:
            found = response.json()
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    def upload_blob(self, repository: str, data: bytes) -> str:
        """Upload ``data`` as a blob in one request (monolithic upload); return its digest.

        An upload session is used once: when the PUT is retried after a cut connection, the registry may have
        closed the session already (404 BLOB_UPLOAD_UNKNOWN). Then the blob is looked for (it may have arrived)
        and, if missing, uploaded again in a new session."""
        digest = _sha256(data)
        for _session in range(3):
            if self._request("HEAD", repository, f"/blobs/{digest}", accept_missing=True).status_code == 200:
                return digest
            started = self._request("POST", repository, "/blobs/uploads/")
            location = started.headers.get("Location")
            if not location:
                raise RegistryError(f"registry {self.host} started an upload without a Location")
            url = location if "://" in location else f"{self.base}{location}"
            separator = "&" if "?" in url else "?"
            finished = self._request("PUT", repository, "", url=f"{url}{separator}digest={digest}", data=data,
                                     headers={"Content-Type": "application/octet-stream"}, accept=(404,))
            if finished.status_code != 404:
                return digest
            LOGGER.warning("registry %s lost the upload session of blob %s; starting another", self.host, digest[:19])
        raise RegistryError(f"registry {self.host} lost the upload of blob {digest} three times")

    def get_blob(self, repository: str, digest: str) -> bytes:
        data = self._request("GET", repository, f"/blobs/{digest}").content
        if _sha256(data) != digest:
            raise RegistryError(f"blob {digest} from {self.host} does not match its digest")
        return data

    def tags(self, repository: str) -> set[str]:
        """Every tag of ``repository`` (empty when the repository does not exist), following pagination."""
        found: set[str] = set()
        path: str | None = "/tags/list?n=1000"
        url: str | None = None
        for _page in range(1000):  # a registry that links pages forever is stopped
            response = self._request("GET", repository, path or "", accept_missing=True, url=url)
            if response.status_code == 404:
                return found
            try:
                listed = response.json().get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"registry {self.host} sent a tag list for {repository} that is not JSON") from None
            found.update(str(t) for t in listed)
            following = response.links.get("next", {}).get("url")
            if not following:
                return found
            if "://" in following and not following.startswith(f"{self.base}/"):
                raise RegistryError(f"registry {self.host} links the next page of {repository}'s tags to another "
                                    f"host ({shown(following)}): not following it with our credentials")
            url, path = (following if "://" in following else f"{self.base}{following}"), None
        raise RegistryError(f"registry {self.host} kept paginating the tags of {repository}")

    def ping(self, *, patient: bool = True) -> None:
        """Raise ``RegistryError`` unless the registry answers its API root; impatient: one retry only."""
        self._request("GET", None, "/", policy=None if patient else RetryPolicy(
            retries=1, backoff_s=self.policy.backoff_s, sleep=self.policy.sleep))

def _token(response: requests.Response, host: str) -> str:
    """The token in a token service's answer."""
    if response.status_code != 200:
        raise RegistryError(f"token service of {host} refused the credentials (HTTP {response.status_code})")
    try:
        body = response.json()
    except ValueError:
        raise RegistryError(f"token service of {host} sent no JSON") from None
    token = body.get("token") or body.get("access_token")
    if not token:
        raise RegistryError(f"token service of {host} sent no token")
    return str(token)


def _untrusted(exc: Exception) -> bool:
    text = str(exc)
    return any(marker in text for marker in UNTRUSTED)


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

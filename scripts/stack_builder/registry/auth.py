"""Where a registry's credentials may go, and the answers to its auth challenges (Basic and Bearer).

Credentials go to the registry's own host only, over HTTPS, or over plain HTTP when the registry is loopback
or explicitly insecure (``STACK_REGISTRY_INSECURE=1``). An upload ``Location`` or a link to another host gets
no Authorization header at all, and a Bearer realm is given the credentials only over HTTPS (or on loopback,
or on the insecure registry's own host): else its token is fetched without them.
"""
from __future__ import annotations

import base64
import ipaddress
import logging
import re
from typing import Callable
from urllib.parse import urlsplit

import requests

from stack_builder.errors import RegistryError, shown
from stack_builder.registry.credentials import Credentials

LOGGER = logging.getLogger(__name__)

# (realm, query, Basic credentials or None) -> the token service's answer
TokenFetch = Callable[[str, dict[str, str], "tuple[str, str] | None"], requests.Response]


class RegistryAuth:
    """The Authorization header of each request to one registry, and the answers to its challenges."""

    def __init__(self, host: str, credentials: Credentials | None, *, insecure: bool, fetch_token: TokenFetch) -> None:
        self.host = host
        self.credentials = credentials
        self.insecure = insecure  # loopback, or STACK_REGISTRY_INSECURE=1: plain HTTP may carry credentials
        self.fetch_token = fetch_token
        self._bearer: dict[str, str] = {}  # scope -> "Bearer <token>"
        self._basic: str | None = None  # "Basic <user:password>", once the registry asked for it

    @property
    def sent_basic(self) -> bool:
        return self._basic is not None

    def header(self, url: str, scope: str) -> str | None:
        """The Authorization header for a request to ``url`` (None: send none)."""
        value = self._bearer.get(scope) or self._basic
        return value if value and self.may_carry(url) else None

    def may_carry(self, url: str) -> bool:
        """Whether a request to ``url`` may carry this registry's credentials (or a token it gave)."""
        parts = urlsplit(url)
        if parts.netloc.lower() != self.host.lower():
            return False
        return parts.scheme == "https" or (parts.scheme == "http" and self.insecure)

    def realm_may_have_credentials(self, realm: str) -> bool:
        """A token service gets the credentials over HTTPS, or over plain HTTP on loopback or on this insecure
        registry's own host."""
        parts = urlsplit(realm)
        if parts.scheme == "https":
            return True
        if parts.scheme != "http":
            return False
        return is_loopback(parts.netloc) or (self.insecure and parts.hostname == urlsplit(f"//{self.host}").hostname)

    def answer(self, challenge: str, scope: str, url: str) -> None:
        """Answer the WWW-Authenticate ``challenge`` of a request to ``url``; raise ``RegistryError`` when it
        cannot (no credentials, an unknown scheme, credentials asked for where they may not go)."""
        if self.credentials is None and not challenge.lower().startswith("bearer"):
            raise RegistryError(f"registry {self.host} requires login: set STACK_REGISTRY_USER and "
                                "STACK_REGISTRY_PASSWORD, or `docker login` so ~/.docker/config.json has it")
        scheme, _, params = challenge.partition(" ")  # an HTTP authentication scheme (RFC 9110), any case
        if scheme.lower() == "basic":
            self._answer_basic(scope, url)
        elif scheme.lower() == "bearer":
            self._answer_bearer(params, scope)
        else:
            raise RegistryError(f"registry {self.host} asks for unsupported auth '{scheme}'")

    def _answer_basic(self, scope: str, url: str) -> None:
        if self.credentials is None:
            raise RegistryError(f"registry {self.host} requires login")
        if not self.may_carry(url):
            raise RegistryError(f"{shown(url)} asks for the credentials of registry {self.host}, but it is not "
                                f"{self.host} over HTTPS: they are not sent there (for a registry that has no TLS, "
                                "set STACK_REGISTRY_INSECURE=1)")
        pair = f"{self.credentials.username}:{self.credentials.password}".encode()
        self._basic = f"Basic {base64.b64encode(pair).decode()}"
        self._bearer.pop(scope, None)

    def _answer_bearer(self, params: str, scope: str) -> None:
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.host} sent a Bearer challenge without a realm")
        query = {"service": fields.get("service", ""), "scope": fields.get("scope") or scope}
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        if auth and not self.realm_may_have_credentials(realm):
            LOGGER.warning("registry %s names a token service over plain HTTP (%s): asking it for a token without "
                           "the credentials", self.host, shown(realm))
            auth = None
        try:
            response = self.fetch_token(realm, query, auth)
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"token service of {self.host} unreachable ({type(exc).__name__})") from None
        self._bearer[scope] = f"Bearer {_token(response, self.host)}"


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses, with or without a port."""
    name = host[1:host.index("]")] if host.startswith("[") else host.partition(":")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


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

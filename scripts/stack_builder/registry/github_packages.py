"""GHCR's deletes, through the GitHub Packages API: GHCR refuses the distribution API's DELETE of a manifest.

A container package version is named by its digest; deleting the version removes the manifest and every
tag on it, which is what a yank asks. The token is the registry password (in Actions, GITHUB_TOKEN with
``packages: write``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

import requests

from stack_builder.errors import RegistryError
from stack_builder.settings import GITHUB_API_VAR as API_VAR, RegistrySettings

if TYPE_CHECKING:
    from stack_builder.registry.client import RegistryClient

LOGGER = logging.getLogger(__name__)

__all__ = ["API_VAR", "GHCR_HOSTS", "PackageVersion", "delete_version", "delete_version_id", "is_ghcr", "list_versions"]
GHCR_HOSTS = ("ghcr.io",)
TIMEOUT_S = 30
MAX_PAGES = 100


def is_ghcr(host: str) -> bool:
    return host.lower() in GHCR_HOSTS


def delete_version(repository: str, digest: str, token: str, *, api: str | None = None) -> bool:
    """Delete the version ``digest`` of the container package ``repository`` (``owner/name...``); False when
    the package has no such version. ``api``: the GitHub API (default: STACK_GITHUB_API as set now)."""
    api = (RegistrySettings.from_env().github_api if api is None else api).rstrip("/")
    owner, _, package = repository.partition("/")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": "2022-11-28"}
    session = requests.Session()
    for kind in ("orgs", "users"):  # the owner is an organisation or a user: the API has one path for each
        versions = f"{api}/{kind}/{quote(owner, safe='')}/packages/container/{quote(package, safe='')}/versions"
        for page in range(1, MAX_PAGES + 1):
            response = _call(session, "GET", f"{versions}?per_page=100&page={page}", headers)
            if response.status_code == 404:
                break
            listed = response.json()
            if not isinstance(listed, list) or not listed:
                return False
            found = next((v for v in listed if isinstance(v, dict) and v.get("name") == digest), None)
            if found is not None:
                _call(session, "DELETE", f"{versions}/{found['id']}", headers)
                LOGGER.info("deleted package version %s (%s) of %s", found["id"], digest[:19], repository)
                return True
        else:
            return False
    raise RegistryError(f"GitHub has no container package {repository} under an organisation or user "
                        f"{owner}: check the image name, and that the token may read its packages")


@dataclass(frozen=True)
class PackageVersion:
    """One version of a container package: a manifest (image, index or artifact), tagged or not."""

    id: int
    digest: str
    created: str
    tags: tuple[str, ...]


def list_versions(repository: str, token: str, *, api: str | None = None) -> list[PackageVersion]:
    """Every version of the container package ``repository``, untagged ones included."""
    versions, headers, session = _versions_url(repository, token, api)
    found: list[PackageVersion] = []
    for page in range(1, MAX_PAGES + 1):
        listed = _call(session, "GET", f"{versions}?per_page=100&page={page}", headers).json()
        if not isinstance(listed, list) or not listed:
            return found
        for item in listed:
            if not isinstance(item, dict) or not str(item.get("name", "")).startswith("sha256:"):
                continue
            container = (item.get("metadata") or {}).get("container") or {}
            found.append(PackageVersion(int(item["id"]), str(item["name"]), str(item.get("created_at") or ""),
                                        tuple(str(t) for t in container.get("tags") or [])))
    raise RegistryError(f"GitHub lists more than {MAX_PAGES * 100} versions of {repository}: delete some by hand first")


def delete_version_id(repository: str, version_id: int, token: str, *, api: str | None = None) -> bool:
    """Delete the package version ``version_id`` of ``repository``; False when it was gone already."""
    versions, headers, session = _versions_url(repository, token, api)
    return _call(session, "DELETE", f"{versions}/{version_id}", headers).status_code != 404


def _versions_url(repository: str, token: str, api: str | None) -> tuple[str, dict[str, str], requests.Session]:
    """The versions list of the package (under the organisation, else the user that owns it)."""
    api = (RegistrySettings.from_env().github_api if api is None else api).rstrip("/")
    owner, _, package = repository.partition("/")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": "2022-11-28"}
    session = requests.Session()
    for kind in ("orgs", "users"):
        versions = f"{api}/{kind}/{quote(owner, safe='')}/packages/container/{quote(package, safe='')}/versions"
        if _call(session, "GET", f"{versions}?per_page=1&page=1", headers).status_code != 404:
            return versions, headers, session
    raise RegistryError(f"GitHub has no container package {repository} under an organisation or user "
                        f"{owner}: check the image name, and that the token may read its packages")


def _call(session: requests.Session, method: str, url: str, headers: dict[str, str]) -> requests.Response:
    try:
        response = session.request(method, url, headers=headers, timeout=TIMEOUT_S)
    except requests.exceptions.RequestException as exc:
        raise RegistryError(f"the GitHub API did not answer {method} {url}: {type(exc).__name__}") from None
    if response.status_code in (401, 403):
        raise RegistryError(f"the GitHub API refused {method} {url} (HTTP {response.status_code}): the token needs "
                            "packages: write (delete) on this package")
    if response.status_code >= 400 and response.status_code != 404:
        raise RegistryError(f"the GitHub API answered {method} {url} with HTTP {response.status_code}")
    return response


def remove_manifest(registry: "RegistryClient", path: str, digest: str) -> None:
    """Remove the manifest ``digest`` and so every tag on it: GHCR through the GitHub Packages API (it refuses
    the distribution API's DELETE), any other registry through the distribution API."""
    if is_ghcr(registry.host):
        if registry.credentials is None:
            raise RegistryError("deleting on GHCR needs a token: set STACK_REGISTRY_USER and STACK_REGISTRY_PASSWORD")
        delete_version(path, digest, registry.credentials.password, api=registry.settings.github_api)
        return
    registry.delete_manifest(path, digest)

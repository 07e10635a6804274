"""An OCI distribution (v2) registry client: manifests by tag or digest, blobs, referrers, tag lists.

``RegistryClient`` is the API; how it reaches the host (TLS, auth, retries, deadlines, where credentials may
go) is ``transport.RegistryTransport``'s.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from stack_builder.errors import RegistryError, shown
from stack_builder.registry.mediatypes import OCI_INDEX
from stack_builder.retry import RetryPolicy
# Re-exported: callers name these from here.
from stack_builder.registry.auth import is_loopback
from stack_builder.registry.transport import RegistryTransport, trusted_ca

__all__ = ["Manifest", "RegistryClient", "RegistryTransport", "is_loopback", "trusted_ca"]

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str


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

    def has_blob(self, repository: str, digest: str) -> bool:
        """Whether the registry serves the blob ``repository@digest`` (a HEAD: nothing is downloaded)."""
        return self._request("HEAD", repository, f"/blobs/{digest}", accept_missing=True).status_code == 200

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


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()

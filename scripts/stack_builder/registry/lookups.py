"""Registry lookups for one run: each reference asked once, many asked at once (bounded).

Selection asks whether every image is in the registry, parents are looked up per platform, and
reuse reads the input key of candidate images. All of them go through one ``Lookups`` per run:
answers are remembered (a tag list per repository, a digest per reference, a manifest and a config
per digest), and ``prefetch`` asks for many repositories concurrently (leaving out those the registry's
catalog lacks, when a sample shows it lacks most).

Tags this run moves itself (pushes, reuse) are not looked up again afterwards: the run already
knows what they point at.
"""
from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

from stack_builder.errors import RegistryError
from stack_builder.registry import catalog, multiarch
from stack_builder.registry.client import Manifest, RegistryClient
from stack_builder.registry.mediatypes import INDEX_TYPES

LOGGER = logging.getLogger(__name__)

CONCURRENCY = 16  # requests in flight at once: enough to hide latency, few enough not to be throttled
T = TypeVar("T")


class Lookups:
    """Remembered, concurrent read-only lookups against one registry."""

    def __init__(self, registry: RegistryClient, *, concurrency: int = CONCURRENCY) -> None:
        self.registry = registry
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, ...], Future[object]] = {}

    # -- what is asked ---------------------------------------------------------------------------

    def tags(self, repository: str) -> frozenset[str]:
        return self._once(("tags", repository), lambda: frozenset(self.registry.tags(repository)))

    def has_tag(self, repository: str, tag: str) -> bool | None:
        """Whether the tag list has ``tag``; None when the registry would not list the tags."""
        try:
            return tag in self.tags(repository)
        except RegistryError:
            return None

    def digest(self, repository: str, reference: str) -> str | None:
        """The digest under ``reference``, or None; a tag the tag list lacks is not asked for."""
        if not reference.startswith("sha256:") and self.has_tag(repository, reference) is False:
            return None
        return self._once(("digest", repository, reference),
                          lambda: self.registry.manifest_digest(repository, reference))

    def manifest(self, repository: str, digest: str) -> Manifest | None:
        return self._once(("manifest", repository, digest), lambda: self.registry.get_manifest(repository, digest))

    def platform_digest(self, repository: str, tag: str, platform: str) -> str | None:
        """The digest of ``platform``'s image under ``tag`` (the index's entry, or the manifest itself)."""
        digest = self.digest(repository, tag)
        if digest is None:
            return None
        manifest = self.manifest(repository, digest)
        if manifest is None:
            return None
        if manifest.media_type in INDEX_TYPES:
            wanted = multiarch.split(platform)
            for item in multiarch.image_entries(json.loads(manifest.body)):
                found = item.get("platform")
                if isinstance(found, dict) and found.get("os") == wanted["os"] and \
                        found.get("architecture") == wanted["architecture"]:
                    return str(item["digest"])
            return None
        config = self.config(repository, digest)
        claimed = multiarch.split(platform)
        if (config.get("os"), config.get("architecture")) != (claimed["os"], claimed["architecture"]):
            return None
        return digest

    def config(self, repository: str, digest: str) -> dict[str, object]:
        """The image config of the platform manifest ``digest`` (empty for anything else)."""
        def load() -> dict[str, object]:
            manifest = self.manifest(repository, digest)
            if manifest is None or manifest.media_type in INDEX_TYPES:
                return {}
            config_digest = json.loads(manifest.body).get("config", {}).get("digest")
            if not config_digest:
                return {}
            loaded = json.loads(self.registry.get_blob(repository, config_digest))
            return loaded if isinstance(loaded, dict) else {}
        return self._once(("config", repository, digest), load)

    def labels(self, repository: str, digest: str) -> dict[str, str]:
        inner = self.config(repository, digest).get("config")
        found = inner.get("Labels") if isinstance(inner, dict) else None
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    # -- many at once ----------------------------------------------------------------------------

    def prefetch(self, repositories: Iterable[str]) -> None:
        """Ask for the tag lists of ``repositories`` concurrently; errors surface when they are used. Of many,
        those the registry's catalog lacks are not asked (``catalog``): their tag lists are empty."""
        wanted = sorted(set(repositories))
        if len(wanted) >= catalog.FROM_REPOSITORIES:
            sample = catalog.sample_of(wanted)
            lacking = catalog.absent(self.registry, wanted, dict(zip(sample, self.each(self._tags_or_none, sample))))
            for repository in lacking:
                self._once(("tags", repository), frozenset)
            wanted = [repository for repository in wanted if repository not in lacking]
        self.each(lambda repo: self._quietly(self.tags, repo), wanted)

    def _tags_or_none(self, repository: str) -> frozenset[str] | None:
        try:
            return self.tags(repository)
        except RegistryError:
            return None

    def each(self, work: Callable[[str], T], items: Iterable[str]) -> list[T]:
        """``work`` over ``items`` on at most ``concurrency`` threads, results in order."""
        todo = list(items)
        if len(todo) <= 1:
            return [work(item) for item in todo]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo)),
                                thread_name_prefix="registry-lookup") as pool:
            return list(pool.map(work, todo))

    @staticmethod
    def _quietly(lookup: Callable[[str], object], item: str) -> None:
        try:
            lookup(item)
        except RegistryError:
            pass  # remembered; raised again to whoever needs the answer

    # -- remembering -----------------------------------------------------------------------------

    def _once(self, key: tuple[str, ...], compute: Callable[[], T]) -> T:
        """Compute ``key`` once per run; callers that arrive meanwhile wait for the same answer. A malformed
        manifest or config (not JSON, missing fields) is a ``RegistryError``, never an internal error."""
        def checked() -> T:
            try:
                return compute()
            except (ValueError, KeyError, AttributeError, TypeError) as exc:
                raise RegistryError(f"registry {self.registry.host} sent something malformed for "
                                    f"{' '.join(key[1:])}: {type(exc).__name__}") from None

        with self._lock:
            future = self._answers.get(key)
            mine = future is None
            if future is None:
                future = Future()
                self._answers[key] = future
        if mine:
            try:
                future.set_result(checked())
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()  # type: ignore[return-value]

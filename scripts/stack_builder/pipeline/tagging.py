"""Putting one image under its tags: pushed through the engine, or written registry-side, each tag read back.

A ``Tagger`` belongs to one image's publish step (one thread). It keeps, as it goes, every tag it moved and
what the report must also say, so that a failure part way still says exactly which tags moved.
"""
from __future__ import annotations

import json
import logging
from typing import IO, Sequence

from stack_builder import signals
from stack_builder.engine.push import push
from stack_builder.errors import RegistryError, StepFailed
from stack_builder.pipeline.context import BuildContext, PlatformOutcome
from stack_builder.registry import multiarch, statements
from stack_builder.registry.mediatypes import INDEX_TYPES
from stack_builder.spec.references import Repository

LOGGER = logging.getLogger(__name__)


class Tagger:
    """Writes one image's tags, and remembers which it moved (``moved``) and what to note (``notes``)."""

    def __init__(self, ctx: BuildContext, name: str, log: IO[str]) -> None:
        self._ctx = ctx
        self._name = name
        self._log = log
        self.repo: Repository = ctx.repository(name)
        self.moved: dict[str, str] = {}  # tag -> the digest it points at now
        self.notes: list[str] = []
        self.made_index: str | None = None  # an index this run assembled (not one it reused)

    def put(self, tags: Sequence[str], *, digest: str | None) -> str:
        """Put the image under ``tags``, in order, recording each tag as it moves. With ``digest`` None the first
        tag is pushed through the engine; every other tag is written registry-side. A per-commit tag is written
        once: if it holds another digest already, it is left as it is and the report says so."""
        for tag in tags:
            if digest is not None and self._written_once(tag):
                existing = self._existing(tag)
                if existing == digest:
                    self.moved[tag] = digest
                    continue
                if existing is not None and self._vouched(existing):
                    self._note(f"{tag} already holds {existing}: a per-commit tag is written once, so it still "
                               f"points there, not at {digest}")
                    continue
                if existing is not None:  # no statement of ours says anything of it: it is not ours to keep
                    self._note(f"{tag} held {existing}, which no statement signed by this stack vouches for: "
                               f"replaced by {digest}")
            digest = self._retag(digest, tag) if digest is not None else self._push_verified(tag)
            self.moved[tag] = digest
        if digest is None:
            raise StepFailed(f"no tag of {self.repo} was written")
        return digest

    def index(self, built: Sequence[PlatformOutcome], tags: Sequence[str], *, source: str | None) -> str:
        """The image's index under ``tags``: the reused index itself when every platform came from its tag
        (same digest, so its gate records still apply), else a new index of the platforms published."""
        ctx, repo = self._ctx, self.repo
        try:
            if source is not None and ctx.lookups is not None:
                index_digest = ctx.lookups.digest(repo.path, source)
                index = ctx.lookups.manifest(repo.path, index_digest) if index_digest else None
                # Every entry, attestations included: an index with anything more than the platforms built is
                # not reused (ours never hold more).
                items = json.loads(index.body).get("manifests") \
                    if index is not None and index.media_type in INDEX_TYPES else None
                listed = [str(i.get("digest")) for i in items if isinstance(i, dict)] if isinstance(items, list) else []
                listed_set = set(listed) if len(set(listed)) == len(listed) else set()
                if index_digest and listed_set == {str(o.digest) for o in built}:
                    return self.put(tags, digest=index_digest)
            entries = [multiarch.Entry(o.platform, str(o.digest), "", 0) for o in built]
            signals.check()
            digest = multiarch.publish_index(ctx.registry, repo.path, list(tags[:1]), entries)
            self.moved[tags[0]] = digest
            self.made_index = digest
            return self.put(tags[1:], digest=digest) if tags[1:] else digest
        except RegistryError as exc:
            raise StepFailed(f"index not published: {exc}") from None

    def _vouched(self, digest: str) -> bool:
        """Whether a digest found under a write-once tag is ours: always without signing (the registry is
        trusted), else only with a statement the stack's key or identity signed."""
        signing = self._ctx.signing
        if signing is None:
            return True
        return bool(statements.verified(signing, f"{self.repo}@{digest}", self._ctx.credentials,
                                        commit=self._ctx.revision.commit))

    def _note(self, note: str) -> None:
        self.notes.append(note)
        self._log.write(f"== {note}\n")
        LOGGER.warning("%s: %s", self._name, note)

    def _existing(self, tag: str) -> str | None:
        try:
            return self._ctx.registry.manifest_digest(self.repo.path, tag)
        except RegistryError as exc:
            raise StepFailed(f"cannot read {self.repo}:{tag} before writing it: {exc}") from None

    def _written_once(self, tag: str) -> bool:
        commit_tag = self._ctx.plan.commit_tag
        return commit_tag is not None and (tag == commit_tag or tag.startswith(commit_tag + "-"))

    def _retag(self, digest: str, tag: str) -> str:
        """Put the published manifest ``digest`` under ``tag`` registry-side (same bytes, same digest)."""
        ctx, repo = self._ctx, self.repo
        try:
            manifest = ctx.lookups.manifest(repo.path, digest) if ctx.lookups is not None else \
                ctx.registry.get_manifest(repo.path, digest)
            if manifest is None:
                raise StepFailed(f"{repo}@{digest} disappeared from the registry before it could be reused")
            signals.check()
            stored = ctx.registry.put_manifest(repo.path, tag, manifest.body, manifest.media_type)
            found = ctx.registry.manifest_digest(repo.path, tag)
            if stored != digest or found != digest:
                raise StepFailed(f"reusing {repo}@{digest}: the registry has {found or 'nothing'} under {tag}")
            self._log.write(f"== tagged {repo}:{tag} -> {digest} (registry-side, no push)\n")
        except RegistryError as exc:
            raise StepFailed(f"could not reuse {repo}@{digest}: {exc}") from None
        return digest

    def _push_verified(self, tag: str) -> str:
        ctx, repo = self._ctx, self.repo
        signals.check()  # nothing is pushed once the run was asked to stop
        digest = push(ctx.engine, str(repo), tag, auth=ctx.auth(), log=self._log, policy=ctx.push_policy)
        try:
            found = ctx.registry.manifest_digest(repo.path, tag)
        except RegistryError as exc:
            raise StepFailed(f"pushed {repo}:{tag} but could not read it back: {exc}") from None
        if found != digest:
            raise StepFailed(f"registry has {found or 'nothing'} for {repo}:{tag}, but {digest} was pushed")
        return digest

"""What a run believes of a digest it did not build: reuse and parents, on a signed statement, never a label.

With signing configured, a published digest stands in for a build (reuse), or is built on (a parent from
the registry), only when a statement signed by the stack's key or identity says it was built and tested for
the same input key. A label says nothing: anyone who can push can write one. Without signing (the local
default) reuse trusts the registry, and the run says so once.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import IO

from stack_builder.errors import RegistryError, StepFailed
from stack_builder.engine import inputkey
from stack_builder.pipeline.context import BuildContext
from stack_builder.plan.plan import ParentRef, lookup_tags
from stack_builder.records import revocations
from stack_builder.registry import multiarch, statements
from stack_builder.registry.statements import BuildStatement

LOGGER = logging.getLogger(__name__)

_warned = threading.Event()


@dataclass(frozen=True)
class Reusable:
    digest: str
    tag: str  # the tag it was found under
    statement: BuildStatement | None  # None when no signing is configured (the registry is trusted)


def reusable(ctx: BuildContext, name: str, platform: str, input_key: str | None, log: IO[str]) -> Reusable | None:
    """This platform's input key among the published images, vouched for by a statement when signing is
    configured. Looked for under this commit's tags first (a fast-forward merge built it already), then the
    lookup tags. A candidate without a valid statement, or yanked, is not reused: the image is built."""
    lookups = ctx.lookups
    if lookups is None or input_key is None:
        return None
    if ctx.signing is None and not _warned.is_set():
        _warned.set()
        LOGGER.warning("reuse trusts the registry: no signing is configured, so an image with the same input-key "
                       "label is reused on the label's word (set STACK_SIGNING_KEY to reuse only signed statements)")
    repo = ctx.repository(name)
    try:
        for tag in dict.fromkeys([*ctx.plan.tags()[1:], *lookup_tags(ctx.spec.tag_prefix, ctx.plan.tag)]):
            digest = lookups.digest(repo.path, multiarch.platform_tag(tag, platform)) if ctx.multi(name) else None
            digest = digest or lookups.platform_digest(repo.path, tag, platform)
            if not digest or lookups.labels(repo.path, digest).get(inputkey.LABEL) != input_key:
                continue
            if lookups.has_tag(repo.path, revocations.yank_tag(digest)):
                revoked = revocations.read(ctx.registry, repo.path, digest)
                log.write(f"== not reused: {repo}@{digest} has input key {input_key}, but "
                          f"{revoked.describe() if revoked else 'it was yanked'}\n")
                LOGGER.info("%s (%s): not reusing yanked %s: building", name, platform, digest[:19])
                return None
            statement = None
            if ctx.signing is not None:
                statement = statements.vouching(statements.verified(ctx.signing, f"{repo}@{digest}", ctx.credentials,
                                                                    commit=ctx.revision.commit), input_key=input_key)
                if statement is None:
                    log.write(f"== not reused: {repo}@{digest} (tag {tag}) has the input-key label {input_key}, but "
                              f"no statement signed by {ctx.signing.describe()} says it was built and tested so\n")
                    LOGGER.warning("%s (%s): %s:%s carries our input key but no valid statement: building, not "
                                   "reusing it", name, platform, repo, tag)
                    continue
            log.write(f"== reused {repo}@{digest} from tag {tag}: its input key is {input_key}"
                      f"{' (statement verified)' if statement else ''}\n")
            return Reusable(digest, tag, statement)
    except RegistryError as exc:  # not finding a reusable image costs a build, never a wrong image
        log.write(f"== not reused: cannot look for input key {input_key}: {exc}\n")
        LOGGER.warning("%s (%s): building, since the registry cannot be asked for a reusable image: %s",
                       name, platform, exc)
    return None


def check_parent(ctx: BuildContext, name: str, parent_name: str, parent: ParentRef, log: IO[str]) -> None:
    """A parent this run did not build is built on, when the run pushes, only as a published digest: never a local
    image found by name, never a yanked one, and (when signing is configured) never one no statement vouches for.
    Raises ``StepFailed`` saying what to do."""
    if not ctx.push:
        return
    repository, _, digest = parent.ref.partition("@")
    if not digest.startswith("sha256:"):
        raise StepFailed(f"parent {parent_name} is {parent.ref}, not a published digest: a pushed image is built "
                         f"only on a parent in the registry with a signed statement; build it too (--image "
                         f"{parent_name})")
    path = repository.split("/", 1)[1] if "/" in repository else repository
    try:
        if revocations.read(ctx.registry, path, digest) is not None:
            raise StepFailed(f"parent {parent.ref} was yanked: build {parent_name} again (--image {parent_name})")
    except RegistryError as exc:
        raise StepFailed(f"cannot tell whether parent {parent.ref} was yanked: {exc}") from None
    if ctx.signing is None:  # (without signing, the registry is trusted: the run said so)
        return
    if not statements.verified(ctx.signing, parent.ref, ctx.credentials, commit=ctx.revision.commit):
        raise StepFailed(f"parent {parent.ref} has no statement signed by {ctx.signing.describe()}: it was not "
                         f"built and tested by this stack; build it too (--image {parent_name})")
    log.write(f"== parent {parent.ref}: statement verified\n")
    LOGGER.debug("%s: parent %s verified", name, parent.ref)

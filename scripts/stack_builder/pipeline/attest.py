"""What a published image carries besides its tags: content tags, an SBOM per platform, and signatures.

Content tags are worked out before anything is pushed (a bad one fails the image there); SBOMs and
signatures are written once the digests are in the registry, after the tests passed.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from typing import IO, Any, Mapping, Sequence

from stack_builder import signals
from stack_builder.errors import RegistryError, StepFailed, shown
from stack_builder.pipeline.context import BuildContext, PlatformOutcome
from stack_builder.checks import inventory
from stack_builder.records import sbom
from stack_builder.registry import multiarch, referrers, statements
from stack_builder.registry.statements import BuildStatement
from stack_builder.version import version as tool_version
from stack_builder.registry.mediatypes import SBOM_ARTIFACT
from stack_builder.registry.lookups import Lookups
from stack_builder.spec.references import Repository, reserved
from stack_builder.spec.stack_spec import ImageSpec

LOGGER = logging.getLogger(__name__)

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # Docker's tag grammar


def content_tags(build_tag: str, record: Mapping[str, Any]) -> list[str]:
    """The tags ``<build tag>-<pattern filled>`` from the record's content-tag outputs. Raises ``StepFailed``
    naming the pattern and what it got for any command that failed or any tag Docker would refuse."""
    tags, problems = [], []
    for item in record.get("content_tags") or []:
        name, output, code = str(item["name"]), str(item["output"]), int(item["exit_code"])
        if code != 0:
            problems.append(f"content tag '{name}': `{shown(item['command'], 80)}` exited {code}: "
                            f"{shown(output.strip().splitlines()[-1] if output.strip() else 'no output', 200)}")
            continue
        value = output.strip()
        filled = name.replace("{}", value)
        tag = f"{build_tag}-{filled}"
        if not value or "\n" in value:
            problems.append(f"content tag '{name}': the command must print one line, it printed "
                            f"'{shown(value, 80) or 'nothing'}'")
        elif not TAG_RE.fullmatch(tag):
            problems.append(f"content tag '{name}' gives '{shown(tag, 160)}', which is not a valid Docker tag "
                            "(letters, digits, _ . - only, at most 128 characters): trim the command's output")
        elif reserved(filled):
            problems.append(f"content tag '{name}' gives '{shown(tag, 160)}', which looks like a tag the builder "
                            "writes itself (a platform, stable, yanked or commit tag): choose another pattern")
        elif tag not in tags:
            tags.append(tag)
    if problems:
        raise StepFailed("content tags refused, nothing was pushed: " + "; ".join(problems))
    return tags


def inherited_content_tags(lookups: Lookups, image: ImageSpec, repository: str, build_tag: str,
                           digest: str) -> list[str]:
    """A reused image's content tags: the ones an earlier build put on the same digest (``<its tag>-<filled>``),
    under this run's build tag."""
    patterns = [re.compile(r"-(" + re.escape(t.name).replace(re.escape("{}"), r"[A-Za-z0-9_.-]+") + r")$")
                for t in image.content_tags]
    found: list[str] = []
    for tag in sorted(lookups.tags(repository)):
        for pattern in patterns:
            match = pattern.search(tag)
            candidate = f"{build_tag}-{match.group(1)}" if match else ""
            if match and candidate not in found and TAG_RE.fullmatch(candidate) and \
                    lookups.digest(repository, tag) == digest:
                found.append(candidate)
    return found


def attach_sboms(ctx: BuildContext, name: str, repo: Repository, record: Mapping[str, Any],
                 built: list[PlatformOutcome], digests: Mapping[str, str], log: IO[str]) -> dict[str, str]:
    """A CycloneDX SBOM for each platform image pushed, attached to its digest; {platform: SBOM digest}.
    The first platform's inventory is the record's; other platforms are asked in a container of their own."""
    attached: dict[str, str] = {}
    for index, outcome in enumerate(built):
        digest = digests.get(outcome.platform)
        if not digest or outcome.reused_from:  # a reused platform image has its SBOM from its own build
            continue
        signals.check()
        packages = record["packages"] if index == 0 else inventory.package_inventory(
            ctx.engine, outcome.image_id or "", timeout_s=ctx.timeout(name, "info_cmds"))
        document = sbom.document(packages, repository=str(repo), digest=digest, platform=outcome.platform)
        try:
            attached[outcome.platform] = referrers.attach(
                ctx.registry, repo.path, digest, SBOM_ARTIFACT, document,
                annotations={"org.opencontainers.image.created": str(record.get("created", "")),
                             "io.stack-builder.platform": outcome.platform})
        except RegistryError as exc:
            raise StepFailed(f"the SBOM of {repo}@{digest} ({outcome.platform}) was not stored: {exc}") from None
        log.write(f"== SBOM ({sbom.count(packages)} packages) attached to {repo}@{digest}: "
                  f"{attached[outcome.platform]}\n")
    return attached


def sign_built(ctx: BuildContext, name: str, repo: Repository, built: Sequence[PlatformOutcome],
               index: str | None, content: Sequence[str], log: IO[str]) -> list[str]:
    """Sign every digest this run built and tested, and attach its signed statement: each platform image built
    here, and ``index`` when this run assembled it. A reused platform is never signed again: it was reused
    because its own statement verified. Returns the digests signed (and the reused ones verified).
    A failure fails the image: it is pushed but unsigned, and a promotion will refuse it."""
    if ctx.signing is None:
        return []
    done = []
    for outcome in built:
        if outcome.reused_from:
            done.append(str(outcome.digest))
            continue
        parent = (outcome.parent or "").rpartition("@")[2]
        statement = BuildStatement(
            str(outcome.digest), name, ctx.revision.commit, outcome.input_key or "", outcome.platform,
            parents=(parent,) if parent.startswith("sha256:") else (),
            tests={"passed": outcome.tests.passed, "failed": outcome.tests.failed, "skipped": outcome.tests.skipped},
            content_tags=_filled(ctx.plan.tag, content), builder=tool_version(),
            example_output=outcome.model.functional.output if outcome.model is not None else "")
        _sign(ctx, repo, statement, log)
        # An engine with the containerd image store pushes even one platform as an index: its platform manifest
        # is signed too, since a promotion verifies every manifest a tag serves.
        for entry in multiarch.platform_manifests(ctx.registry, repo.path, str(outcome.digest)):
            _sign(ctx, repo, dataclasses.replace(statement, digest=entry), log)
            done.append(entry)
        done.append(str(outcome.digest))
    if index is not None and index not in done:
        _sign(ctx, repo, BuildStatement(index, name, ctx.revision.commit, "", parents=tuple(
            str(o.digest) for o in built), content_tags=_filled(ctx.plan.tag, content), builder=tool_version()), log)
        done.append(index)
    LOGGER.info("%s: signed %d digest(s) and attached their statements", name, len(done))
    return list(dict.fromkeys(done))


def _filled(build_tag: str, tags: Sequence[str]) -> tuple[str, ...]:
    """What a statement keeps of content tags: the filled part alone (``debian-12``), so a later run that reuses
    the digest puts them under its own build tag, taken from the statement, never from tags a branch can write."""
    return tuple(t[len(build_tag) + 1:] for t in tags if t.startswith(build_tag + "-"))


def statement_content_tags(build_tag: str, statements: Sequence[BuildStatement]) -> list[str] | None:
    """A reused image's content tags under this run's build tag, from its statement (None without one)."""
    if not statements:
        return None
    tags = [f"{build_tag}-{filled}" for filled in statements[0].content_tags]
    return [t for t in tags if TAG_RE.fullmatch(t)]


def _sign(ctx: BuildContext, repo: Repository, statement: BuildStatement, log: IO[str]) -> None:
    signing = ctx.signing
    if signing is None:
        return
    signals.check()
    reference = f"{repo}@{statement.digest}"
    output = signing.sign(reference, ctx.credentials)
    statements.attach(signing, reference, statement, ctx.credentials)
    log.write(f"== signed {reference} and attached its statement ({signing.describe()})\n{output}")

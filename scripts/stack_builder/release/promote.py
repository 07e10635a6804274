"""Promotion by registry-side retagging: `<q>-<branch>` -> `<q>-stable`, and `<q>-stable` -> `stable`.

A retag is a GET of the source manifest (every manifest and index type accepted) and a PUT of
the identical bytes under the target tag: no layer moves, and a multi-platform index keeps every
platform. First everything is planned (every source resolved to a digest, every gate checked);
tags move only when the whole plan passes (`promotion_run` runs a promotion or rollback end to end). Each move re-checks that neither the source nor the
target changed since planning, so a racing promotion is refused, not overwritten. A re-run after
a failure skips the targets already in place and completes the rest.
"""
from __future__ import annotations

import getpass
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Callable

from stack_builder import signals
from stack_builder.spec.references import PLATFORM_SUFFIX_RE
from stack_builder.registry import multiarch
from stack_builder.registry.mediatypes import INDEX_TYPES
from stack_builder.errors import RegistryError, StackError
from stack_builder.records import gates, revocations
from stack_builder.records.gates import GateRecord
from stack_builder.registry.client import RegistryClient
from stack_builder.registry import statements
from stack_builder.registry.signing import Signing
from stack_builder.settings import CiSettings
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)

QUARTER_BRANCH_RE = re.compile(r"^(?P<quarter>\d{4}\.[1-4])-(?P<branch>[A-Za-z0-9_][A-Za-z0-9_.-]{0,100})$")
QUARTER_RE = re.compile(r"^\d{4}\.[1-4]$")


class MoveState(str, Enum):
    """Where one tag move of a promotion stands."""

    PLANNED = "planned"
    MOVED = "moved"
    ALREADY = "already in place"
    FAILED = "failed"
    NOT_RUN = "not run"

    def __str__(self) -> str:
        return self.value


PLANNED, MOVED, ALREADY, FAILED, NOT_RUN = (MoveState.PLANNED, MoveState.MOVED, MoveState.ALREADY, MoveState.FAILED,
                                            MoveState.NOT_RUN)


class PromotionRefused(StackError):
    """The plan did not pass: nothing was moved."""


class PromotionIncomplete(StackError):
    """Some tags moved, then a failure: the message says exactly which."""


@dataclass
class Move:
    image: str
    repository: str  # path in the registry
    source_tag: str
    target_tag: str
    source_digest: str | None = None
    media_type: str | None = None
    target_before: str | None = None
    target_after: str | None = None
    gates: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    state: MoveState = MoveState.PLANNED
    body: bytes = field(default=b"", repr=False)
    # The gate records the move relies on ({"gpu": record}): with signing, each needs its job's statement
    relied_on: dict[str, GateRecord] = field(default_factory=dict, repr=False)

    def as_record(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("body")
        data.pop("relied_on")
        return data


def parse_tag(tag: str, *, global_stable: bool) -> tuple[str, str]:
    """(source tag, target tag) for a --tag value; a clear error for anything else."""
    if global_stable:
        if not QUARTER_RE.fullmatch(tag):
            raise StackError(f"--tag '{tag}' with --global-stable must be a quarter YYYY.Q (Q from 1 to 4), "
                             "e.g. --tag 2024.1: `stable` moves to that quarter's <YYYY.Q>-stable images")
        return f"{tag}-stable", "stable"
    found = QUARTER_BRANCH_RE.fullmatch(tag)
    if not found:
        raise StackError(f"--tag '{tag}' must be YYYY.Q-branch (Q from 1 to 4), e.g. --tag 2024.1-main; "
                         "for the global stable use --tag YYYY.Q --global-stable")
    if found.group("branch") == "stable":
        raise StackError(f"--tag '{tag}' is already a stable tag: promote a branch build, e.g. "
                         f"{found.group('quarter')}-main")
    if PLATFORM_SUFFIX_RE.search(tag):
        raise StackError(f"--tag '{tag}' is a per-platform tag: promote the build's tag, whose index holds "
                         f"every platform (e.g. {PLATFORM_SUFFIX_RE.sub('', tag)})")
    return tag, f"{found.group('quarter')}-stable"


def plan(spec: Spec, registry: RegistryClient, host: str, tag: str, *, global_stable: bool,
         skip_gpu_test: bool, allow_platform_drop: bool = False, signing: Signing | None = None,
         on_trusted_ref: Callable[[str], bool] | None = None) -> list[Move]:
    """Resolve every source and check every gate. Raises ``PromotionRefused`` listing every problem."""
    source, target = parse_tag(tag, global_stable=global_stable)
    moves = []
    for name, image in spec.images.items():
        repository = image.repository.on(host).path
        move = Move(image=name, repository=repository, source_tag=source, target_tag=target)
        manifest = registry.get_manifest(repository, source)
        if manifest is None:
            move.problems.append(f"{host}/{repository}:{source} does not exist")
            moves.append(move)
            continue
        move.source_digest, move.media_type, move.body = manifest.digest, manifest.media_type, manifest.body
        move.target_before = registry.manifest_digest(repository, target)
        if manifest.media_type in INDEX_TYPES:  # every entry counts, those marked as attestations too
            move.problems.extend(multiarch.attestation_problems(registry, repository, json.loads(manifest.body)))
        check_not_yanked(registry, move)
        check_gates(registry, move, gpu=image.gpu, model=image.model is not None, skip_gpu_test=skip_gpu_test)
        moves.append(move)
    check_set(spec, registry, moves, allow_platform_drop=allow_platform_drop)
    if signing is not None:
        check_signatures(signing, registry, host, moves, on_trusted_ref=on_trusted_ref)
    problems = [f"{m.image}: {p}" for m in moves for p in m.problems]
    if problems:
        raise PromotionRefused("promotion refused; no tag was moved:\n  " + "\n  ".join(problems) +
                               "\n" + table(moves))
    return moves


def check_gates(registry: RegistryClient, move: Move, *, gpu: bool, model: bool, skip_gpu_test: bool) -> None:
    """The GPU and model gate records of the digest the move would publish."""
    if gpu:
        move.gates["gpu"] = _gpu_gate(registry, move, str(move.source_digest), skip_gpu_test)
    if model:
        move.gates["model"] = _model_gate(registry, move, str(move.source_digest))


def check_set(spec: Spec, registry: RegistryClient, moves: list[Move], *, allow_platform_drop: bool) -> None:
    """The moves as a set: every child was built on the parent digest promoted with it, and no platform the
    target has now is dropped (unless allowed)."""
    by_image = {m.image: m for m in moves if m.source_digest}
    configs = {m.image: _platform_configs(registry, m.repository, m.source_digest, m.media_type, m.body)
               for m in by_image.values()}
    for move in by_image.values():
        parent = spec.images[move.image].parent
        if parent in by_image:
            parent_move = by_image[parent]
            allowed = {str(parent_move.source_digest), *_entries(parent_move.media_type, parent_move.body)}
            for platform, config in configs[move.image].items():
                labels = (config.get("config") or {}).get("Labels") or {}
                base = str(labels.get("org.opencontainers.image.base.name", "")).rpartition("@")[2]
                if base not in allowed:
                    move.problems.append(
                        f"its {platform} image was built on {parent}@{base or '(no recorded parent digest)'}, but "
                        f"{parent}:{parent_move.source_tag} is {parent_move.source_digest}: the set is inconsistent; "
                        f"rebuild {move.image} on that parent, then promote")
        if move.target_before and not allow_platform_drop:
            target = registry.get_manifest(move.repository, move.target_before)
            had = set(_platform_configs(registry, move.repository, move.target_before, target.media_type,
                                        target.body)) if target else set()
            dropped = sorted(had - set(configs[move.image]))
            if dropped:
                move.problems.append(f"{move.target_tag} has {', '.join(dropped)} now, which "
                                     f"{move.source_tag} lacks: refused (--allow-platform-drop to drop it)")


def check_not_yanked(registry: RegistryClient, move: Move) -> None:
    """A yanked digest (the index or any platform image in it) is refused, with the yank's reason."""
    for digest in [str(move.source_digest), *_entries(move.media_type, move.body)]:
        revoked = revocations.read(registry, move.repository, digest)
        if revoked is not None:
            move.gates["yank"] = "yanked"
            move.problems.append(f"{revoked.describe()}; yanked digests are never promoted")


def check_signatures(signing: Signing, registry: RegistryClient, host: str, moves: list[Move], *,
                     on_trusted_ref: Callable[[str], bool] | None = None) -> None:
    """Every digest a move would publish (the index and each platform image) carries a valid signature and a build
    statement. Keyless, from the trusted ref; or, when ``on_trusted_ref`` says the commit the image was built
    from is on it (a fast-forward merge reused what its branch built), from the same workflow on the branch,
    bound to that very commit."""
    for move in moves:
        if not move.source_digest:
            continue
        failures = []
        commit = _built_from(registry, move, on_trusted_ref) if signing.binds_commits else ""
        for digest in [move.source_digest, *_entries(move.media_type, move.body)]:
            reference = f"{host}/{move.repository}@{digest}"
            why = _unvouched(signing, registry, reference, "")
            if why is not None and commit:
                why = _unvouched(signing, registry, reference, commit)
            if why is not None:
                failures.append(f"{digest[:19]}: {why}")
        move.gates["signature"] = "failed" if failures else "verified"
        move.problems.extend(f"signature of {f}" for f in failures)
        check_gate_statements(signing, registry, host, move, commit=commit)


def _unvouched(signing: Signing, registry: RegistryClient, reference: str, commit: str) -> str | None:
    why = signing.verify(reference, registry.credentials, commit=commit)
    if why is None and not statements.verified(signing, reference, registry.credentials, commit=commit):
        why = f"no build statement signed by {signing.describe()}: nothing says this stack built and tested it"
    return why


def _built_from(registry: RegistryClient, move: Move, on_trusted_ref: Callable[[str], bool] | None) -> str:
    """The commit the move's image was built from (its revision label), when it is on the trusted ref; else ""."""
    if on_trusted_ref is None:
        return ""
    configs = _platform_configs(registry, move.repository, move.source_digest, move.media_type, move.body)
    commits = {str(((c.get("config") or {}).get("Labels") or {}).get("org.opencontainers.image.revision", ""))
               for c in configs.values()}
    commit = commits.pop() if len(commits) == 1 else ""
    return commit if commit and on_trusted_ref(commit) else ""


def check_gate_statements(signing: Signing, registry: RegistryClient, host: str, move: Move, *,
                          commit: str = "") -> None:
    """Each gate record the move relies on is vouched for by the newest statement of the job that ran the gate,
    signed by that job's signer and PASSED: a record anyone with write access could have written is not enough."""
    for gate, record in move.relied_on.items():
        reference = f"{host}/{move.repository}@{move.source_digest}"
        statement = gates.vouching(signing, registry, reference, record.kind)
        if statement is None and commit:  # (a statement from the trusted ref, pass or fail, is never overruled)
            statement = gates.vouching(signing, registry, reference, record.kind, commit=commit)
        if statement is not None and statement.passed:
            continue
        move.gates[gate] = "not vouched for"
        said = f" (its newest statement says FAILED: {statement.summary})" if statement is not None else ""
        move.problems.append(f"{record.kind} gate record is not vouched for by a statement signed by "
                             f"{gates.signer_for(signing, record.kind).describe()}{said}")


def _entries(media_type: str | None, body: bytes) -> list[str]:
    if media_type not in INDEX_TYPES:
        return []
    return [str(item["digest"]) for item in multiarch.image_entries(json.loads(body))]


def _platform_configs(registry: RegistryClient, repository: str, digest: str | None, media_type: str | None,
                      body: bytes) -> dict[str, dict[str, Any]]:
    """{os/arch: image config} of a manifest or of every image in an index."""
    manifests = [(d, registry.get_manifest(repository, d)) for d in _entries(media_type, body)] \
        if media_type in INDEX_TYPES else [(str(digest), None)]
    found: dict[str, dict[str, Any]] = {}
    for entry_digest, manifest in manifests:
        raw = manifest.body if manifest is not None else body
        config_digest = json.loads(raw).get("config", {}).get("digest")
        if not config_digest:
            continue
        config = json.loads(registry.get_blob(repository, config_digest))
        found[f"{config.get('os')}/{config.get('architecture')}"] = config
    return found


def _gpu_gate(registry: RegistryClient, move: Move, digest: str, skip: bool) -> str:
    if skip:
        return "skipped (--skip-gpu-test)"
    record = gates.read_record(registry, move.repository, digest, gates.GPU)
    if record is None:
        move.problems.append(f"no GPU test record for {digest}: run `stack-builder test_gpu --tag "
                             f"{move.source_tag}` on a GPU host first (or --skip-gpu-test, which is recorded)")
        return "no record"
    if not record.passed:
        move.problems.append(f"the GPU tests of {digest} failed ({record.summary})")
        return "failed"
    move.relied_on["gpu"] = record
    return "passed"


def _model_gate(registry: RegistryClient, move: Move, digest: str) -> str:
    record = gates.read_record(registry, move.repository, digest, gates.MODEL)
    if record is None:
        move.problems.append(f"no model check record for {digest}: it was not built and checked "
                             "by `stack-builder build`")
        return "no record"
    if not record.passed:
        move.problems.append(f"the model checks of {digest} failed ({record.summary})")
        return "failed"
    move.relied_on["model"] = record
    return f"passed ({record.details.get('drift_status', 'drift checked')})"


def table(moves: list[Move]) -> str:
    rows = [[m.image, short(m.source_digest), m.target_tag, short(m.target_before),
             ", ".join(f"{k}: {v}" for k, v in m.gates.items()) or "none", m.state] for m in moves]
    return columns([[str(cell) for cell in row] for row in rows],
                   ["image", "source digest", "target tag", "current target", "gates", "state"])


def columns(rows: list[list[str]], headers: list[str]) -> str:
    """Text in columns under headers and a line of dashes, as tabulate's "simple" layout sets text: here without
    loading tabulate, whose import reads every installed distribution's metadata (a tenth of a whole `tag`)."""
    widths = [max([len(header) + 2, *(len(row[index]) for row in rows)]) for index, header in enumerate(headers)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def short(digest: str | None) -> str:
    return digest[:19] if digest else "—"


def execute(moves: list[Move], registry: RegistryClient,
            on_moved: Callable[[Move], None] | None = None) -> list[Move]:
    """Move every target, in order (``on_moved`` records each one as it moves). On a failure, stop and say
    exactly which tags moved."""
    for index, move in enumerate(moves):
        try:
            signals.check()  # asked to stop: no tag moves after the signal
            _move_one(registry, move)
            if on_moved is not None and move.state == MOVED:
                on_moved(move)
        except (RegistryError, StackError) as exc:
            move.state = FAILED
            for rest in moves[index + 1:]:
                rest.state = NOT_RUN
            moved = [f"{m.repository}:{m.target_tag}" for m in moves if m.state == MOVED]
            already = [f"{m.repository}:{m.target_tag}" for m in moves if m.state == ALREADY]
            left = [f"{m.repository}:{m.target_tag}" for m in moves if m.state in (FAILED, NOT_RUN)]
            raise PromotionIncomplete(
                f"promotion stopped at {move.image}: {exc}\n"
                f"  moved now: {', '.join(moved) or 'none'}\n"
                f"  already in place: {', '.join(already) or 'none'}\n"
                f"  not moved: {', '.join(left)}\n"
                "  Re-run the same command to complete it: targets already in place are skipped.") from None
    return moves


def _move_one(registry: RegistryClient, move: Move) -> None:
    current_source = registry.get_manifest(move.repository, move.source_tag)
    if current_source is None or current_source.digest != move.source_digest:
        raise StackError(f"{move.repository}:{move.source_tag} moved after planning "
                         f"({short(move.source_digest)} -> {short(current_source.digest if current_source else None)}):"
                         " refusing to promote an image whose gates were not checked")
    current_target = registry.manifest_digest(move.repository, move.target_tag)
    if current_target == move.source_digest:
        move.state, move.target_after = ALREADY, current_target
        return
    if current_target != move.target_before:
        raise StackError(f"{move.repository}:{move.target_tag} changed after planning ({short(move.target_before)} "
                         f"-> {short(current_target)}): another promotion is running; refusing to overwrite it")
    pushed = registry.put_manifest(move.repository, move.target_tag, current_source.body, current_source.media_type)
    if pushed != move.source_digest:
        raise StackError(f"the registry stored {move.repository}:{move.target_tag} as {pushed}, "
                         f"not {move.source_digest}")
    move.state, move.target_after = MOVED, pushed
    LOGGER.info("%s: %s -> %s (%s)", move.image, move.source_tag, move.target_tag, short(pushed))


def who(actor: str | None = None) -> str:
    """Who acts: ``actor`` (GITHUB_ACTOR, from the task's settings; default: as set now), else the login."""
    return (CiSettings.from_env().actor if actor is None else actor) or getpass.getuser()

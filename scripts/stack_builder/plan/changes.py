"""What to build: changed files since a base commit, mapped to images, plus descendants."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

import git

from stack_builder.spec import yamlsource
from stack_builder.errors import GitError, shown
from stack_builder.kinds import Reason, ReasonKind
from stack_builder.records.files import read_json
from stack_builder.settings import environment
from stack_builder.spec.stack_spec import Spec
from stack_builder.plan.tree import StackTree

LOGGER = logging.getLogger(__name__)

SHARED_TESTS = "images/tests_common"
DEFAULT_BRANCHES = ("main", "origin/main", "master", "origin/master")
FULL_REBUILD = "full rebuild"
BASE_UPDATED = "base image updated"  # the text of the reason of a root that --refresh-base selects


@dataclass(frozen=True)
class Selection:
    """The images to build, each with the reason it is built, in breadth-first order."""

    reasons: Mapping[str, Reason]
    base: str | None = None  # the commit compared against, when there was one
    base_source: str = ""  # how the base was chosen, for the log and the report (text only)
    by_hand: bool = False  # chosen with --image: exactly those images (and parents found nowhere), nothing else


def select(spec: Spec, tree: StackTree, *, base_ref: str | None = None, build_all: bool = False,
           images: tuple[str, ...] = (), env: Mapping[str, str] | None = None) -> Selection:
    """Decide what to build. ``images`` and ``build_all`` force; otherwise git decides."""
    env = environment() if env is None else env
    if images:
        spec.require(images)
        wanted = set(images)
        return Selection({n: Reason(ReasonKind.BY_HAND, "forced (--image)") for n in tree.breadth_first()
                          if n in wanted}, base_source="--image", by_hand=True)
    if build_all:
        return Selection({n: Reason(ReasonKind.FORCED, "forced (--all)") for n in tree.breadth_first()},
                         base_source="--all")

    repo = open_repo(spec.stack_dir)
    if not repo.head.is_valid():
        return Selection({n: Reason(ReasonKind.FORCED, "forced (no commits yet)") for n in tree.breadth_first()},
                         base_source="no commits")
    head = repo.head.commit
    if FULL_REBUILD in str(head.message).lower():
        return Selection({n: Reason(ReasonKind.FORCED, "forced (\"full rebuild\" in commit message)")
                          for n in tree.breadth_first()},
                         base_source="commit message")

    base, source = resolve_base(repo, base_ref, env)
    files = changed_files(repo, base, spec.stack_dir)
    direct = map_files(spec, files, base=base, repo=repo)
    reasons: dict[str, Reason] = {}
    for name in tree.breadth_first():
        if name in direct:
            reasons[name] = Reason(ReasonKind.CHANGED, direct[name])
        elif spec.images[name].parent in reasons:
            changed_ancestor = next(a for a in reversed(spec.ancestors(name)) if a in direct)
            reasons[name] = Reason(ReasonKind.DESCENDANT, f"descendant of {changed_ancestor}")
    return Selection(reasons, base=base.hexsha if base else None, base_source=source)


def with_missing(spec: Spec, tree: StackTree, selection: Selection, missing: set[str], host: str) -> Selection:
    """``selection`` plus the images the registry does not hold, and their descendants."""
    reasons: dict[str, Reason] = {}
    added: dict[str, str] = {}  # image -> the missing ancestor that brought it in
    for name in tree.breadth_first():
        parent = spec.images[name].parent
        if name in selection.reasons:
            reasons[name] = selection.reasons[name]
        elif name in missing:
            reasons[name] = Reason(ReasonKind.NOT_IN_REGISTRY, f"not in registry {host}")
            added[name] = name
        elif parent in added:
            added[name] = added[parent]
            reasons[name] = Reason(ReasonKind.NOT_IN_REGISTRY, f"descendant of {added[parent]} (not in registry {host})")
    return Selection(reasons, base=selection.base, base_source=selection.base_source, by_hand=selection.by_hand)


def with_refreshed(spec: Spec, tree: StackTree, selection: Selection, stale: Iterable[str]) -> Selection:
    """``selection`` plus the roots whose upstream base moved (``--refresh-base``), and their descendants."""
    moved = set(stale)
    reasons: dict[str, Reason] = {}
    added: dict[str, str] = {}  # image -> the refreshed root that brought it in
    for name in tree.breadth_first():
        parent = spec.images[name].parent
        if name in selection.reasons:
            reasons[name] = selection.reasons[name]
        elif name in moved and parent is None:
            reasons[name] = Reason(ReasonKind.BASE_UPDATED, BASE_UPDATED)
            added[name] = name
        elif parent in added:
            added[name] = added[parent]
            reasons[name] = Reason(ReasonKind.DESCENDANT, f"descendant of {added[parent]} ({BASE_UPDATED})")
    return Selection(reasons, base=selection.base, base_source=selection.base_source, by_hand=selection.by_hand)


def open_repo(stack_dir: Path) -> git.Repo:
    try:
        return git.Repo(stack_dir, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(f"{stack_dir} is not in a git repository, so changes cannot be detected: "
                       "run `git init` and commit, or choose images with --all or --image NAME") from None


def resolve_base(repo: git.Repo, base_ref: str | None, env: Mapping[str, str]) -> tuple[git.Commit | None, str]:
    """The commit to compare HEAD with, and a note saying how it was chosen."""
    if base_ref:
        return _commit(repo, base_ref, "--base-ref"), f"--base-ref {base_ref}"
    if env.get("GITHUB_ACTIONS") == "true":
        found = _github_base(repo, env)
        if found is not None:
            return found
    found = _first_merge_base(repo, DEFAULT_BRANCHES)
    if found is not None:
        return found[0], f"merge-base with {found[1]}"
    LOGGER.warning("no main or master branch: comparing with HEAD (uncommitted changes only)")
    return repo.head.commit, "HEAD (no main branch)"


def _first_merge_base(repo: git.Repo, refs: tuple[str, ...]) -> tuple[git.Commit, str] | None:
    """The merge-base of HEAD with the first of ``refs`` that exists and shares history, and that ref."""
    for ref in refs:
        try:
            other = repo.commit(ref)
        except (git.BadName, ValueError):
            continue
        bases = repo.merge_base(other, repo.head.commit)
        if bases:
            return bases[0], ref
    return None


def _github_base(repo: git.Repo, env: Mapping[str, str]) -> tuple[git.Commit | None, str] | None:
    event = env.get("GITHUB_EVENT_NAME", "")
    if event.startswith("pull_request") and env.get("GITHUB_BASE_REF"):
        found = _first_merge_base(repo, (f"origin/{env['GITHUB_BASE_REF']}", env["GITHUB_BASE_REF"]))
        if found is not None:
            return found[0], f"pull request base {found[1]}"
        raise GitError(f"the pull request's base branch '{env['GITHUB_BASE_REF']}' is not in this clone: "
                       "check out with fetch-depth: 0")
    if event == "push" and env.get("GITHUB_EVENT_PATH"):
        payload = read_json(Path(env["GITHUB_EVENT_PATH"]), what="the GitHub event payload", default={})
        before = str(payload.get("before") or "") if isinstance(payload, dict) else ""
        if before and not re.fullmatch(r"[0-9a-f]{40}", before):
            raise GitError(f"the push event's 'before' is not a commit id: {shown(before)}")
        if before and set(before) != {"0"}:
            return _commit(repo, before, "the push's previous commit"), f"push's previous commit {before[:12]}"
    return None


def _commit(repo: git.Repo, ref: str, what: str) -> git.Commit:
    try:
        found = repo.commit(ref)
        found.tree  # noqa: B018 - a shallow clone names parents whose objects it lacks: this reads the object
        return found
    except (git.BadName, git.BadObject, ValueError, git.GitCommandError):
        shallow = Path(repo.git_dir, "shallow").exists()
        hint = ("this clone is shallow: fetch more history (git fetch --unshallow; in CI, actions/checkout with "
                "fetch-depth: 0)") if shallow else ("fetch it (git fetch origin; in CI use fetch-depth: 0) or name "
                                                     "an existing commit")
        raise GitError(f"{what} '{shown(ref)}' is not a commit in this repository: {hint}") from None


def changed_files(repo: git.Repo, base: git.Commit | None, stack_dir: Path) -> list[str]:
    """Paths relative to the stack folder changed between ``base`` and the working tree.

    Comparing with the working tree covers the commits since ``base`` and uncommitted
    (staged, unstaged and untracked) changes alike.
    """
    top = Path(repo.working_tree_dir or ".").resolve()
    paths: set[str] = set()
    if base is not None:
        for diff in base.diff(None):
            paths.update(p for p in (diff.a_path, diff.b_path) if p)
    paths.update(repo.untracked_files)
    stack = stack_dir.resolve()
    out = []
    for path in paths:
        try:
            out.append((top / path).relative_to(stack).as_posix())
        except ValueError:
            continue  # outside this stack
    return sorted(out)


def map_files(spec: Spec, files: list[str], *, base: git.Commit | None, repo: git.Repo) -> dict[str, str]:
    """Changed files -> {image: reason} for the images they touch directly."""
    hits: dict[str, list[str]] = {}
    everything: str | None = None
    spec_rel = spec.path.relative_to(spec.stack_dir).as_posix()
    for path in files:
        if path != spec_rel and _ignored(path, spec.change_ignore):  # the spec itself is never ignored
            continue
        if path == spec_rel:
            all_reason, entries = _spec_changes(spec, base, repo)
            everything = everything or all_reason
            for name in entries:
                hits.setdefault(name, []).append(f"{spec_rel} entry")
            continue
        if path == SHARED_TESTS or path.startswith(SHARED_TESTS + "/"):
            everything = everything or f"shared tests changed ({path})"
            continue
        for image in spec.images.values():
            folder = image.context.relative_to(spec.stack_dir).as_posix()
            dockerfiles = {recipe.relative_to(spec.stack_dir).as_posix() for recipe in image.recipes or
                           (image.dockerfile,) if recipe.is_relative_to(spec.stack_dir)}
            inside = path.startswith(folder + "/")
            if not inside and path not in dockerfiles:
                continue
            if inside and _ignored(path[len(folder) + 1:], image.change_ignore):
                continue
            hits.setdefault(image.name, []).append(path)
    if everything:
        return {name: f"changed: {everything}" for name in spec.images}
    return {name: "changed: " + _summarise(paths) for name, paths in hits.items()}


def _ignored(path: str, globs: tuple[str, ...]) -> bool:
    posix = PurePosixPath(path)
    return any(fnmatchcase(path, g) or fnmatchcase(posix.name, g) for g in globs)


def _summarise(paths: list[str]) -> str:
    return paths[0] + (f" (+{len(paths) - 1} more)" if len(paths) > 1 else "")


def _spec_changes(spec: Spec, base: git.Commit | None, repo: git.Repo) -> tuple[str | None, list[str]]:
    """(reason to rebuild all, or None; images whose entries changed) for a changed spec file."""
    rel = spec.path.relative_to(spec.stack_dir).as_posix()
    old: dict[str, Any] | None = None
    if base is not None:
        top = Path(repo.working_tree_dir or ".").resolve()
        repo_path = (spec.path.resolve()).relative_to(top).as_posix()
        try:
            blob = base.tree / repo_path
            loaded = yamlsource.load(blob.data_stream.read().decode("utf-8")).data
            old = loaded if isinstance(loaded, dict) else None
        except (KeyError, UnicodeDecodeError, yamlsource.YamlSyntaxError):
            old = None
    if old is None:
        return f"{rel} is new or was unreadable at the base", []
    for key in ("tag", "all_info_cmds"):
        if old.get(key) != spec.raw.get(key):
            return f"{rel} {key} changed", []
    old_images = old.get("images")
    if not isinstance(old_images, dict):
        old_images = {}
    return None, [name for name, raw in spec.raw["images"].items() if old_images.get(name) != raw]

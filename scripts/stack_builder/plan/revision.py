"""Where the build comes from: commit, branch and the tags they give."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

import git

from stack_builder import secrets
from stack_builder.settings import environment
from stack_builder.spec.references import check_tag, sanitize_branch


@dataclass(frozen=True)
class Revision:
    commit: str  # full sha, or "unknown" outside git
    branch: str
    dirty: bool
    source_url: str | None

    def commit_url(self) -> str | None:
        if self.source_url and self.commit != "unknown":
            return f"{self.source_url}/commit/{self.commit}"
        return None

    def tags(self, prefix: str) -> tuple[str, str | None]:
        """(``<prefix>-<branch>``, immutable per-commit tag or None when it would not be honest)."""
        moving = sanitize_branch(self.branch, prefix=prefix)
        immutable = None if self.commit == "unknown" or self.dirty else check_tag(f"{prefix}-git-{self.commit[:12]}")
        secrets.keep(moving, immutable or "")  # tags are checked values: never redacted
        return moving, immutable


def read_revision(stack_dir: Path, env: Mapping[str, str] | None = None) -> Revision:
    """Commit and branch of the stack; CI variables win over the checkout (CI checks out detached)."""
    env = environment() if env is None else env
    try:
        repo = git.Repo(stack_dir, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return Revision("unknown", env.get("STACK_BRANCH") or "local", dirty=True, source_url=None)
    commit = repo.head.commit.hexsha if repo.head.is_valid() else "unknown"
    branch = env.get("STACK_BRANCH") or env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME") or ""
    if not branch:
        try:
            branch = repo.active_branch.name
        except TypeError:  # detached HEAD
            branch = "detached"
    dirty = _dirty(repo, stack_dir) if commit != "unknown" else True
    secrets.keep(commit, branch)  # checked values: never redacted
    return Revision(commit, branch, dirty, _source_url(repo, env))


# What a build writes into the stack folder itself: changes there do not make the checkout dirty.
OUTPUTS = ("wiki", "artifacts", ".doit.json*", ".doit.db*", ".stack-run")


def _dirty(repo: git.Repo, stack_dir: Path) -> bool:
    """Whether what a build reads differs from the commit: a change to any tracked file of the stack folder (the
    spec, Dockerfiles, contexts, tests, conftest files, model files, wherever the spec points), but the tool's
    own outputs; and an untracked file under images/, spec.yml, or an untracked conftest.py anywhere. Other
    untracked files (a CI job's downloaded artifacts) are no input: the input key reads tracked files there."""
    root = Path(repo.working_tree_dir or stack_dir).resolve()
    folder = stack_dir.resolve().relative_to(root).as_posix() if stack_dir.resolve() != root else "."
    inside = "" if folder == "." else folder + "/"
    outputs = [f":(exclude,glob){inside}{name}{'' if '*' in name else '/**'}" for name in OUTPUTS]
    if repo.git.status("--porcelain", "--untracked-files=no", "--", folder, *outputs):
        return True
    untracked = [f"{inside}images", f"{inside}spec.yml", f":(glob){inside}**/conftest.py"]
    return bool(repo.git.status("--porcelain", "--untracked-files=all", "--", *untracked))


def _source_url(repo: git.Repo, env: Mapping[str, str]) -> str | None:
    if env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY"):
        return f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}"
    try:
        url = repo.remotes.origin.url
    except (AttributeError, IndexError):
        return None
    if url.startswith("git@") and ":" in url:
        host, _, path = url[4:].partition(":")
        url = f"https://{host}/{path}"
    if not url.startswith(("https://", "http://")):
        return None  # a local path or another transport: no web page to link to
    # Never let credentials in a remote URL (user-info, a token in the query) reach a label.
    parts = urlsplit(url)
    try:
        netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    except ValueError:  # a port that is no number
        return None
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).removesuffix(".git")

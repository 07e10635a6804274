"""`init`: start a new stack in the current folder (``-d`` chooses it): spec.yml, a root image with a test, the
caller workflows, a .gitignore and a README; with ``--model``, a model image too. Nothing is written when any of
those files exists already (each is named), unless ``--force``; a folder outside any git repository becomes one."""
from __future__ import annotations

import logging
import re
from datetime import date
from pathlib import Path

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.errors import StackError
from stack_builder.starter.scaffold import StarterFile, StarterOptions, problems, starter_files
from stack_builder.version import version

LOGGER = logging.getLogger(__name__)
DEFAULT_OWNER = "my-org"
_GITHUB_REMOTE = re.compile(r"github\.com[:/]([A-Za-z0-9][A-Za-z0-9-]*)/")


def main(name: str, owner: str, model: bool, force: bool) -> bool | Failed:
    def work() -> bool:
        folder = Path.cwd()
        options = StarterOptions(name=name, owner=owner or _owner_from_remote(folder), model=model,
                                 version=version(), today=date.today())
        wrong = problems(options)
        if wrong:
            raise StackError("; ".join(wrong))
        files = starter_files(options)
        _check_spec(files["spec.yml"].text, folder)
        linked = sorted({link for path in files if (link := _linked_folder(folder, path))})
        if linked:
            raise StackError(f"init would write through {len(linked)} linked folder(s) in {folder}: "
                             f"{', '.join(linked)}; init never writes through a link (it could lead anywhere): "
                             "replace them with real folders; nothing was written")
        existing = sorted(path for path in files if (folder / path).exists() or (folder / path).is_symlink())
        if existing and not force:
            raise StackError(f"init would overwrite {len(existing)} existing file(s) in {folder}: "
                             f"{', '.join(existing)}; nothing was written (move them away, or give --force)")
        created = _git_repository(folder)
        for path, content in files.items():
            _write(folder / path, content)
        print(f"stack-builder {options.version}: a new stack in {folder}" + (" (a new git repository)" if created
                                                                              else ""))
        for path in files:
            print(f"  {'overwrote' if path in existing else 'created'} {path}")
        print("\nNext: `stack-builder build` builds, tests and pushes it (registry: $STACK_REGISTRY, else "
              "127.0.0.1:5000); commit, push, and the workflows build it on GitHub.")
        return True

    return run_task(work)


def _check_spec(text: str, folder: Path) -> None:
    """The spec about to be written passes the spec's own checks (images' files are not there yet)."""
    from stack_builder.spec.loader import parse_spec

    parse_spec(text, path=folder / "spec.yml", stack_dir=folder, check_files=False)


def _owner_from_remote(folder: Path) -> str:
    """The GitHub owner of the ``origin`` remote, lower-cased as registry paths are; else ``my-org``."""
    import git

    try:
        url = git.Repo(folder, search_parent_directories=True).remotes.origin.url
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, AttributeError, IndexError, ValueError):
        return DEFAULT_OWNER
    found = _GITHUB_REMOTE.search(url)
    return found.group(1).lower() if found else DEFAULT_OWNER


def _git_repository(folder: Path) -> bool:
    """Make ``folder`` a git repository (branch main) unless it is inside one; whether it made one."""
    import git

    try:
        git.Repo(folder, search_parent_directories=True)
        return False
    except git.InvalidGitRepositoryError:
        git.Repo.init(folder, initial_branch="main")
        LOGGER.info("%s: not in a git repository: initialised one (branch main)", folder)
        return True


def _linked_folder(folder: Path, path: str) -> str:
    """The first folder on the way to ``path`` that is a symbolic link ("" when none is)."""
    parts = Path(path).parts[:-1]
    for depth in range(1, len(parts) + 1):
        if (folder.joinpath(*parts[:depth])).is_symlink():
            return "/".join(parts[:depth])
    return ""


def _write(path: Path, content: StarterFile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()  # (only with --force) write a file here, never through a link to somewhere else
    path.write_text(content.text, encoding="utf-8")
    path.chmod(content.mode)

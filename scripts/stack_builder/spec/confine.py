"""Path confinement: every file a spec makes the tool read must resolve, symlinks followed, inside the stack.

A spec must not make the tool read, build or publish files from elsewhere (``dockerfile: /proc/self/environ``,
``../../secrets``, or a symlink in the stack pointing out of it).

A stack of thousands of images names tens of thousands of paths, nearly all under a few shared folders
and free of symlinks. ``Path.resolve()`` would ``lstat`` every component of every one of them, so this
resolves the stack folder once and each folder once: a path none of whose components is a symlink
resolves to itself with each ``..`` dropping the component before it, exactly as ``resolve()`` would make
it. A path with a symlink anywhere in it is handed to ``Path.resolve()`` itself, so symlinks (and their
loops) are judged exactly as before.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Iterable, Mapping

from stack_builder.errors import shown
from stack_builder.spec.problems import Problems, display_path

SYMLINK_LOOP = "(a symlink loop)"


def image_paths(raw: Mapping[str, Any], context: Path, recipes: tuple[Path, ...]) -> list[tuple[str, str]]:
    """The files of one image the tool reads, each with the key that names it ("" for one the layout implies).
    As text: joining strings costs a tenth of joining ``Path``s, and a stack has tens of thousands."""
    folder = os.fspath(context)
    examples = os.path.join(folder, "examples")
    return [*(("dockerfile" if "dockerfile" in raw else "", os.fspath(recipe)) for recipe in recipes), ("", folder),
            ("integration_tests" if raw.get("integration_tests") else "", os.path.join(folder, "integration_tests")),
            ("", os.path.join(folder, "test")), ("", os.path.join(folder, "test_gpu")),
            ("model" if raw.get("model") else "", examples),
            *(("model", os.path.join(examples, name)) for name in ("input.csv", "output.csv"))]


class Confinement:
    """Checks paths against one stack folder, remembering what each folder resolves to (for one load only:
    the files may change between loads)."""

    def __init__(self, stack_dir: Path, problems: Problems) -> None:
        self.stack_dir = stack_dir
        self.problems = problems
        self.root = stack_dir.resolve()
        self._root_text = str(self.root)
        self._inside = self._root_text if self._root_text.endswith(os.sep) else self._root_text + os.sep
        self._plain: dict[str, str | None] = {}  # path -> itself resolved, None when a component is a symlink

    def check(self, where: tuple[str, ...], paths: Iterable[tuple[str, str]]) -> bool:
        """Add a problem for every path (as text, with the key that names it) that resolves outside the stack
        folder; True when none does."""
        ok = True
        for key, path in paths:
            resolved = self.resolve(path)
            if resolved is not None and (resolved == self._root_text or resolved.startswith(self._inside)):
                continue
            shown_as = str(Path(resolved)) if resolved is not None else SYMLINK_LOOP
            self.problems.add((*where, key) if key else where,
                              f"'{shown(display_path(Path(path), self.stack_dir))}' resolves to {shown(shown_as)}, "
                              f"outside the stack folder {shown(self._root_text)}: every file of a stack "
                              "(Dockerfile, build context, tests, model examples) must be inside it")
            ok = False
        return ok

    def resolve(self, path: str) -> str | None:
        """What ``Path(path).resolve()`` gives, as text; None for a symlink loop."""
        absolute = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)  # the working folder is physical
        plain = self._without_symlinks(absolute)
        if plain is not None:
            return plain
        try:
            return str(Path(path).resolve())
        except (OSError, RuntimeError):  # a symlink loop
            return None

    def _without_symlinks(self, path: str) -> str | None:
        """``path`` (absolute) resolved, when none of its components is a symlink; else None."""
        if path in self._plain:
            return self._plain[path]
        head, name = os.path.split(path)
        if not name:  # the file system's root
            found: str | None = os.sep
        else:
            base = self._without_symlinks(head)
            if base is None:
                found = None
            elif name == os.pardir:
                found = os.path.dirname(base)
            elif name == os.curdir:
                found = base
            else:
                joined = os.path.join(base, name)
                found = None if _is_symlink(joined) else joined
        self._plain[path] = found
        return found


def _is_symlink(path: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:  # absent or unreadable: resolve() goes on with the name as it is, and so do we
        return False

"""From a spec's checked shape to a ``Spec``: each image checked, its files confined, then constructed.

Problems are collected in file order, image by image, exactly as a user reads the spec; an image
whose name or files cannot be used is left out, and any problem means no ``Spec`` at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from stack_builder.spec import budgets, checks, construct
from stack_builder.spec.confine import Confinement, image_paths
from stack_builder.spec.images import ImageSpec, InfoCmd, Spec
from stack_builder.spec.problems import Problems


@dataclass
class _Stack:
    """What every image's checks refer to, and what they remember from one image to the next."""

    data: Mapping[str, Any]
    stack_dir: Path
    problems: Problems
    confinement: Confinement
    info_cmds: Mapping[str, InfoCmd]
    check_files: bool
    repositories: dict[str, str] = field(default_factory=dict)  # repository path -> its first image
    images_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.images_dir = self.stack_dir / "images"


def assemble(data: dict[str, Any], *, path: Path, stack_dir: Path, problems: Problems,
             check_files: bool) -> Spec | None:
    """The ``Spec`` of ``data`` (whose shape the schema accepted); None when any problem was found."""
    images_raw: dict[str, dict[str, Any]] = data["images"]
    prefix = checks.tag_prefix(data["tag"]["prefix"], problems)
    budgets.check(data.get("budget"), ("budget",), problems)
    stack = _Stack(data, stack_dir, problems, Confinement(stack_dir, problems), construct.info_cmds(data),
                   check_files)
    images: dict[str, ImageSpec] = {}
    for name, raw in images_raw.items():
        image = _image(name, raw, stack)
        if image is not None:
            images[name] = image
    stack.confinement.check((), [("", str(stack_dir / "images" / "tests_common"))])
    checks.cycles(images_raw, problems)
    roots = checks.roots(data.get("root"), images_raw, problems)
    if problems.messages or prefix is None:
        return None
    return Spec(path=path, stack_dir=stack_dir, images=images, roots=roots, tag_prefix=prefix,
                all_info_cmds=stack.info_cmds, change_ignore=tuple(data.get("change_ignore") or ()), raw=data)


def _image(name: str, raw: dict[str, Any], stack: _Stack) -> ImageSpec | None:
    """One image: validated, its files confined to the stack, then constructed; None when it cannot be."""
    where = ("images", name)
    problems = stack.problems
    repository = checks.identity(name, raw, where, stack.repositories, problems)
    if repository is None:
        return None
    checks.references(name, raw, where, stack.data["images"], stack.info_cmds, problems)
    checks.build_args(raw, where, problems)
    context = stack.images_dir / name
    dockerfiles = construct.recipes(raw, context)
    if not stack.confinement.check(where, image_paths(raw, context, dockerfiles)):
        return None
    if stack.check_files:
        checks.recipes_exist(name, dockerfiles, where, stack.stack_dir, problems)
    checks.content_and_platforms(raw, where, problems)
    budgets.check(raw.get("budget"), (*where, "budget"), problems)
    image = construct.image(name, raw, repository=repository, context=context, dockerfiles=dockerfiles,
                            timeouts=stack.data.get("timeouts") or {}, stack_budget=stack.data.get("budget"))
    if image.model is not None:
        checks.model(image.model, context, where, problems, check_files=stack.check_files)
    return image

"""The stack as declared: ``Spec`` and its ``ImageSpec``s, immutable values that everything else reads.

They are built by ``spec.assemble`` once every check passed, so code that holds one may trust it.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from stack_builder.errors import StackError
from stack_builder.spec.budgets import Budget
from stack_builder.spec.references import Repository
from stack_builder.spec.timeouts import DEFAULT_TIMEOUTS

DEFAULT_PLATFORMS = ("linux/amd64",)


@dataclass(frozen=True)
class InfoCmd:
    key: str
    description: str
    command: str


@dataclass(frozen=True)
class DriftSettings:
    """How a model image is compared with its current stable (Hoeffding bound, union over reuses)."""

    epsilon: float = 0.05
    delta: float = 0.01
    reuses: int = 1
    tolerance: float = 0.1
    max_disagreement: float = 0.05

    def sample_size(self) -> int:
        """n = ceil(ln(H/delta) / (2 epsilon^2)): the rate is within epsilon with confidence 1-delta."""
        return math.ceil(math.log(self.reuses / self.delta) / (2 * self.epsilon ** 2))


@dataclass(frozen=True)
class ModelSpec:
    """A model image: it turns an input CSV into an output CSV with declared columns."""

    columns: tuple[tuple[str, str], ...]
    examples: Path  # images/<name>/examples
    command: tuple[str, ...] = ("{input}", "{output}")  # arguments to the image's entrypoint
    fixed: bool = True
    tolerance: float = 0.1
    drift: DriftSettings = DriftSettings()


@dataclass(frozen=True)
class ContentTag:
    """A tag from what is inside the image: the command's trimmed output fills ``{}`` in ``name``."""

    name: str
    command: str


@dataclass(frozen=True)
class ImageSpec:
    """One image of the stack, as declared."""

    name: str
    repository: Repository
    parent: str | None
    context: Path  # images/<name>/, absolute
    dockerfile: Path  # absolute; the first recipe when there are several
    build_args: tuple[tuple[str, str], ...] = ()
    info_cmds: tuple[str, ...] = ()
    integration_tests: bool = False
    prune: bool = False
    prepull: bool = True
    secrets: Mapping[str, str] = field(default_factory=dict)  # build secret id -> environment variable
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    require_all_platforms: bool = True
    gpu: bool = False
    change_ignore: tuple[str, ...] = ()
    model: ModelSpec | None = None
    timeouts: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))  # every kind, in seconds
    content_tags: tuple[ContentTag, ...] = ()
    recipes: tuple[Path, ...] = ()  # several Dockerfiles, tried in order (empty: just ``dockerfile``)
    budget: Budget | None = None  # the stack's budget with the image's own over it (None: no limit)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Spec:
    """A validated stack: images in file order, with roots and shared settings."""

    path: Path
    stack_dir: Path
    images: Mapping[str, ImageSpec]
    roots: tuple[str, ...]
    tag_prefix: str
    all_info_cmds: Mapping[str, InfoCmd]
    change_ignore: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def require(self, names: Iterable[str], *, option: str = "--image") -> None:
        """Raise ``StackError`` naming each unknown image, with a did-you-mean."""
        unknown = [name for name in names if name not in self.images]
        if unknown:
            tips = ", ".join(f"'{n}'" + (f" (did you mean '{h[0]}'?)" if (h := difflib.get_close_matches(
                n, list(self.images), n=1)) else "") for n in unknown)
            raise StackError(f"{option} names no image in {self.path.name}: {tips}; images are: "
                             f"{', '.join(self.images)}")

    def children(self, name: str) -> list[str]:
        return [i.name for i in self.images.values() if i.parent == name]

    def ancestors(self, name: str) -> list[str]:
        """Parent first, root last."""
        chain: list[str] = []
        parent = self.images[name].parent
        while parent is not None:
            chain.append(parent)
            parent = self.images[parent].parent
        return chain

"""CI waves on a large random stack: the linear computation gives the waves their definition gives."""
from __future__ import annotations

import random
from pathlib import Path

from stack_builder.kinds import Reason, ReasonKind
from stack_builder.plan.changes import Selection
from stack_builder.plan.plan import ParentRef, Plan, make_plan, primary_platform
from stack_builder.plan.tree import StackTree
from stack_builder.spec.stack_spec import Spec, parse_spec

TWO = "[linux/amd64, linux/arm64]"


def random_stack(tmp_path: Path, images: int, seed: int) -> Spec:
    """Random parents; a two-platform image's children may be two-platform, or arm64 only, or amd64 only."""
    rng = random.Random(seed)
    lines, two = ["images:"], set()
    for i in range(images):
        parent = rng.randrange(i) if i >= 3 else None
        lines.append(f"  m{i}: {{image_name: o/m{i}" + (f", depend_on: m{parent}" if parent is not None else ""))
        if parent is None or parent in two:
            choice = rng.choice(["", TWO, TWO, "[linux/arm64]"])
            if choice == TWO:
                two.add(i)
            lines[-1] += f", platforms: {choice}" if choice else ""
        lines[-1] += "}"
    text = "\n".join([*lines, 'tag: {prefix: "2024.1"}', ""])
    return parse_spec(text, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False)


def waves_by_definition(spec: Spec, plan: Plan) -> list[list[tuple[str, str]]]:
    """An image's primary platform one wave after its parent's same platform (or the parent's last wave when
    the parent lacks it); its other platforms also after its own primary one."""
    waves: dict[tuple[str, str], int] = {}
    for name in plan.images:
        parent = spec.images[name].parent
        first = primary_platform(spec.images[name].platforms)
        for each in sorted(plan.platforms[name], key=lambda p: p != first):
            parent_waves = [w for (n, _), w in waves.items() if n == parent]
            after_parent = waves.get((parent, each), max(parent_waves, default=-1)) + 1 if parent else 0
            waves[(name, each)] = max(after_parent, waves[(name, first)] + 1) \
                if each != first and (name, first) in waves else after_parent
    levels = [[(n, p) for n in plan.images for p in plan.platforms[n] if waves[(n, p)] == wave]
              for wave in range(max(waves.values(), default=-1) + 1)]
    return [level for level in levels if level]


def test_waves_match_their_definition_on_random_stacks(tmp_path: Path) -> None:
    rng = random.Random(11)
    for seed in range(4):
        spec = random_stack(tmp_path, 300, seed)
        tree = StackTree(spec)
        for _ in range(10):
            picked = set(rng.sample(list(spec.images), rng.randint(1, 300)))
            found = {(n, p) for n in spec.images for p in ("linux/amd64", "linux/arm64") if rng.random() < 0.5}
            selection = Selection({n: Reason(ReasonKind.CHANGED, "changed") for n in tree.breadth_first()
                                   if n in picked})
            platform = rng.choice([None, None, "linux/amd64", "linux/arm64"])
            if platform and not any(platform in spec.images[n].platforms for n in picked):
                continue
            plan = make_plan(spec, tree, selection, tag="t", commit_tag=None, commit="c" * 40, platform=platform,
                             find_parent=lambda parent, p: ParentRef("r", "t", "s") if (parent, p) in found else None)
            assert [[(j.image, j.platform) for j in level] for level in plan.levels] == waves_by_definition(spec, plan)

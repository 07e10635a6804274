"""What a spec means, checked once its shape is right: names, references, values and files.

Each check adds its problems (with a did-you-mean where one helps) and never stops the others, so a
user sees every mistake at once. They assume the shapes ``spec.shape`` guarantees.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Mapping

from stack_builder.errors import StackError, shown
from stack_builder.spec.images import DEFAULT_PLATFORMS, InfoCmd, ModelSpec
from stack_builder.spec.problems import Problems, display_path
from stack_builder.spec.references import Repository, parse_repository

PREFIX_RE = re.compile(r"^\d{4}\.[1-4]$")
MAX_IMAGE_KEY = 100  # <image>-<tag of up to 128>.json must stay under the 255 bytes a file name may have
MAX_DRIFT_SAMPLE = 100_000  # model runs on this many inputs at most (a drift gate's sample)

Where = tuple[str, ...]


def tag_prefix(value: Any, problems: Problems) -> str | None:
    """The quarter tags start with, as the user wrote it; None (and a problem) when it is not one."""
    # YAML reads an unquoted 2024.1 as a number; its repr is the text the user wrote.
    text = repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, bool) or not PREFIX_RE.fullmatch(text):
        problems.add(("tag", "prefix"), f"'{shown(text)}' is not a quarter: use YYYY.Q with Q from 1 to 4, "
                                        "e.g. prefix: \"2024.1\"")
        return None
    return text


def identity(name: str, raw: Mapping[str, Any], where: Where, repositories: dict[str, str],
             problems: Problems) -> Repository | None:
    """The image's repository, unique in the stack; None when the name or the repository cannot be used at all.
    ``repositories`` ({path: image}) remembers the images seen so far."""
    if len(name) > MAX_IMAGE_KEY:
        problems.add(where, f"the image name '{shown(name)}' is {len(name)} characters, more than "
                            f"{MAX_IMAGE_KEY}: its logs, records and pages are files named after it")
        return None
    try:
        repository = parse_repository(raw["image_name"])
    except StackError as exc:
        problems.add((*where, "image_name"), str(exc))
        return None
    other = repositories.get(repository.path)
    if other is not None:
        problems.add((*where, "image_name"),
                     f"'{shown(raw['image_name'])}' is also the image_name of '{other}': each image needs its own")
    repositories.setdefault(repository.path, name)
    return repository


def references(name: str, raw: Mapping[str, Any], where: Where, images_raw: Mapping[str, Any],
               info_cmds: Mapping[str, InfoCmd], problems: Problems) -> None:
    """The parent and the info commands the image names exist."""
    parent = raw.get("depend_on")
    if parent is not None and parent not in images_raw:
        names = list(images_raw)
        hint = difflib.get_close_matches(parent, names, n=1)
        tip = f" (did you mean '{hint[0]}'?)" if hint else f"; images are: {', '.join(names)}"
        problems.add((*where, "depend_on"), f"unknown parent '{shown(parent)}'{tip}")
    if parent == name:
        problems.add((*where, "depend_on"), "an image cannot depend on itself")
    for index, key in enumerate(raw.get("info_cmds") or []):
        if key not in info_cmds:
            hint = difflib.get_close_matches(key, list(info_cmds), n=1)
            tip = f" (did you mean '{hint[0]}'?)" if hint else ""
            problems.add((*where, "info_cmds", index),
                         f"unknown info command '{shown(key)}'{tip}: define it under all_info_cmds")


def build_args(raw: Mapping[str, Any], where: Where, problems: Problems) -> None:
    """No build argument is a number YAML may have cut short (3.10 read as 3.1)."""
    for arg, value in (raw.get("build_args") or {}).items():
        if isinstance(value, float):
            problems.add((*where, "build_args", arg),
                         f"{shown(value)} was read as a number, which can lose digits (3.10 becomes 3.1): "
                         f"quote it, e.g. {arg}: \"{value}\"")


def recipes_exist(name: str, recipes: tuple[Path, ...], where: Where, stack_dir: Path, problems: Problems) -> None:
    """Every Dockerfile the image declares is a file."""
    for recipe in recipes:
        if not recipe.is_file():
            problems.add(where, f"no Dockerfile at {display_path(recipe, stack_dir)}: create it, or point "
                                f"'dockerfile:' at the file (relative to images/{name}/)")


def content_and_platforms(raw: Mapping[str, Any], where: Where, problems: Problems) -> None:
    """Each content tag pattern has one ``{}``; no platform is listed twice."""
    for index, content in enumerate(raw.get("content_tags") or ()):
        pattern = str(content["name"])
        if pattern.count("{}") != 1:
            problems.add((*where, "content_tags", index, "name"),
                         f"'{shown(pattern)}' must hold {{}} exactly once, where the command's output goes "
                         "(e.g. python-{})")
    platforms = tuple(raw.get("platforms") or DEFAULT_PLATFORMS)
    if len(set(platforms)) != len(platforms):
        problems.add((*where, "platforms"), "lists a platform twice")


def model(found: ModelSpec, context: Path, where: Where, problems: Problems, *, check_files: bool) -> None:
    """A model's drift sample is affordable, its command has both files, and its examples exist."""
    drift = found.drift
    if drift.sample_size() > MAX_DRIFT_SAMPLE:
        problems.add((*where, "model", "drift"), f"epsilon {drift.epsilon}, delta {drift.delta} and "
                     f"reuses {drift.reuses} need {drift.sample_size():,} samples, more than "
                     f"{MAX_DRIFT_SAMPLE:,}: allow a larger epsilon or delta")
    if not any("{input}" in part for part in found.command) or not any("{output}" in part for part in found.command):
        problems.add((*where, "model", "command"), "must contain {input} and {output}")
    needed = ["input.csv"] + (["output.csv"] if found.fixed else [])
    for name in needed if check_files else []:
        if not (found.examples / name).is_file():
            why = " (the reference output of a fixed model)" if name == "output.csv" else ""
            problems.add((*where, "model"), f"missing {context.name}/examples/{name}{why}: add it next to the "
                                            "Dockerfile")


def cycles(images_raw: Mapping[str, Mapping[str, Any]], problems: Problems) -> None:
    """One problem per dependency cycle, named from its first image in file order.

    Linear in the stack's size, however deep its chains: a walk stops at an image whose own walk can
    report nothing (it leads to a root, an unknown parent or a cycle, or is on a reported cycle), and at
    a cycle an earlier walk found, which only its first image in file order walks again, to report it.
    """
    reported: set[str] = set()
    settled: set[str] = set()
    on_cycle: set[str] = set()  # found on a cycle by a walk that started outside it; not reported yet
    for start in images_raw:
        if start in settled:
            continue
        blocked = on_cycle if start not in on_cycle else set()
        seen: dict[str, None] = {}  # in walking order
        current: str | None = start
        while current is not None and current in images_raw and current not in seen and current not in settled \
                and current not in blocked:
            seen[current] = None
            current = images_raw[current].get("depend_on")
        walk = list(seen)
        if current is not None and current in seen:
            cut = walk.index(current)
            settled.update(walk[:cut])
            on_cycle.update(walk[cut:])
            if current == start and start not in reported:
                loop = [*walk, current]
                reported.update(loop)
                settled.update(loop)
                on_cycle.difference_update(loop)
                problems.add(("images", start, "depend_on"), "dependency cycle: " + " -> ".join(loop))
        else:
            settled.update(walk)


def roots(value: Any, images_raw: Mapping[str, Mapping[str, Any]], problems: Problems) -> tuple[str, ...]:
    """The images without a parent, in file order; a declared ``root`` must name exactly such images."""
    actual = [name for name, raw in images_raw.items() if raw.get("depend_on") is None]
    if value is None:
        return tuple(actual)
    declared = [value] if isinstance(value, str) else list(value)
    for index, name in enumerate(declared):
        where: tuple[str | int, ...] = ("root",) if isinstance(value, str) else ("root", index)
        if name not in images_raw:
            hint = difflib.get_close_matches(name, list(images_raw), n=1)
            tip = f" (did you mean '{hint[0]}'?)" if hint else ""
            problems.add(where, f"unknown image '{shown(name)}'{tip}")
        elif images_raw[name].get("depend_on") is not None:
            problems.add(where, f"'{name}' depends on '{images_raw[name]['depend_on']}', so it is not a root")
    return tuple(actual)

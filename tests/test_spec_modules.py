"""The spec package's fast paths keep the slow paths' answers: confinement, YAML composition, cycle checks."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Mapping

import pytest
import yaml

from stack_builder.errors import SpecError
from stack_builder.spec import checks, yamlsource
from stack_builder.spec.confine import Confinement
from stack_builder.spec.problems import Problems
from stack_builder.spec.stack_spec import load_spec

from stacks import REPO
from test_hostile_input import billion_laughs

SPEC = """\
images:
  base:
    image_name: ghcr.io/org/base
  child:
    image_name: ghcr.io/org/child
    depend_on: base
tag: {prefix: "2024.1"}
"""


def stack(tmp_path: Path) -> Path:
    for name in ("base", "child"):
        (tmp_path / "images" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "images" / name / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "spec.yml").write_text(SPEC)
    return tmp_path


def problems(root: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(root)
    return caught.value.problems


# -- confinement ---------------------------------------------------------------------------------


@pytest.mark.parametrize("link, target", [
    ("images/child", "{outside}"),  # the whole build context
    ("images/child/test", "{outside}"),  # a test folder the layout implies
    ("images/child/test", "../../../outside"),  # relative, climbing out
    ("images/child/test_gpu", "{root}/hop"),  # through a second link that leads out
    ("images/child/test", "/nonexistent/elsewhere"),  # dangling, outside
    ("images/tests_common", "{outside}"),
    ("images/child/test", "{root}/images/child/test"),  # a loop
])
def test_a_symlink_leading_out_of_the_stack_is_refused(tmp_path: Path, link: str, target: str) -> None:
    root, outside = stack(tmp_path / "stack"), tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text("FROM scratch\n")
    os.symlink(outside, root / "hop")
    path = root / link
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    os.symlink(target.format(outside=outside, root=root), path)
    found = problems(root)
    assert found and all("outside the stack folder" in p for p in found), found
    assert f"'{link}' resolves to" in found[-1] or f"'{link}/Dockerfile' resolves to" in found[0]


def test_symlinks_and_parent_steps_that_stay_inside_are_accepted(tmp_path: Path) -> None:
    root = stack(tmp_path)
    os.symlink("base", root / "images" / "other")
    os.symlink(root / "images" / "base", root / "images" / "child" / "test")
    os.symlink(root / "nowhere", root / "images" / "child" / "test_gpu")  # dangling, but inside
    (root / "spec.yml").write_text(SPEC.replace("tag:", "  other:\n    image_name: ghcr.io/org/other\n"
                                                "    dockerfile: ../child/../base/Dockerfile\ntag:"))
    spec = load_spec(root)
    assert spec.images["other"].dockerfile == root / "images" / "other" / ".." / "child" / ".." / "base" / "Dockerfile"


def test_a_dockerfile_outside_by_path_is_refused_naming_its_key(tmp_path: Path) -> None:
    root = stack(tmp_path)
    (root / "spec.yml").write_text(SPEC.replace("    depend_on: base\n", "    depend_on: base\n"
                                                "    dockerfile: ../../../../etc/passwd\n"))
    found = problems(root)
    assert len(found) == 1 and "images.child.dockerfile: 'images/child/../../../../etc/passwd' resolves to" in found[0]


def test_confinement_resolves_as_path_resolve_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a tree of folders, files, symlinks (inside, outside, dangling, looping) and '..' steps, every path
    resolves as ``Path.resolve()`` resolves it; relative paths too, from the working folder."""
    rng = random.Random(23)
    root = tmp_path / "s"
    folders = [root, root / "a", root / "a" / "b", root / "c", tmp_path / "out"]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "f").write_text("x")
    targets = ["../out", str(tmp_path / "out"), "b", "../c", "nowhere", str(root / "loop"), "/", "f", ".."]
    for index, target in enumerate(targets):
        os.symlink(target, rng.choice(folders[:4]) / f"l{index}")
    os.symlink("loop", root / "loop")
    names = ["a", "b", "c", "f", "..", "missing", "loop", *(f"l{i}" for i in range(len(targets)))]
    monkeypatch.chdir(tmp_path)
    confinement = Confinement(root, Problems("spec.yml", yamlsource.Located(data=None)))
    for _ in range(3000):
        start = rng.choice([root, Path("s"), Path("s/a")])
        path = start.joinpath(*rng.choices(names, k=rng.randint(1, 5)))
        try:
            expected: str | None = str(path.resolve())
        except (OSError, RuntimeError):
            expected = None
        assert confinement.resolve(str(path)) == expected, path


# -- YAML ----------------------------------------------------------------------------------------


def located_by_pure_loader(text: str) -> yamlsource.Located:
    fast = yamlsource.HAVE_LIBYAML
    try:
        yamlsource.HAVE_LIBYAML = False
        return yamlsource.load(text)
    finally:
        yamlsource.HAVE_LIBYAML = fast


DOCUMENTS = [
    (REPO / "spec.yml").read_text(),
    SPEC,
    "base: &b {x: 1, y: [1, 2.5, true, null, '3.10']}\nother:\n  <<: *b\n  z: *b\n  x: 2\n  x: 3\n",
    "a:\n  - {k: v}\n  - [1, [2, [3]]]\n  - ? complex\n    : value\n'quoted key': |\n  block\n  text\n",
]


@pytest.mark.skipif(not yamlsource.HAVE_LIBYAML, reason="PyYAML was built without libyaml")
@pytest.mark.parametrize("text", DOCUMENTS)
def test_libyaml_reads_exactly_what_the_pure_loader_reads(text: str) -> None:
    assert yamlsource._fast_node(text) is not yamlsource._UNREAD  # the fast path is taken
    fast, pure = yamlsource.load(text), located_by_pure_loader(text)
    assert (fast.data, fast.lines, fast.duplicates) == (pure.data, pure.lines, pure.duplicates)


@pytest.mark.parametrize("text", [
    "a: [1, 2\n", "a: b: c\n", "a:\n\t- 1\n", "a: *nothere\n", "a: 1\n---\nb: 2\n", "a: !foo x\n",
    "a: \"open\n", "deep: " + "[" * 5000 + "]" * 5000 + "\n", "loop: &l [*l]\n", billion_laughs(), "a: b\x07\n",
])
def test_a_refused_document_gets_the_pure_loaders_words_and_line(text: str) -> None:
    with pytest.raises(yamlsource.YamlSyntaxError) as fast:
        yamlsource.load(text)
    with pytest.raises(yamlsource.YamlSyntaxError) as pure:
        located_by_pure_loader(text)
    assert (fast.value.line, str(fast.value)) == (pure.value.line, str(pure.value))


def test_an_alias_bomb_is_never_expanded_by_the_fast_composer() -> None:
    node = yamlsource._fast_node(billion_laughs())
    if node is yamlsource._UNREAD:
        pytest.skip("PyYAML was built without libyaml")
    assert isinstance(node, yaml.MappingNode)  # composed, aliases shared: refused afterwards by the count


# -- cycles --------------------------------------------------------------------------------------


def cycles_by_plain_walks(images_raw: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The definition: from each image, walk up; a walk that comes back to its start is a cycle, named once."""
    found, reported = [], set()
    for start in images_raw:
        seen: list[str] = []
        current: str | None = start
        while current is not None and current in images_raw and current not in seen:
            seen.append(current)
            current = images_raw[current].get("depend_on")
        if current == start and start not in reported:
            reported.update(seen)
            found.append(" -> ".join([*seen, start]))
    return found


def test_the_cycle_check_names_the_cycles_a_plain_walk_finds() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        names = [f"i{k}" for k in range(rng.randint(1, 12))]
        parents = {n: rng.choice([None, "unknown", *names]) for n in names}
        images_raw = {n: {} if parents[n] is None else {"depend_on": parents[n]} for n in rng.sample(names, len(names))}
        problems = Problems("spec.yml", yamlsource.Located(data=None))
        checks.cycles(images_raw, problems)
        assert [m.split("dependency cycle: ")[1] for m in problems.messages] == cycles_by_plain_walks(images_raw)


def test_a_long_chain_ending_in_a_cycle_is_checked_in_linear_time() -> None:
    images_raw: dict[str, dict[str, str]] = {f"i{k}": {"depend_on": f"i{k + 1}"} for k in range(20_000)}
    images_raw["i19999"] = {"depend_on": "i19990"}
    problems = Problems("spec.yml", yamlsource.Located(data=None))
    checks.cycles(images_raw, problems)  # quadratic would be 2 * 10^8 steps
    assert len(problems.messages) == 1 and "i19990 -> i19991" in problems.messages[0]

"""Bad input, generated: malformed specs and tag strings always get a clear error, never a traceback.
And nothing a user writes can reach a shell on the host."""
from __future__ import annotations

import ast
import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stack_builder.errors import SpecError, StackError
from stack_builder.pipeline.promote import parse_tag
from stack_builder.spec.references import TAG_RE, check_registry, check_tag, parse_repository, sanitize_branch
from stack_builder.spec.stack_spec import parse_spec
from stacks import REPO

VALID = {
    "root": "base",
    "images": {
        "base": {"image_name": "ghcr.io/org/base", "build_args": {"A": "1"}, "info_cmds": ["PY"],
                 "platforms": ["linux/amd64"]},
        "child": {"image_name": "ghcr.io/org/child", "depend_on": "base", "gpu": True,
                  "model": {"columns": {"y": "float"}, "fixed": False}},
    },
    "tag": {"prefix": "2024.1"},
    "all_info_cmds": {"PY": {"description": "Python", "command": "python --version"}},
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


def paths(node: object, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def mutate(spec: dict, path: tuple, value: object, delete: bool) -> dict:

    doc = copy.deepcopy(spec)
    if not path:
        return value if isinstance(value, dict) else {"images": value}
    node = doc
    for part in path[:-1]:
        node = node[part]
    if delete and isinstance(node, dict):
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return doc


def check_rejects_clearly(text: str, tmp: Path) -> None:
    try:
        parse_spec(text, path=tmp / "spec.yml", stack_dir=tmp, check_files=False)
    except SpecError as exc:
        assert exc.problems, "a SpecError must list its problems"
        for problem in exc.problems:
            assert problem.startswith("spec.yml"), problem
            assert "Traceback" not in problem
    # Anything else raised here is a bug: the test fails with its traceback.


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=values, delete=st.booleans())
def test_mutated_specs_get_clear_errors(tmp_path: Path, data: st.DataObject, value: object, delete: bool) -> None:
    path = data.draw(st.sampled_from(paths(VALID)))
    check_rejects_clearly(yaml.safe_dump(mutate(VALID, path, value, delete)), tmp_path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
@example(text="=")  # found by hypothesis: a YAML value tag no safe constructor knows
@example(text="\x1f")  # found by hypothesis: an unprintable character
def test_arbitrary_text_as_spec(tmp_path: Path, text: str) -> None:
    check_rejects_clearly(text, tmp_path)


@settings(max_examples=500, deadline=None)
@given(tag=st.text(max_size=60), global_stable=st.booleans())
def test_tag_strings(tag: str, global_stable: bool) -> None:
    try:
        source, target = parse_tag(tag, global_stable=global_stable)
    except StackError as exc:
        assert str(exc).startswith("--tag"), exc
        return
    assert TAG_RE.match(source) and TAG_RE.match(target)


@settings(max_examples=500, deadline=None)
@given(branch=st.text(max_size=300), prefix=st.from_regex(r"\A20[0-9]{2}\.[1-4]\Z"))
def test_any_branch_becomes_a_valid_tag(branch: str, prefix: str) -> None:
    tag = sanitize_branch(branch, prefix=prefix)
    assert TAG_RE.match(tag) and len(tag) <= 128 and tag.startswith(prefix + "-")


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80))
def test_names_tags_and_registries_are_checked(text: str) -> None:
    for check in (check_tag, parse_repository, check_registry):
        try:
            check(text)
        except StackError as exc:
            assert str(exc)


def test_nothing_a_user_writes_reaches_a_shell() -> None:
    """No os.system/popen, no shell=True, and every subprocess gets an argument list."""
    for path in sorted((REPO / "scripts").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            assert name not in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"), \
                f"{path.name}:{node.lineno}: {name}"
            if name.startswith("subprocess."):
                assert not any(k.arg == "shell" for k in node.keywords), f"{path.name}:{node.lineno}: shell="
                assert node.args and isinstance(node.args[0], (ast.List, ast.Name)), \
                    f"{path.name}:{node.lineno}: {name} without an argument list"

"""Bad input, generated: malformed specs and tag strings always get a clear error, never a traceback.
And nothing a user writes can reach a shell on the host."""
from __future__ import annotations

import ast
import copy
import re
import string
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stack_builder.errors import SpecError, StackError, shown
from stack_builder.release.promote import parse_tag
from stack_builder.spec.references import TAG_RE, check_registry, check_tag, parse_repository, sanitize_branch
from stack_builder.spec.stack_spec import DEFAULT_PLATFORMS, Spec, parse_spec
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

# Where a problem is: "spec.yml:LINE: key.path: what is wrong", or "spec.yml: ..." for a YAML error
# that has no line. The file is named by the path given to parse_spec, relative to the stack folder.
LOCATION = re.compile(r"^spec\.yml(?::(?P<line>[0-9]+))?: (?P<rest>.+)", re.DOTALL)


def paths(node: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def mutate(spec: dict[str, Any], path: tuple[Any, ...], value: object, delete: bool) -> Any:
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


def parse_or_reject(text: str, tmp: Path, *, mutated: tuple[Any, ...] | None = None) -> Spec | None:
    """The spec ``text`` gives, or None when it is rejected clearly.

    Clearly means: a SpecError (any other exception is a bug and fails the test with its traceback)
    whose message shows problems that each start with the file and, unless the YAML itself could not
    be read or the document is empty, a line that exists in ``text``; and, for a spec made by changing
    the value at ``mutated`` in a valid one, at least one problem names a key of that path (or its
    list index), so the message points at what was changed rather than somewhere else.
    """
    try:
        return parse_spec(text, path=tmp / "spec.yml", stack_dir=tmp, check_files=False)
    except SpecError as exc:
        problems, message = exc.problems, str(exc)
    assert problems, "a SpecError must list its problems"
    assert all(problem in message for problem in problems), f"the message leaves out problems: {message}"
    last_line = max(len(text.splitlines()), 1) + 1  # a YAML error may point just past the last line
    for problem in problems:
        where = LOCATION.match(problem)
        assert where, f"the problem does not start with 'spec.yml[:LINE]: ': {problem!r}"
        if where["line"] is None:
            assert where["rest"].startswith("YAML syntax error") or yaml.compose(text) is None, \
                f"only a YAML syntax error or an empty document may lack a line: {problem!r}"
        else:
            assert 1 <= int(where["line"]) <= last_line, f"line {where['line']} is not in the file: {problem!r}"
    if mutated:
        names = [f"[{part}]" if isinstance(part, int) else str(part) for part in mutated]
        assert any(name in problem for problem in problems for name in names), \
            f"changing {mutated} gave problems that name none of {names}: {problems}"
    return None


def assert_spec_matches(spec: Spec, data: dict[str, Any]) -> None:
    """A spec that parsed says what ``data`` (the document it was parsed from) says."""
    images = data["images"]
    assert list(spec.images) == list(images)
    for name, raw in images.items():
        image = spec.images[name]
        assert str(image.repository) == raw["image_name"], name
        assert image.parent == raw.get("depend_on"), name
        assert image.platforms == tuple(raw.get("platforms") or DEFAULT_PLATFORMS), name
        assert image.info_cmds == tuple(raw.get("info_cmds") or ()), name
        assert image.gpu is bool(raw.get("gpu", False)), name
        assert dict(image.build_args) == {
            key: str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in (raw.get("build_args") or {}).items()}, name
        assert (image.model is None) == (raw.get("model") is None), name
        if image.model is not None:
            assert dict(image.model.columns) == raw["model"]["columns"], name
            assert image.model.fixed is bool(raw["model"].get("fixed", True)), name
    assert spec.roots == tuple(n for n, raw in images.items() if raw.get("depend_on") is None)
    declared = data.get("root")
    for root in [declared] if isinstance(declared, str) else declared or []:
        assert root in spec.roots
    prefix = data["tag"]["prefix"]
    assert spec.tag_prefix == (repr(prefix) if isinstance(prefix, float) else str(prefix))
    assert {k: c.command for k, c in spec.all_info_cmds.items()} == {
        k: v["command"] for k, v in (data.get("all_info_cmds") or {}).items()}


def test_the_valid_spec_parses_to_what_it_says(tmp_path: Path) -> None:
    spec = parse_or_reject(yaml.safe_dump(VALID), tmp_path)
    assert spec is not None
    assert_spec_matches(spec, VALID)
    assert spec.images["child"].parent == "base" and spec.roots == ("base",)


@pytest.mark.parametrize(("path", "value", "delete", "expected"), [
    (("images", "child", "depend_on"), "bsae", False,
     r"^spec\.yml:\d+: images\.child\.depend_on: unknown parent 'bsae' \(did you mean 'base'\?\)$"),
    (("tag", "prefix"), "2024.5", False, r"^spec\.yml:\d+: tag\.prefix: '2024\.5' is not a quarter"),
    (("images", "base", "image_name"), None, True,
     r"^spec\.yml:\d+: images\.base: missing required key 'image_name'$"),
])
def test_a_changed_spec_is_rejected_where_it_was_changed(tmp_path: Path, path: tuple[Any, ...], value: object,
                                                         delete: bool, expected: str) -> None:
    """Known mutations, known messages: the checks in parse_or_reject, pinned to real text."""
    text = yaml.safe_dump(mutate(VALID, path, value, delete))
    assert parse_or_reject(text, tmp_path, mutated=path) is None
    with pytest.raises(SpecError) as caught:
        parse_spec(text, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False)
    assert any(re.search(expected, p) for p in caught.value.problems), caught.value.problems
    where = LOCATION.match(caught.value.problems[0])
    assert where and where["line"]
    changed_key = path[-2] if delete else path[-1]
    assert f"{changed_key}:" in text.splitlines()[int(where["line"]) - 1], "the line is the changed key's"


def test_mutated_specs_get_clear_errors(tmp_path: Path) -> None:
    """Every mutation of the valid spec is either rejected clearly or parses to exactly what it says.

    The outcomes are counted: a generator that stopped producing invalid specs (or valid ones) would
    make this test check nothing, so each outcome must be common.
    """
    outcomes: Counter[str] = Counter()

    @settings(max_examples=300, deadline=None)
    @given(data=st.data(), value=values, delete=st.booleans())
    def mutated(data: st.DataObject, value: object, delete: bool) -> None:
        path = data.draw(st.sampled_from(paths(VALID)))
        doc = mutate(VALID, path, value, delete)
        text = yaml.safe_dump(doc)
        spec = parse_or_reject(text, tmp_path, mutated=path)
        if spec is None:
            outcomes["rejected"] += 1
        else:
            assert_spec_matches(spec, yaml.safe_load(text))
            outcomes["parsed"] += 1

    mutated()
    total = sum(outcomes.values())
    assert total >= 100, f"the generator ran out of distinct specs: {dict(outcomes)}"
    assert outcomes["rejected"] >= total / 4, f"too few mutations were invalid: {dict(outcomes)}"
    assert outcomes["parsed"] >= total / 50, f"too few mutations were valid: {dict(outcomes)}"


def test_arbitrary_text_as_spec(tmp_path: Path) -> None:
    """Random text is never a valid spec: each one is rejected, clearly."""

    @settings(max_examples=300, deadline=None)
    @given(text=st.text(max_size=200))
    @example(text="=")  # found by hypothesis: a YAML value tag no safe constructor knows
    @example(text="\x1f")  # found by hypothesis: an unprintable character
    @example(text="images: [")  # a YAML syntax error with a line
    def arbitrary(text: str) -> None:
        assert parse_or_reject(text, tmp_path) is None, f"{text!r} was accepted as a spec"

    arbitrary()


def test_the_rejection_checks_can_fail(tmp_path: Path) -> None:
    """parse_or_reject fails problems that point away from the change; assert_spec_matches, a wrong spec."""
    text = yaml.safe_dump(mutate(VALID, ("images", "child", "depend_on"), "nowhere", False))
    with pytest.raises(AssertionError, match="name none of"):
        parse_or_reject(text, tmp_path, mutated=("all_info_cmds", "PY", "description"))
    spec = parse_or_reject(yaml.safe_dump(VALID), tmp_path)
    assert spec is not None
    with pytest.raises(AssertionError):
        assert_spec_matches(spec, mutate(VALID, ("images", "child", "depend_on"), None, True))


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


# Docker's reference grammar, written out without regular expressions so that a mistake in the
# package's patterns (an anchor, a class, a quantifier) shows up as a disagreement.
ALNUM = set(string.ascii_letters + string.digits)
LOWER_ALNUM = set(string.ascii_lowercase + string.digits)
DIGITS = set(string.digits)


def valid_tag(tag: str) -> bool:
    return 1 <= len(tag) <= 128 and set(tag) <= ALNUM | set("_.-") and tag[0] not in ".-"


def valid_path_component(part: str) -> bool:
    """[a-z0-9]+ runs joined by exactly one of '.', '_', '__' or a run of '-'."""
    if not part or not set(part) <= LOWER_ALNUM | set("._-"):
        return False
    runs, current = [], ""
    for char in part:
        if current and (char in LOWER_ALNUM) != (current[-1] in LOWER_ALNUM):
            runs.append(current)
            current = ""
        current += char
    runs.append(current)
    separators = runs[1::2]
    return runs[0][0] in LOWER_ALNUM and runs[-1][0] in LOWER_ALNUM and all(
        s in (".", "_", "__") or set(s) == {"-"} for s in separators)


def valid_host(value: str) -> bool:
    if value.startswith("["):
        inner, close, rest = value[1:].partition("]")
        return bool(close and inner and set(inner) <= set(string.hexdigits + ":")) and (
            not rest or (rest[0] == ":" and bool(rest[1:]) and set(rest[1:]) <= DIGITS))
    host, colon, port = value.partition(":")
    if colon and not (port and set(port) <= DIGITS):
        return False
    return all(c and set(c) <= ALNUM | {"-"} and c[0] != "-" and c[-1] != "-" for c in host.split("."))


def expected_problem(check: str, text: str) -> tuple[str, ...] | None:
    """None when ``text`` is valid for ``check``, else phrases its error message must contain."""
    if check == "tag":  # the offending value is shown cut to 120 characters
        return None if valid_tag(text) else (f"tag '{shown(text)}' is not a valid Docker tag",
                                              "up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -")
    if check == "registry":
        if not valid_host(text):
            return f"registry '{shown(text)}' is not HOST[:PORT]", "for example ghcr.io or 127.0.0.1:5000"
        port = text.rpartition(":")[2] if ":" in text.rpartition("]")[2] else ""
        return (f"port {port} is not from 1 to 65535",) if port and not 1 <= int(port) <= 65535 else None
    first, slash, rest = text.partition("/")
    host, path = (first, rest) if slash and ("." in first or ":" in first or first == "localhost") else (None, text)
    if host is not None and not valid_host(host):
        return f"'{shown(text)}': registry host '{shown(host)}' is not a valid host[:port]",
    if not all(valid_path_component(part) for part in path.split("/")):
        return (f"'{shown(text)}' is not a valid repository name",
                "use lowercase letters, digits and separators (. _ -) in path components joined by '/'")
    if len(text) > 255:
        return f"'{shown(text)}' is longer than 255 characters",
    return None


CHECKS = {"tag": check_tag, "repository": parse_repository, "registry": check_registry}
near_names = st.text(alphabet="abzAZ09._-/:[]@ \n", max_size=40)


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(max_size=80), near_names, st.text(alphabet="ab-", min_size=250, max_size=260)))
@example(text="2024.1-main")
@example(text="ghcr.io/org/image")
@example(text="127.0.0.1:5000")
@example(text="[::1]:5000/org/x")
@example(text="Org/Image")
@example(text="-bad")
@example(text="ghcr.io:/org/x")
@example(text="a" * 129)
@example(text="a/" + "b" * 254)
def test_names_tags_and_registries_are_checked(text: str) -> None:
    """Each check accepts exactly the valid values, and its error names the value and says what is allowed."""
    for check, function in CHECKS.items():
        if text.endswith("\n") and expected_problem(check, text[:-1]) is None:
            continue  # a known defect: see test_a_trailing_newline_is_not_valid
        expected = expected_problem(check, text)
        try:
            result = function(text)
        except StackError as exc:
            assert expected is not None, f"{check}: the valid {text!r} was rejected: {exc}"
            for phrase in expected:
                assert phrase in str(exc), f"{check}: {str(exc)!r} does not say {phrase!r}"
            continue
        assert expected is None, f"{check}: the invalid {text!r} was accepted ({expected[0]})"
        assert str(result) == text


@pytest.mark.parametrize(("check", "text"), [("tag", "2024.1-main\n"), ("repository", "org/image\n"),
                                             ("registry", "ghcr.io\n")])
def test_a_trailing_newline_is_not_valid(check: str, text: str) -> None:
    with pytest.raises(StackError):
        CHECKS[check](text)


def test_the_name_oracles_agree_with_docker_on_known_values() -> None:
    """The hand-written grammar above is itself right on values Docker is known to accept or refuse."""
    assert valid_tag("2024.1-main") and valid_tag("_x") and valid_tag("a" * 128)
    assert not any(valid_tag(t) for t in ("", ".x", "-x", "a" * 129, "a:b", "a/b", "é"))
    assert all(valid_path_component(c) for c in ("a", "a.b", "a_b", "a__b", "a---b", "a1-b2.c3"))
    assert not any(valid_path_component(c) for c in ("", "A", "a.", ".a", "a..b", "a___b", "a-.b", "a b", "ä"))
    assert all(valid_host(h) for h in ("ghcr.io", "localhost:5000", "127.0.0.1:5000", "[::1]", "[::1]:80", "a-b.c"))
    assert not any(valid_host(h) for h in ("", "-a.io", "a-.io", "a..io", "a:", "a:b", "[::1", "[]", "a_b.io",
                                           "a:5000:1", "١.io"))


# --- Nothing a user writes reaches a shell -------------------------------------------------------

SHELL_FUNCTIONS = {"os.system", "os.popen", "os.popen2", "os.popen3", "os.popen4", "subprocess.getoutput",
                   "subprocess.getstatusoutput", "asyncio.create_subprocess_shell", "pty.spawn", "commands.getoutput"}
PROCESS_FUNCTIONS = {"subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
                     "subprocess.Popen", "asyncio.create_subprocess_exec"}
LIST_NODES = (ast.List, ast.Tuple, ast.ListComp)


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted name it stands for, from the module's imports (``import x as y``, ``from x import y``)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:  # `import os.path` binds `os`
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, imported: dict[str, str]) -> str:
    """The called function's full name, with import aliases resolved (``sp.run`` -> ``subprocess.run``)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    return ".".join([imported.get(node.id, node.id), *reversed(parts)])


def _names_in(node: ast.AST | None) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} if node is not None else set()


def _bound_by_other_means(scope: ast.AST, name: str) -> bool:
    """Whether ``name`` is a parameter, loop variable, ``with ... as`` or ``:=`` target in ``scope``:
    then what it holds cannot be known from this code."""
    for sub in ast.walk(scope):
        if isinstance(sub, ast.arg) and sub.arg == name:
            return True
        if isinstance(sub, (ast.For, ast.AsyncFor, ast.comprehension, ast.NamedExpr)) and name in _names_in(sub.target):
            return True
        if isinstance(sub, ast.withitem) and name in _names_in(sub.optional_vars):
            return True
    return False


def _is_list(node: ast.expr, scope: ast.AST, depth: int = 0) -> bool:
    """Whether ``node`` is provably a list of arguments: a list display, or a name only ever assigned lists."""
    if isinstance(node, LIST_NODES):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_list(node.left, scope, depth) and _is_list(node.right, scope, depth)
    if not isinstance(node, ast.Name) or depth >= 5 or _bound_by_other_means(scope, node.id):
        return False
    values: list[ast.expr] = []
    for sub in ast.walk(scope):
        if isinstance(sub, ast.Assign) and node.id in {t.id for t in sub.targets if isinstance(t, ast.Name)}:
            values.append(sub.value)
        elif isinstance(sub, (ast.AnnAssign, ast.AugAssign)) and isinstance(sub.target, ast.Name) \
                and sub.target.id == node.id and sub.value is not None:
            values.append(sub.value)
    return bool(values) and all(_is_list(value, scope, depth + 1) for value in values)


def shell_problems(source: str, name: str = "<source>") -> list[str]:
    """Every place in ``source`` where a string could reach a shell on the host."""
    tree = ast.parse(source)
    imported = _imported_names(tree)
    problems: list[str] = []
    scopes: list[tuple[ast.AST, ast.AST]] = [(tree, tree)]
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            scopes.extend((child, node) for child in ast.walk(node))
    scope_of = {id(child): scope for child, scope in scopes}  # the innermost function wins: it comes later
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{name}:{node.lineno}"
        function = _dotted(node.func, imported)
        if function in SHELL_FUNCTIONS:
            problems.append(f"{where}: {function} runs a shell")
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value in
                                               (False, None, 0)):
                problems.append(f"{where}: {function or 'a call'} with shell={ast.unparse(keyword.value)}")
        is_process = function in PROCESS_FUNCTIONS or function.endswith(".Popen") or function == "Popen"
        if not is_process:
            continue
        if any(keyword.arg is None for keyword in node.keywords):
            problems.append(f"{where}: {function}(**...) may pass shell=True")
        args = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "args"), None)
        if function == "asyncio.create_subprocess_exec":
            continue  # takes the program and its arguments one by one: no string is ever split by a shell
        if args is None or not _is_list(args, scope_of.get(id(node), tree)):
            shown = ast.unparse(args) if args is not None else "nothing"
            problems.append(f"{where}: {function}({shown}) is not given an argument list")
    return problems


UNTRUSTED = re.compile("|".join([
    r"\binputs\b", r"\bgithub\s*\.\s*event\s*[.\[]", r"\bgithub\s*\.\s*head_ref\b", r"\bgithub\s*\[",
    r"\bmatrix\b", r"\bneeds\s*\.\s*[\w-]+\s*\.\s*outputs\b", r"\bsteps\s*\.\s*[\w-]+\s*\.\s*outputs\b"]))
EXPRESSIONS = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def workflow_problems(workflow: Any, name: str = "<workflow>") -> list[str]:
    """Each ``run:`` (and github-script ``script:``) that pastes a value someone else chose into its script.

    Such values (workflow inputs, the event's payload, branch names, and the matrix and outputs made from
    spec.yml) must reach the script through ``env:``, where the shell reads them as data.
    """
    problems = []
    for job_name, job in (workflow.get("jobs") or {}).items():
        for index, step in enumerate(job.get("steps") or []):
            scripts = [("run", step.get("run"))]
            if str(step.get("uses", "")).startswith("actions/github-script"):
                scripts.append(("with.script", (step.get("with") or {}).get("script")))
            for key, script in scripts:
                for expression in EXPRESSIONS.findall(str(script or "")):
                    if UNTRUSTED.search(expression):
                        problems.append(f"{name}: jobs.{job_name}.steps[{index}] ({step.get('name', '')}): "
                                        f"{key} contains ${{{{{expression}}}}}: pass it through env: instead")
    return problems


def test_nothing_a_user_writes_reaches_a_shell() -> None:
    """No os.system/popen, no shell=, every subprocess gets an argument list; workflows paste no input into run:."""
    sources = sorted((REPO / "scripts" / "stack_builder").rglob("*.py"))
    assert len(sources) > 10, "the package was not found"
    problems = [p for path in sources for p in shell_problems(path.read_text(), str(path.relative_to(REPO)))]
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows, "no workflows found"
    for path in workflows:
        problems += workflow_problems(yaml.safe_load(path.read_text()), path.name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("source", "expected"), [
    ("import os\nos.system('rm -rf ' + name)\n", "os.system runs a shell"),
    ("from os import popen\npopen(command)\n", "os.popen runs a shell"),
    ("import subprocess\nsubprocess.run(['ls'], shell=True)\n", "shell=True"),
    ("import subprocess\nsubprocess.check_call(['ls'], shell=flag)\n", "shell=flag"),
    ("import subprocess as sp\nsp.check_output(f'ls {folder}')\n", "is not given an argument list"),
    ("from subprocess import Popen\nPopen('ls ' + folder)\n", "is not given an argument list"),
    ("import subprocess\ndef f(name):\n    command = 'ls ' + name\n    subprocess.run(command)\n",
     "is not given an argument list"),
    ("import subprocess\ndef f(command):\n    subprocess.run(command)\n", "is not given an argument list"),
    ("import subprocess\ndef f(options):\n    subprocess.run(['ls'], **options)\n", "may pass shell=True"),
    ("import subprocess\nsubprocess.run(args=' '.join(parts))\n", "is not given an argument list"),
    ("import subprocess\ncommand = ['ls']\ncommand = 'ls -l'\nsubprocess.call(command)\n",
     "is not given an argument list"),
])
def test_the_shell_check_finds_shells(source: str, expected: str) -> None:
    problems = shell_problems(source)
    assert len(problems) == 1 and expected in problems[0], problems


def test_the_shell_check_passes_argument_lists() -> None:
    assert shell_problems("""\
import subprocess
def f(name, folder):
    command = ["ls", name]
    command += ["-l"]
    subprocess.run(command, check=True, shell=False)
    subprocess.run([*command, folder], stdin=subprocess.DEVNULL)
    subprocess.Popen(["cat"] + [name])
""") == []


def test_the_workflow_check_finds_pasted_inputs() -> None:
    def steps(*runs: str) -> dict[str, Any]:
        return {"jobs": {"j": {"steps": [{"name": "s", "run": run} for run in runs]}}}
    bad = ["echo ${{ inputs.tag }}", "git checkout ${{github.head_ref}}",
           "echo '${{ github.event.head_commit.message }}'",
           "doit build --image=${{ matrix.image }}", "echo ${{ needs.plan.outputs.tag }}",
           "echo ${{ format('{0}', inputs.tag) }}", "echo ${{ github['event']['pull_request']['title'] }}"]
    for run in bad:
        assert len(workflow_problems(steps(run))) == 1, run
    script = {"jobs": {"j": {"steps": [{"uses": "actions/github-script@v7",
                                        "with": {"script": "core.info('${{ inputs.tag }}')"}}]}}}
    assert len(workflow_problems(script)) == 1
    assert workflow_problems(steps('echo "$TAG"', "echo ${{ github.sha }} ${{ runner.os }}", "echo plain")) == []

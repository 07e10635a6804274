"""The documentation site: built with `mkdocs build --strict` (a broken link or anchor, or a generated reference
that no longer matches the code, fails), its generated references checked against what the code declares, and
the generators themselves: every schema key, every parameter and every reusable workflow input on the page,
anything they cannot describe refused, and hostile text kept as text."""
from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from stack_builder.apps import cli, doit_tasks
from stack_builder.docs.commands_page import Command, command_reference, commands_of
from stack_builder.docs.mdtext import DocsError, code, prose, text
from stack_builder.docs.generated import GENERATORS, expand
from stack_builder.docs.spec_page import property_names, spec_reference
from stack_builder.docs.workflows_page import Workflow, permissions_needed, workflow_reference
from stacks import REPO

WORKFLOWS = REPO / ".github" / "workflows"
SCHEMA: dict[str, Any] = json.loads((resources.files("stack_builder.spec") / "spec.schema.json").read_text())


def mkdocs_build(site: Path, config: Path = REPO / "mkdocs.yml") -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.fail("mkdocs and mkdocs-material are missing: `bash setup.sh env` installs them", pytrace=False)
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, cwd=REPO, timeout=300,
                          check=False, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    result = mkdocs_build(folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return folder


def page(site: Path, name: str) -> str:
    return html.unescape((site / name / "index.html").read_text())


# -- the built site --------------------------------------------------------------------------------------------

def test_the_site_builds_strict_with_every_page(site: Path) -> None:
    pages = {p.relative_to(REPO / "docs").with_suffix("").as_posix() for p in (REPO / "docs").rglob("*.md")}
    for name in pages:
        built = site / (name.removesuffix("index") if name.endswith("index") else f"{name}/") / "index.html"
        assert built.is_file(), f"docs/{name}.md was not built"
    assert not (site / "requirements.lock").exists()


def test_the_command_reference_lists_every_option_of_every_command(site: Path) -> None:
    built = page(site, "reference/commands")
    for command in commands_of(doit_tasks):
        assert f'id="{command.name.replace("_", "-")}"' in built, command.name
        for param in command.params:
            assert f"--{param['long']}" in built, (command.name, param["long"])
    build = built[built.index('id="build"'):]
    build = build[:build.index("<h2", 10)]
    for param in next(c for c in commands_of(doit_tasks) if c.name == "build").params:
        assert f"--{param['long']}" in build and " ".join(str(param["help"]).split())[:40] in " ".join(
            re.sub(r"<[^>]+>", "", build).split()), param["long"]


def test_the_spec_reference_lists_every_key_of_the_schema(site: Path) -> None:
    built = page(site, "reference/spec")
    for key in SCHEMA["properties"]:
        assert f"<code>{key}</code>" in built, key
    for key in property_names(SCHEMA):
        assert f"<code>{key}</code>" in built, key
    assert "image_name: ghcr.io/" in re.sub(r"<[^>]+>", "", built)  # the bundled spec, as the example


def test_the_workflow_reference_lists_every_reusable_input(site: Path) -> None:
    built = page(site, "reference/workflows")
    for path in sorted(WORKFLOWS.glob("*.yml")):
        workflow = Workflow.parse(path.name, path.read_text())
        assert f"<code>{path.name}</code>" in built
        for event in ("workflow_call", "workflow_dispatch"):
            spec = workflow.events.get(event, {})
            for kind in ("inputs", "secrets", "outputs"):
                for name in spec.get(kind) or {}:
                    assert f"<code>{name}</code>" in built, (path.name, event, kind, name)


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the missing page](missing.md) and [a heading](#nowhere).\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text("site_name: t\nvalidation: {anchors: warn}\ntheme: {name: material, font: false}\n")
    result = mkdocs_build(tmp_path / "site", config)
    assert result.returncode != 0 and "missing.md" in result.stderr and "nowhere" in result.stderr, result.stderr


# -- the README ------------------------------------------------------------------------------------------------

def test_the_readme_is_a_landing_page_whose_links_resolve() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "bash setup.sh " in readme and "bash setup.sh test" in readme
    links = re.findall(r"\]\(([^)#]+?\.md)(?:#[^)]*)?\)", readme)
    assert any(link.startswith("docs/") for link in links)
    assert [link for link in links if not (REPO / link).is_file()] == []
    assert "docs/benchmarks.md" in links


# -- the generators --------------------------------------------------------------------------------------------

def test_the_spec_page_names_every_key_at_every_depth_with_its_description() -> None:
    made = spec_reference(SCHEMA)
    for key in property_names(SCHEMA):
        assert code(key) in made, key
    image = SCHEMA["$defs"]["image"]["properties"]
    assert prose(image["image_name"]["description"]) in made
    assert "| `image_name` | string | yes |" in made and "| `tag` | [mapping](#tag) | yes |" in made


@pytest.mark.parametrize("keyword", [{"allOf": [{"type": "string"}]}, {"const": 1}, {"if": {}, "then": {}},
                                     {"$ref": "#/$defs/missing"}, {}])
def test_a_schema_the_page_cannot_describe_stops_the_build(keyword: dict[str, Any]) -> None:
    schema = {"type": "object", "properties": {"odd": keyword}, "$defs": {}}
    with pytest.raises(DocsError, match="odd"):
        spec_reference(schema)


def test_hostile_text_stays_text() -> None:
    evil = "x|<img src=x onerror=alert(1)>[x](nowhere) *em* {: #id} `code`"
    said = text(evil)
    assert "<" not in said and "|" not in said and "[" not in said and "*" not in said and "{" not in said
    assert html.unescape(said) == evil
    assert prose("run `a|b` then <b>") == "run `a|b` then &lt;b&gt;"
    assert code("a`b") == "`` a`b ``"
    schema = {"type": "object", "properties": {"k": {"type": "string", "description": evil}}}
    assert "<img" not in spec_reference(schema)


def test_the_command_page_shows_each_option_and_refuses_one_without_help() -> None:
    made = command_reference(commands_of(doit_tasks), [cli.STACK_DIR_OPTION])
    for command in commands_of(doit_tasks):
        assert f"## `{command.name}`" in made
        for param in command.params:
            assert f"`--{param['long']}`" in made and prose(str(param["help"])) in made
    assert "`--dir`, `-d`" in made
    build = next(c for c in commands_of(doit_tasks) if c.name == "build")
    assert "stack-builder build --image" in made and build.example  # the docstring's example, as a command line
    bad = Command("x", "Does x.", ({"name": "y", "long": "y", "type": str, "default": "", "help": ""},))
    with pytest.raises(DocsError, match="parameter 'y' has no help"):
        command_reference([bad])
    with pytest.raises(DocsError, match="no long"):
        command_reference([Command("x", "Does x.", ({"name": "y", "type": str, "default": "", "help": "h"},))])


REUSABLE = """\
# Builds things.
name: build
on:
  workflow_call:
    inputs:
      tag: {description: The tag, type: string, required: true}
      dry: {description: Only say, type: boolean, default: false}
    secrets:
      token: {description: A token, required: false}
    outputs:
      digest: {description: The digest, value: "${{ jobs.b.outputs.d }}"}
permissions: {contents: read}
jobs:
  a: {runs-on: x, permissions: {contents: read, packages: write}, steps: []}
  b: {runs-on: x, needs: a, permissions: {contents: read, id-token: write}, steps: []}
"""


def test_the_workflow_page_says_how_to_call_a_reusable_workflow() -> None:
    made = workflow_reference([("stack-build.yml", REUSABLE)], "1.2.3")
    assert "uses: OWNER/REPO/.github/workflows/stack-build.yml@v1.2.3" in made
    assert "tag: ...  # required" in made and "secrets: inherit" in made and "Builds things." in made
    for name in ("`tag`", "`dry`", "`token`", "`digest`", "The digest"):
        assert name in made
    assert permissions_needed(Workflow.parse("w.yml", REUSABLE)) == {"contents": "read", "id-token": "write",
                                                                     "packages": "write"}
    with pytest.raises(DocsError, match="'tag' has no description"):
        workflow_reference([("w.yml", REUSABLE.replace("description: The tag, ", ""))], "1")
    with pytest.raises(DocsError, match="on: and jobs:"):
        workflow_reference([("w.yml", "name: x\n")], "1")


def test_the_workflow_page_covers_every_workflow_file_as_it_is_now() -> None:
    files = [(p.name, p.read_text()) for p in sorted(WORKFLOWS.glob("*.yml"))]
    made = workflow_reference(files, "0.0.0")
    for name, source in files:
        workflow = Workflow.parse(name, source)
        assert code(name) in made
        for spec in (workflow.events.get("workflow_call", {}), workflow.events.get("workflow_dispatch", {})):
            for input_name in spec.get("inputs") or {}:
                assert code(str(input_name)) in made, (name, input_name)


def test_every_marker_has_a_generator_and_every_generator_a_page(tmp_path: Path) -> None:
    with pytest.raises(DocsError, match="unknown generated section 'nope'"):
        expand("<!-- generated: nope -->", REPO)
    held = " ".join(p.read_text() for p in (REPO / "docs").rglob("*.md"))
    used: set[str] = set()
    for name in GENERATORS:
        assert f"<!-- generated: {name} -->" in held, name
        assert expand(f"a\n<!-- generated: {name} -->\nb", REPO, used).startswith("a\n")
    assert used == set(GENERATORS)

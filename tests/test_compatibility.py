"""The compatibility promise: a spec and a report written by the first release (0.1.0) are still read; a spec or
report of a newer format is refused with a message that says what to do; what this builder writes says which
format, and which builder, it is.

The first release's files (tests/fixtures/release-0.1.0) were written by stack-builder 0.1.0 itself: its spec
has no version, and its build-report.json comes from a real build and push of that stack.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import git
import pytest

from stack_builder.errors import SpecError, StackError
from stack_builder.kinds import Reason, ReasonKind, Status
from stack_builder.records.report import FORMAT_VERSION, BuildReport, ImageResult, merge_reports, read_report
from stack_builder.spec.loader import load_spec, parse_spec
from stack_builder.spec.shape import schema, spec_version
from stack_builder.version import version
from stacks import REPO, STACK_BUILDER

FIRST_RELEASE = REPO / "tests" / "fixtures" / "release-0.1.0"


def test_the_first_releases_spec_is_read() -> None:
    import yaml

    assert "version" not in yaml.safe_load((FIRST_RELEASE / "spec.yml").read_text())  # from before specs had one
    spec = load_spec(FIRST_RELEASE)
    assert list(spec.images) == ["hello"]
    assert spec.images["hello"].info_cmds == ("OS",)


def test_the_schema_carries_its_version_and_the_spec_may_name_it() -> None:
    assert spec_version() == 1
    assert schema()["properties"]["version"]["maximum"] == spec_version()
    text = "version: 1\n" + (FIRST_RELEASE / "spec.yml").read_text()
    assert list(parse_spec(text, path=FIRST_RELEASE / "spec.yml", stack_dir=FIRST_RELEASE).images) == ["hello"]


def test_a_spec_of_a_newer_format_is_refused_saying_to_upgrade() -> None:
    # A newer format may bring keys this builder does not know: the one message is about the version.
    text = "version: 2\nnew_section: {a: 1}\n" + (FIRST_RELEASE / "spec.yml").read_text()
    with pytest.raises(SpecError) as caught:
        parse_spec(text, path=FIRST_RELEASE / "spec.yml", stack_dir=FIRST_RELEASE)
    assert len(caught.value.problems) == 1, caught.value.problems
    message = caught.value.problems[0]
    assert "spec.yml:1" in message and "version" in message and "format 2" in message
    assert f"stack-builder ({version()})" in message and "upgrade stack-builder" in message


@pytest.mark.parametrize("value", ['"1"', "0", "true", "1.5"])
def test_a_spec_version_that_is_not_one_is_named(value: str) -> None:
    text = f"version: {value}\n" + (FIRST_RELEASE / "spec.yml").read_text()
    with pytest.raises(SpecError) as caught:
        parse_spec(text, path=FIRST_RELEASE / "spec.yml", stack_dir=FIRST_RELEASE)
    assert any("version" in p and "spec version" in p for p in caught.value.problems), caught.value.problems


def test_the_first_releases_report_is_read_and_merged() -> None:
    report = read_report(FIRST_RELEASE / "build-report.json", what="a 0.1.0 report", missing_ok=False)
    assert "format_version" not in report and report["images"]["hello"]["status"] == "built"
    merged = merge_reports([report, report])
    assert merged["format_version"] == FORMAT_VERSION
    assert merged["images"]["hello"]["status"] == "built"
    assert merged["images"]["hello"]["tests"]["passed"] == 2


def test_a_report_of_a_newer_format_is_refused_naming_the_file(tmp_path: Path) -> None:
    newer = json.loads((FIRST_RELEASE / "build-report.json").read_text())
    newer["format_version"] = FORMAT_VERSION + 1
    path = tmp_path / "build-report.json"
    path.write_text(json.dumps(newer))
    with pytest.raises(StackError, match=r"build-report.json \(a report\): written in build-report format 2 by a "
                                         r"newer stack-builder.*upgrade stack-builder"):
        read_report(path, what="a report")
    path.write_text(json.dumps({**newer, "format_version": "two"}))
    with pytest.raises(StackError, match="'two' is not a format version"):
        read_report(path, what="a report")


def test_what_this_builder_writes_names_its_format_and_builder() -> None:
    report = BuildReport(commit="c" * 40, branch="main", tag="2024.1-main", registry="r", pushed=True, base=None,
                         base_source="", images={"a": ImageResult(Status.BUILT, Reason(ReasonKind.FORCED, "all"))},
                         builder=version())
    written = report.as_dict()
    assert written["format_version"] == FORMAT_VERSION and written["builder"] == version()
    assert list(written)[0] == "format_version"  # the first thing a reader sees


def test_the_wiki_command_reads_a_first_release_report(tmp_path: Path) -> None:
    """`wiki` renders a stack whose artifacts hold the 0.1.0 report; the same report in a newer format fails
    with the message, not a traceback."""
    stack = tmp_path / "stack"
    shutil.copytree(FIRST_RELEASE, stack)
    repo = git.Repo.init(stack, initial_branch="main")
    repo.git.add(all=True)
    repo.index.commit("a stack of 0.1.0")
    (stack / "artifacts").mkdir()
    shutil.copy(FIRST_RELEASE / "build-report.json", stack / "artifacts" / "build-report.json")
    done = subprocess.run([str(STACK_BUILDER), "wiki"], cwd=stack, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "all links resolve" in done.stdout
    newer = json.loads((FIRST_RELEASE / "build-report.json").read_text())
    (stack / "artifacts" / "build-report.json").write_text(json.dumps({**newer, "format_version": 9}))
    done = subprocess.run([str(STACK_BUILDER), "wiki"], cwd=stack, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "written in build-report format 9 by a newer stack-builder" in done.stderr
    assert "Traceback" not in done.stderr

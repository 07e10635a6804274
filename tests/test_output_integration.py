"""What people see: plain progress lines, stdout that composes, and GitHub Actions' groups and summary."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stacks import MakeStack, small_stack

pytestmark = pytest.mark.integration


def test_progress_lines_groups_and_the_step_summary(make_stack: MakeStack, registry: str, test_base: str,
                                                    tmp_path: Path) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="output")
    stack.commit("initial")
    summary = tmp_path / "summary.md"
    result = stack.doit("build", "--all", env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.stdout + result.stderr
    # Progress: one plain, timestamped line per step change, with [done/total]; the log path when it starts.
    assert f"root: started; its log: {stack.root / 'artifacts' / 'logs' / 'root.log'}" in result.stderr
    for step in ("the build", "the tests", "the push"):
        assert f"] leaf: {step} (" in result.stderr
    assert "[3/4] " in result.stderr or "[2/4] " in result.stderr
    # The image's log: every line time-stamped, the build's, the tests' and ours alike.
    log = (stack.root / "artifacts" / "logs" / "leaf.log").read_text().splitlines()
    assert log and all(re.match(r"\d\d:\d\d:\d\d ", line) for line in log), log[:5]
    assert any("== test " in line for line in log) and any("passed" in line for line in log)
    # GitHub Actions: each image's log folded; the summary table in the job summary, as Markdown.
    assert "::group::leaf: built (log " in result.stdout and "::endgroup::" in result.stdout
    text = summary.read_text()
    assert "| image | status | time | tests | ref / reason |" in text
    assert f"| leaf | built |" in text and f"` {registry}/output/leaf:2024.1-main `" in text
    # JUnit for a reporter: image tests labelled with image and platform; the image's steps as test cases.
    tests = ET.parse(stack.root / "artifacts" / "junit" / "leaf.xml").getroot()
    assert {c.get("classname", "").split(".")[0] for c in tests.iter("testcase")} == {"leaf[linux/amd64]"}
    steps = ET.parse(stack.root / "artifacts" / "junit" / "leaf-steps.xml").getroot()
    cases = {c.get("name"): c for c in steps.iter("testcase")}
    assert list(cases) == ["build and tests (linux/amd64)", "push and read back"]
    assert all(len(c) == 0 for c in cases.values())  # no failure, no skip
    # stdout carries what tasks print, doit's own lines go to stderr.
    assert ".  build" not in result.stdout and ".  build" in result.stderr


def test_plan_prints_only_json_on_stdout(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="plan-json")
    stack.commit("initial")
    result = stack.doit("plan")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"] == ["root", "left", "right", "leaf"]
    wrong = stack.doit("plan", "--image", "nosuch")
    assert wrong.returncode != 0 and wrong.stdout == "" and "--image names no image" in wrong.stderr


def test_a_terminal_gets_a_live_display(make_stack: MakeStack, registry: str, test_base: str) -> None:
    import os
    import pty
    import select
    import subprocess
    import sys

    from stacks import DODO

    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="live")
    leaf = stack.root / "images" / "leaf" / "Dockerfile"
    leaf.write_text(leaf.read_text() + "RUN sleep 3\n")  # a step long enough to be seen in flight
    stack.commit("initial")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")}
    env.update(STACK_REGISTRY=registry, TERM="xterm-256color", COLUMNS="120", LINES="40")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(stack.root), "build", "--all"],
                            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other end closed: the build is over
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=600)
    os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, text[-3000:]
    assert "\x1b[" in text  # redrawn in place: a live display, not plain lines
    assert re.search(r"\[\d/4\] images", text)  # the run's count
    assert re.search(r"leaf +the build, step \d/\d: ", text)  # an image in flight, with its Dockerfile step
    assert "] leaf: built" in text  # and when it is done

"""Commit, branch and source URL of a stack, from real git repositories."""
from __future__ import annotations

import hashlib

from stacks import MakeStack, Stack

from stack_builder.plan.revision import read_revision


def make(make_stack: MakeStack, url: str | None, name: str = "stack") -> Stack:
    stack = make_stack(name)
    stack.write("spec.yml", "images: {}\n")
    stack.commit()
    if url:
        stack.repo.create_remote("origin", url)
    return stack


def test_source_url_from_remotes(make_stack: MakeStack) -> None:
    cases = {
        "https://github.com/org/stack.git": "https://github.com/org/stack",
        "git@github.com:org/stack.git": "https://github.com/org/stack",
        "https://user:secret@github.com/org/stack.git": "https://github.com/org/stack",
        "/srv/git/stack": None,
    }
    for index, (url, expected) in enumerate(cases.items()):
        revision = read_revision(make(make_stack, url, f"stack{index}").root, env={})
        assert revision.source_url == expected, url


def test_ci_variables_win(make_stack: MakeStack) -> None:
    stack = make(make_stack, None)
    env = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/stack", "GITHUB_REF_NAME": "release/x"}
    revision = read_revision(stack.root, env=env)
    assert revision.source_url == "https://github.com/org/stack"
    assert revision.branch == "release/x"
    assert revision.commit_url() == f"https://github.com/org/stack/commit/{revision.commit}"
    # release/x is sanitised, so it keeps a hash of the whole name: release-x never shares its tag.
    hashed = "2024.1-release-x-" + hashlib.sha256(b"release/x").hexdigest()[:8]
    assert revision.tags("2024.1") == (hashed, f"2024.1-git-{revision.commit[:12]}")


def test_uncommitted_inputs_give_no_immutable_tag(make_stack: MakeStack) -> None:
    stack = make(make_stack, None)
    stack.write("images/a/Dockerfile", "FROM scratch\n")
    assert read_revision(stack.root, env={}).tags("2024.1")[1] is None


def test_a_change_to_any_input_makes_the_checkout_dirty_but_the_tools_own_outputs_do_not(make_stack: MakeStack) -> None:
    stack = make(make_stack, None)
    stack.write("wiki/Home.md", "written by a build\n")
    stack.write("artifacts/build-report.json", "{}\n")
    stack.write(".doit.json", "{}\n")
    assert read_revision(stack.root, env={}).tags("2024.1")[1] is not None  # outputs only: still clean
    stack.write("downloaded/plan.json", "{}\n")  # an untracked file outside the inputs: a CI job's artifact
    assert read_revision(stack.root, env={}).tags("2024.1")[1] is not None
    # Inputs outside images/ and spec.yml: a conftest.py above the tests, a model's files, a shared context.
    for path in ("conftest.py", "models/iris/weights.bin", "shared/context/requirements.txt"):
        stack.write(path, "committed\n")
        stack.commit(f"add {path}")
        stack.write(path, "changed\n")
        assert read_revision(stack.root, env={}).tags("2024.1")[1] is None, path
        stack.repo.git.checkout("--", path)
    stack.write("tests/conftest.py", "new\n")  # an untracked conftest.py: pytest reads it
    assert read_revision(stack.root, env={}).tags("2024.1")[1] is None

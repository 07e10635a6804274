"""Manifests and the wiki from real builds; integration tests; `doit manifest` and `doit wiki` on their own."""
from __future__ import annotations

import json

import docker
import pytest

from stacks import DEBIAN, MakeStack, debian_base, registry_digest, small_stack

pytestmark = pytest.mark.integration

# A real Debian package made in the build with dpkg-deb (no network needed), installed with dpkg.
ADD_PACKAGE = ("RUN mkdir -p /tmp/p/DEBIAN && printf 'Package: stack-test-pkg\\nVersion: 1.0\\nArchitecture: all\\n"
               "Maintainer: tests\\nDescription: test package\\n' > /tmp/p/DEBIAN/control "
               "&& dpkg-deb --build /tmp/p /tmp/p.deb >/dev/null && dpkg -i /tmp/p.deb && rm -rf /tmp/p /tmp/p.deb\n")


@pytest.fixture(scope="module")
def debian(engine: docker.DockerClient) -> str:
    return debian_base(engine)


def test_manifest_records_and_shows_a_package_added_between_builds(make_stack: MakeStack, registry: str,
                                                                   debian: str) -> None:
    stack = make_stack(registry=registry)
    stack.write("spec.yml", """\
        images:
          os:
            image_name: ghcr.io/manifests/os
            info_cmds: [DEBIAN, LONG]
        tag:
          prefix: "2024.1"
        all_info_cmds:
          DEBIAN: {description: Debian version, command: cat /etc/debian_version}
          LONG: {description: Many lines, command: "seq 1 60"}
        """)
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.write("images/os/Dockerfile", f"FROM {debian}\nRUN echo first > /version\n")
    first = stack.commit("first")
    assert stack.doit("build", "--all").returncode == 0
    stack.write("images/os/Dockerfile", f"FROM {debian}\nRUN echo second > /version\n{ADD_PACKAGE}")
    second = stack.commit("second")
    result = stack.doit("build", "--base-ref", "HEAD~1")
    assert result.returncode == 0, result.stdout + result.stderr

    name = f"os-2024.1-git-{second[:12]}"
    record = json.loads((stack.root / "artifacts" / "manifests" / f"{name}.json").read_text())
    assert record["packages"]["apt"]["stack-test-pkg"] == "1.0"
    assert record["commands"]["DEBIAN"]["output"].startswith("12") and record["commands"]["DEBIAN"]["exit_code"] == 0
    assert record["digest"] == stack.report()["images"]["os"]["digest"]
    assert len(record["layers"]) >= 3

    page = (stack.root / "wiki" / f"{name}.md").read_text()
    assert "| apt | stack-test-pkg | — | 1.0 |" in page
    assert f"Compared with ` os:2024.1-git-{first[:12]} `" in page
    assert "<details>" in page  # 60 lines of output are folded
    home = (stack.root / "wiki" / "Home.md").read_text()
    assert home.index(second[:12]) < home.index(first[:12])  # newest first
    assert f"[os:2024.1-main]({name})" in home

    # Re-running the wiki task on its own checks every link.
    result = stack.doit("wiki")
    assert result.returncode == 0 and "all links resolve" in result.stdout, result.stdout + result.stderr


def test_doit_manifest_for_an_image_in_the_registry(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="manifest-task")
    assert stack.doit("build", "--all", "--image", "root").returncode == 0
    result = stack.doit("manifest", "--image", "root", "--tag", "2024.1-main")
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((stack.root / "artifacts" / "manifests" / "root-2024.1-main.json").read_text())
    assert record["digest"] == registry_digest(registry, "manifest-task/root", "2024.1-main")
    assert record["commit"] == stack.repo.head.commit.hexsha  # read back from the image's OCI label
    assert record["commands"]["OS"]["output"].startswith("Linux")
    assert (stack.root / "wiki" / "root-2024.1-main.md").is_file()
    missing = stack.doit("manifest", "--image", "root", "--tag", "2099.1-nope")
    assert missing.returncode != 0 and "is not in registry" in missing.stdout + missing.stderr
    assert "Traceback" not in missing.stdout + missing.stderr


def test_integration_tests_run_before_the_push(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="integration")
    spec = stack.root / "spec.yml"
    spec.write_text(spec.read_text().replace("    depend_on: root\n  leaf:", "    depend_on: root\n"
                                             "    integration_tests: true\n  leaf:"))
    stack.write("images/left/integration_tests/test_service.py", """\
        def test_service_answers(container):
            code, output = container.run(["sh", "-c", "cat /no-such-service"])
            assert code == 0, output
        """)
    stack.commit("integration tests")
    result = stack.doit("build", "--all")
    assert result.returncode != 0
    left = stack.report()["images"]["left"]
    assert left["status"] == "failed" and "test_service_answers" in left["reason"]
    assert left["tests"]["failed"] == 1 and left["tests"]["passed"] >= 3
    assert registry_digest(registry, "integration/left", "2024.1-main") is None
    assert (stack.root / "artifacts" / "junit" / "left.xml").is_file()

"""The manifest container's output, split into sections and handed to records/ as plain data."""
from __future__ import annotations

import json

from stack_builder.checks import inventory
from stack_builder.records import manifests
from stack_builder.spec.stack_spec import ContentTag, InfoCmd

MARKER = "@@stack-0123456789ab"


def section(key: str, text: str, code: int) -> str:
    return f"\n{MARKER} begin {key}\n{text}\n{MARKER} end {key} {code}\n"


def test_sections_split_packages_parse_and_the_record_is_built_from_plain_data() -> None:
    output = "".join([section("OS", "Linux x\n", 0), section("__pip", json.dumps([{"name": "NumPy", "version": "2"}]), 0),
                      section("__apt", "libc\t2.36\nnot a package", 0), section("__conda", "not json", 0),
                      section("__tag0", "3.11", 0), "noise an image printed"])
    sections = inventory._split(output, MARKER)
    assert sections["OS"] == manifests.Output("Linux x", 0) and "__tag1" not in sections
    assert inventory._packages(sections) == {"pip": {"numpy": "2"}, "apt": {"libc": "2.36"}}  # conda: not JSON

    facts = manifests.BuildFacts(image="i", tag="t", ref="r/i:t", digest=None, commit="c" * 40, branch="main",
                                 commit_url=None, parent=None, platforms=("linux/amd64",))
    image = manifests.ImageFacts(id="sha256:1", size=3, platform="linux/arm64",
                                 history=({"Id": "x", "Created": 1, "CreatedBy": "RUN a", "Size": 3},))
    found = manifests.Inventory(commands={"OS": sections["OS"]}, packages=inventory._packages(sections),
                                content_tags=(sections["__tag0"],))
    commands = {"OS": InfoCmd("OS", "os", "uname -a"), "GONE": InfoCmd("GONE", "never ran", "true")}
    record = manifests.build_record(facts, image, found, commands,
                                    content_tags=[ContentTag("py-{}", "python -V"), ContentTag("x-{}", "false")])
    assert record["architecture"] == "arm64" and record["layers"][0]["created_by"] == "RUN a"
    assert record["commands"]["OS"]["output"] == "Linux x" and record["commands"]["GONE"]["exit_code"] == -1
    assert [t["exit_code"] for t in record["content_tags"]] == [0, -1]
    assert record["packages"]["apt"] == {"libc": "2.36"}

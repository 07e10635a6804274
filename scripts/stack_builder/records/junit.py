"""JUnit files a test reporter reads: the image tests labelled with image and platform, and the steps of
each image (build and tests per platform, model checks, push and read-back) as test cases of their own."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from stack_builder.records.files import write_text

class CaseResult(str, Enum):
    """How one step of an image ended, as a test reporter counts it."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Case:
    name: str
    outcome: CaseResult
    message: str = ""


def label_cases(path: Path, image: str, platform: str) -> None:
    """Prefix every test case's classname with ``image[platform]``, so a reporter shows which image failed."""
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return
    for case in tree.getroot().iter("testcase"):
        case.set("classname", f"{image}[{platform}].{case.get('classname', '')}".rstrip("."))
    write_text(path, ET.tostring(tree.getroot(), encoding="unicode"))


def write_steps(path: Path, image: str, cases: list[Case]) -> None:
    """The image's steps as one JUnit test suite."""
    suite = ET.Element("testsuite", name=f"{image} steps", tests=str(len(cases)),
                       failures=str(sum(c.outcome is CaseResult.FAILED for c in cases)),
                       skipped=str(sum(c.outcome is CaseResult.SKIPPED for c in cases)))
    for case in cases:
        element = ET.SubElement(suite, "testcase", classname=f"{image}.steps", name=case.name)
        if case.outcome is CaseResult.FAILED:
            ET.SubElement(element, "failure", message=case.message[:500]).text = case.message
        elif case.outcome is CaseResult.SKIPPED:
            ET.SubElement(element, "skipped", message=case.message[:500])
    root = ET.Element("testsuites")
    root.append(suite)
    write_text(path, ET.tostring(root, encoding="unicode"))

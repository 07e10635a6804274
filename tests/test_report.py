"""The run report: the CI jobs' reports merged into one."""
from __future__ import annotations

from typing import Any


def test_the_jobs_reports_of_a_run_merge_into_one() -> None:
    from stack_builder.records.report import merge_reports

    def job(platform: str, status: str, moved: dict[str, str], passed: int) -> dict[str, Any]:
        return {"tag": "2024.1-main", "started": f"2024-01-01T00:0{passed}:00Z", "finished": None, "images": {
            "root": {"status": status, "reason": f"{platform} reason", "platforms_built": [platform],
                     "platforms_failed": {}, "moved": moved, "tests": {"passed": passed, "failed": 0, "skipped": 0}},
            "other": {"status": "unchanged", "reason": "no changes", "moved": {}, "tests": {}}}}

    merged = merge_reports([job("linux/amd64", "built", {"t-linux-amd64": "sha256:a"}, 2),
                            job("linux/arm64", "built", {"t-linux-arm64": "sha256:b"}, 3)])
    root = merged["images"]["root"]
    assert merged["jobs"] == 2 and merged["started"] == "2024-01-01T00:02:00Z"
    assert root["status"] == "built" and root["platforms_built"] == ["linux/amd64", "linux/arm64"]
    assert root["moved"] == {"t-linux-amd64": "sha256:a", "t-linux-arm64": "sha256:b"}
    assert root["tests"]["passed"] == 5
    assert merged["images"]["other"]["status"] == "unchanged"
    failed = merge_reports([job("linux/amd64", "built", {}, 1), job("linux/arm64", "failed", {}, 1)])
    assert failed["images"]["root"]["status"] == "failed"
    assert failed["images"]["root"]["reason"] == "linux/arm64 reason"

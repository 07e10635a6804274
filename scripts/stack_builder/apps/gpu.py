"""`test_gpu`: the GPU tests of each gpu: true image on the engine at DOCKER_HOST, recorded per digest."""
from __future__ import annotations

from tabulate import tabulate

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import make_config
from stack_builder.release.gpu_tests import run_gpu_tests
from stack_builder.spec.stack_spec import check_timeouts


def main(tag: str, image: list[str], registry: str, test_timeout: int) -> bool | Failed:
    def work() -> bool:
        timeouts = check_timeouts({"tests": test_timeout})
        records = run_gpu_tests(make_config(registry=registry), tag, image, timeout_s=timeouts.get("tests", 0))
        print(tabulate([[r.image, r.digest[:19], r.passed, r.summary] for r in records],
                       headers=["image", "digest", "passed", "result"]))
        return all(r.passed for r in records)

    return run_task(work)

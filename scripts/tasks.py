"""What each doit task does; ``dodo.py`` only declares the tasks and their parameters.

Every task works on the stack in the current folder (``doit -d <stack>`` chooses it).
"""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from doit.exceptions import TaskFailed

from . import changes, engine, lock, report
from .credentials import RedactingFilter, find_credentials, secret_values
from .errors import StackError
from .references import check_registry
from .registry import DEFAULT_REGISTRY, RegistryClient
from .revision import read_revision
from .runner import BuildOptions, StackBuild, initial_report
from .spec import Spec, load_spec
from .tree import StackTree

LOGGER = logging.getLogger(__name__)

REGISTRY_VAR = "STACK_REGISTRY"


def _param(name: str, long: str, default: Any, help: str, type: Any = str) -> dict[str, Any]:
    return {"name": name, "long": long, "default": default, "type": type, "help": help}


SELECTION_PARAMS = [
    _param("base_ref", "base-ref", "", "compare with this git ref instead of the default base (CI: the push's "
           "previous commit or the PR base; locally: the merge-base with main), plus uncommitted changes"),
    _param("all_images", "all", False, "build every image, whatever changed", bool),
    _param("image", "image", [], "build exactly this image (repeat for several); its parent comes from this "
           "run or the registry", list),
]
REGISTRY_PARAM = _param("registry", "registry", "", f"registry HOST[:PORT] replacing the host of every image_name "
                        f"(default: ${REGISTRY_VAR}, else the local registry {DEFAULT_REGISTRY})")
BUILD_PARAMS = [
    *SELECTION_PARAMS,
    _param("workers", "workers", os.cpu_count() or 1, "images built at the same time (default: number of cores)",
           int),
    REGISTRY_PARAM,
    _param("no_push", "no-push", False, "build and test only; push nothing", bool),
]


def configure_logging() -> None:
    """Log to stderr, with registry secrets redacted from every record."""
    root = logging.getLogger()
    if any(getattr(h, "_stack", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._stack = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter(secret_values()))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if os.environ.get("STACK_DEBUG") == "1" else logging.INFO)
    for noisy in ("urllib3", "docker", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_task(work: Callable[[], bool]) -> bool | TaskFailed:
    """Run a task body: user errors become one clear message and a failed task, never a traceback."""
    configure_logging()
    try:
        return True if work() else TaskFailed("see the messages above")
    except StackError as exc:
        return TaskFailed(f"error: {exc}")


def stack_dir() -> Path:
    return Path.cwd().resolve()


def registry_host(value: str) -> str:
    return check_registry(value or os.environ.get(REGISTRY_VAR) or DEFAULT_REGISTRY)


def _selection(spec: Spec, tree: StackTree, base_ref: str, all_images: bool,
               image: list[str]) -> changes.Selection:
    return changes.select(spec, tree, base_ref=base_ref or None, build_all=all_images, images=tuple(image))


def tree(base_ref: str, all_images: bool, image: list[str]) -> bool | TaskFailed:
    def work() -> bool:
        spec = load_spec(stack_dir())
        stack = StackTree(spec)
        selection = _selection(spec, stack, base_ref, all_images, image)
        marks = {n: f"[build: {r}]" for n, r in selection.reasons.items()}
        for name in spec.images:
            marks.setdefault(name, "[unchanged]")
        print(stack.render(marks))
        base = f" {selection.base[:12]}" if selection.base else ""
        print(f"\n{len(selection.reasons)} of {len(spec.images)} images would be built "
              f"(base: {selection.base_source}{base})")
        return True

    return run_task(work)


def build(base_ref: str, all_images: bool, image: list[str], workers: int, registry: str,
          no_push: bool) -> bool | TaskFailed:
    def work() -> bool:
        started = time.monotonic()
        folder = stack_dir()
        spec = load_spec(folder)  # validation comes before anything else
        stack = StackTree(spec)
        host = registry_host(registry)
        if workers < 1:
            raise StackError(f"--workers must be at least 1, not {workers}")
        artifacts = folder / "artifacts"
        with lock.stack_lock(artifacts / ".build.lock"):
            revision = read_revision(folder)
            selection = _selection(spec, stack, base_ref, all_images, image)
            reasons = dict(selection.reasons)
            report.write_lines(artifacts / "IMAGES_CHANGED", list(reasons))
            build_report = initial_report(spec, reasons=reasons, revision=revision, registry=host,
                                          push=not no_push, base=selection.base, base_source=selection.base_source)
            if not reasons:
                build_report.finished = build_report.started
                build_report.save(artifacts)
                print(build_report.table())
                LOGGER.info("nothing to build: no image changed since %s (%.1fs)",
                            selection.base_source, time.monotonic() - started)
                return True
            LOGGER.info("building %d of %d images on tag %s -> %s%s", len(reasons), len(spec.images),
                        build_report.tag, host, "" if not no_push else " (no push)")
            client = engine.connect(pool_size=workers + 4)
            credentials = find_credentials(host)
            runner = StackBuild(spec, stack, reasons=reasons, revision=revision,
                                options=BuildOptions(registry=host, push=not no_push, workers=workers,
                                                     explicit=bool(image)),
                                artifacts=artifacts, client=client, registry=RegistryClient(host, credentials),
                                credentials=credentials, report=build_report)
            runner.resolve_outside_parents()
            result = runner.run()
            print(result.table())
            failed = result.failed()
            LOGGER.info("build finished in %.1fs: %d built, %d failed or skipped; report: %s",
                        time.monotonic() - started, sum(1 for r in result.images.values() if r.status == "built"),
                        len(failed), artifacts / "build-report.json")
            return not failed

    return run_task(work)

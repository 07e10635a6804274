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

from . import changes, engine, lock, manifests, report
from .build import StepFailed
from .credentials import RedactingFilter, find_credentials, secret_values
from .errors import StackError
from .references import check_registry, check_tag
from .registry import DEFAULT_REGISTRY, RegistryClient
from .revision import Revision, read_revision
from .runner import BuildOptions, StackBuild, initial_report
from .spec import Spec, load_spec
from .tree import StackTree
from .wiki import Wiki, broken_links

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
            pages = None if no_push else Wiki(folder / "wiki")  # the wiki describes published images only
            runner = StackBuild(spec, stack, reasons=reasons, revision=revision,
                                options=BuildOptions(registry=host, push=not no_push, workers=workers,
                                                     explicit=bool(image)),
                                artifacts=artifacts, client=client, registry=RegistryClient(host, credentials),
                                credentials=credentials, report=build_report, wiki=pages)
            runner.resolve_outside_parents()
            result = runner.run()
            if pages is not None:
                _record_build(pages, spec, revision, result)
            print(result.table())
            failed = result.failed()
            LOGGER.info("build finished in %.1fs: %d built, %d failed or skipped; report: %s",
                        time.monotonic() - started, sum(1 for r in result.images.values() if r.status == "built"),
                        len(failed), artifacts / "build-report.json")
            return not failed

    return run_task(work)


def _record_build(pages: Wiki, spec: Spec, revision: Revision, result: report.BuildReport) -> None:
    built = [{"name": n, "tag": result.tag, "page": r.manifest} for n, r in result.images.items()
             if r.status == report.BUILT]
    if built:
        pages.record_build({"commit": revision.commit, "commit_url": revision.commit_url(),
                            "branch": revision.branch, "tag": result.tag, "time": result.started,
                            "kind": "build", "images": built})
    pages.render(spec)


MANIFEST_PARAMS = [
    _param("image", "image", "", "the image (a name under images in the spec)"),
    _param("tag", "tag", "", "the tag of that image in the registry"),
    REGISTRY_PARAM,
]


def manifest(image: str, tag: str, registry: str) -> bool | TaskFailed:
    """Collect the manifest of an image already in the registry, and write its record and wiki page."""
    def work() -> bool:
        folder = stack_dir()
        spec = load_spec(folder)
        if not image or not tag:
            raise StackError("give both --image NAME and --tag TAG")
        spec.require([image])
        check_tag(tag)
        host = registry_host(registry)
        repo = spec.images[image].repository.on(host)
        digest = RegistryClient(host, find_credentials(host)).manifest_digest(repo.path, tag)
        if digest is None:
            raise StackError(f"{repo}:{tag} is not in registry {host}: check the tag (doit build pushes "
                             f"<prefix>-<branch>, e.g. {spec.tag_prefix}-main)")
        client = engine.connect()
        try:
            client.api.pull(str(repo), tag=digest)
        except engine.ENGINE_FAILURES as exc:
            raise StackError(f"cannot pull {repo}@{digest}: {exc}") from None
        ref = f"{repo}@{digest}"
        labels = client.images.get(ref).labels or {}
        commit = labels.get("org.opencontainers.image.revision", "unknown")
        source = labels.get("org.opencontainers.image.source")
        facts = manifests.BuildFacts(
            image=image, tag=tag, ref=f"{repo}:{tag}", digest=digest, commit=commit, branch="",
            commit_url=f"{source}/commit/{commit}" if source and commit != "unknown" else None,
            parent=labels.get("org.opencontainers.image.base.name"), platforms=spec.images[image].platforms)
        commands = {key: spec.all_info_cmds[key] for key in spec.images[image].info_cmds}
        try:
            record = manifests.collect(client, ref, facts, commands)
        except StepFailed as exc:
            raise StackError(str(exc)) from None
        manifests.save(record, [folder / "artifacts" / "manifests"])
        pages = Wiki(folder / "wiki")
        page = pages.add_manifest(record)
        pages.render(spec)
        print(f"manifest of {repo}:{tag} ({digest}): wiki/{page}.md, artifacts/manifests/{page}.json")
        return True

    return run_task(work)


def wiki() -> bool | TaskFailed:
    """Re-render Home.md and Stable_Tag.md, fold old pages over the cap, and check every link."""
    def work() -> bool:
        folder = stack_dir()
        spec = load_spec(folder)
        pages = Wiki(folder / "wiki")
        pages.render(spec)
        broken = broken_links(pages.folder)
        if broken:
            raise StackError("the wiki has broken links:\n  " + "\n  ".join(broken))
        print(f"wiki: {len(pages.pages())} pages in {pages.folder}, all links resolve")
        return True

    return run_task(work)

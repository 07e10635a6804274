"""What each doit task does; ``dodo.py`` only declares the tasks and their parameters.

Every task works on the stack in the current folder (``doit -d <stack>`` chooses it).
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

from tabulate import tabulate

from doit.exceptions import TaskFailed

from stack_builder.plan import changes
from stack_builder.engine import client as engine
from stack_builder.records import gates
from stack_builder.checks import imagetests
from stack_builder.pipeline import lock
from stack_builder.records import manifests
from stack_builder.registry import multiarch
from stack_builder.pipeline import promote
from stack_builder.records import report
from stack_builder.engine.build import StepFailed
from stack_builder.registry.credentials import RedactingFilter, find_credentials, secret_values
from stack_builder.errors import RegistryError, StackError
from stack_builder.spec.references import check_registry, check_tag
from stack_builder.registry.client import DEFAULT_REGISTRY, RegistryClient
from stack_builder.plan.revision import Revision, read_revision
from stack_builder.pipeline.runner import BuildOptions, StackBuild, initial_report
from stack_builder.spec.stack_spec import Spec, load_spec
from stack_builder.plan.tree import StackTree
from stack_builder.records.wiki import Wiki, broken_links

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
    _param("platform", "platform", "", "build only this platform (e.g. linux/arm64), as one CI job does: a "
           "multi-platform image is pushed under its per-platform tag and `doit merge` makes the index"),
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
          no_push: bool, platform: str) -> bool | TaskFailed:
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
            if platform:
                reasons = _with_platform(spec, reasons, platform)
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
            registry_client = RegistryClient(host, credentials)
            if not no_push:
                try:
                    registry_client.ping()  # before building anything: a run that cannot publish stops here
                except RegistryError as exc:
                    raise StackError(f"{exc}. Start it (`bash setup.sh env` starts the local one), name another "
                                     "with --registry, or build without pushing: --no-push") from None
            pages = None if no_push else Wiki(folder / "wiki")  # the wiki describes published images only
            runner = StackBuild(spec, stack, reasons=reasons, revision=revision,
                                options=BuildOptions(registry=host, push=not no_push, workers=workers,
                                                     explicit=bool(image), platform=platform or None),
                                artifacts=artifacts, client=client, registry=registry_client,
                                credentials=credentials, report=build_report, wiki=pages)
            runner.resolve_outside_parents()
            result = runner.run()
            result.registry_stats = {**registry_client.stats, "push_retries": runner.push_retries}
            result.save(artifacts)
            if pages is not None:
                _record_build(pages, spec, revision, result)
            print(result.table())
            failed = result.failed()
            LOGGER.info("build finished in %.1fs: %d built, %d failed or skipped; report: %s",
                        time.monotonic() - started, sum(1 for r in result.images.values() if r.status == "built"),
                        len(failed), artifacts / "build-report.json")
            return not failed

    return run_task(work)


def _with_platform(spec: Spec, reasons: dict[str, str], platform: str) -> dict[str, str]:
    """Only the selected images that declare ``platform``; naming an image that does not is an error."""
    if not PLATFORM_RE.match(platform):
        raise StackError(f"--platform '{platform}' is not OS/ARCH[/VARIANT], e.g. linux/arm64")
    declared = {n: r for n, r in reasons.items() if platform in spec.images[n].platforms}
    if not declared and reasons:
        raise StackError(f"--platform {platform}: none of {', '.join(reasons)} declares it in platforms:")
    return declared


RUNNERS = {"linux/amd64": "ubuntu-latest", "linux/arm64": "ubuntu-24.04-arm"}
PLATFORM_RE = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")


def plan(base_ref: str, all_images: bool, image: list[str]) -> bool | TaskFailed:
    """The build as CI fans it out: levels in dependency order of {image, platform, runner}."""
    def work() -> bool:
        folder = stack_dir()
        spec = load_spec(folder)
        stack = StackTree(spec)
        selection = _selection(spec, stack, base_ref, all_images, image)
        levels = []
        for level in stack.levels():
            pairs = [{"image": n, "platform": p, "runner": RUNNERS.get(p, "ubuntu-latest")}
                     for n in level if n in selection.reasons for p in spec.images[n].platforms]
            if pairs:
                levels.append(pairs)
        revision = read_revision(folder)
        result = {"tag": revision.tags(spec.tag_prefix)[0], "commit": revision.commit,
                  "images": list(selection.reasons), "levels": levels}
        report.write_json(folder / "artifacts" / "plan.json", result)
        print(json.dumps(result))
        _github_outputs(result)
        return True

    return run_task(work)


MAX_LEVELS = 5  # level jobs in .github/workflows/main.yml


def _github_outputs(plan_result: dict[str, Any]) -> None:
    """In GitHub Actions, hand the plan to later jobs: level0..level4, images, tag."""
    target = os.environ.get("GITHUB_OUTPUT")
    if not target:
        return
    levels = plan_result["levels"]
    if len(levels) > MAX_LEVELS:
        raise StackError(f"the stack is {len(levels)} levels deep but .github/workflows/main.yml has "
                         f"{MAX_LEVELS} level jobs: add level jobs to the workflow")
    lines = [f"level{i}={json.dumps(levels[i] if i < len(levels) else [])}" for i in range(MAX_LEVELS)]
    lines += [f"images={json.dumps(plan_result['images'])}", f"tag={plan_result['tag']}"]
    with open(target, "a", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


MERGE_PARAMS = [
    _param("image", "image", [], "merge only this image (repeat); default: the images in artifacts/plan.json, "
           "else every multi-platform image", list),
    REGISTRY_PARAM,
]


def merge(image: list[str], registry: str) -> bool | TaskFailed:
    """Assemble each multi-platform image's index from its per-platform tags, registry-side."""
    def work() -> bool:
        folder = stack_dir()
        spec = load_spec(folder)
        spec.require(image)
        revision = read_revision(folder)
        tag, commit_tag = revision.tags(spec.tag_prefix)
        names = list(image) or _planned(folder) or list(spec.images)
        names = [n for n in names if len(spec.images[n].platforms) > 1]
        host = registry_host(registry)
        client = RegistryClient(host, find_credentials(host))
        rows, ok = [], True
        for name in names:
            spec_image = spec.images[name]
            repo = spec_image.repository.on(host)
            entries, missing = [], []
            for platform_name in spec_image.platforms:
                digest = client.manifest_digest(repo.path, multiarch.platform_tag(tag, platform_name))
                if digest is None:
                    missing.append(platform_name)
                else:
                    entries.append(multiarch.Entry(platform_name, digest, "", 0))
            if not entries or (missing and spec_image.require_all_platforms):
                ok = False
                rows.append([name, "not merged", f"missing {', '.join(missing)}", ""])
                continue
            digest = multiarch.publish_index(client, repo.path, [t for t in (tag, commit_tag) if t], entries)
            if spec_image.model is not None:
                _merge_model_records(client, repo.path, name, digest, entries)
            rows.append([name, "merged", ", ".join(e.platform for e in entries), digest[:19]])
        print(tabulate(rows, headers=["image", "index", "platforms", "digest"]) if rows else
              "no multi-platform image to merge")
        return ok

    return run_task(work)


def _planned(folder: Path) -> list[str]:
    try:
        return list(json.loads((folder / "artifacts" / "plan.json").read_text())["images"])
    except (OSError, ValueError, KeyError):
        return []


def _merge_model_records(client: RegistryClient, repository: str, name: str, digest: str,
                         entries: list[multiarch.Entry]) -> None:
    """The index's model record: passed only if every platform's record passed."""
    records = {e.platform: gates.read_record(client, repository, e.digest, gates.MODEL) for e in entries}
    passed = all(r is not None and r.get("passed") for r in records.values())
    missing = [p for p, r in records.items() if r is None]
    gates.write_record(client, repository, digest, gates.MODEL, {
        "image": name, "passed": passed, "platforms": records,
        "drift_status": "per platform", "summary": f"missing records for {', '.join(missing)}" if missing else
        ("all platforms passed" if passed else "a platform failed")})


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
        credentials = find_credentials(host)
        digest = RegistryClient(host, credentials).manifest_digest(repo.path, tag)
        if digest is None:
            raise StackError(f"{repo}:{tag} is not in registry {host}: check the tag (doit build pushes "
                             f"<prefix>-<branch>, e.g. {spec.tag_prefix}-main)")
        client = engine.connect()
        try:
            client.api.pull(str(repo), tag=digest, auth_config=credentials.auth_config() if credentials else None)
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


TAG_PARAMS = [
    _param("tag", "tag", "", "YYYY.Q-branch: promote it to YYYY.Q-stable; with --global-stable, YYYY.Q: move "
           "`stable` to that quarter's YYYY.Q-stable"),
    _param("global_stable", "global-stable", False, "move the global `stable` tag (see --tag)", bool),
    _param("dry_run", "dry-run", False, "print the plan (digests, targets, gate results) and change nothing", bool),
    _param("skip_gpu_test", "skip-gpu-test", False, "promote gpu: true images without a passing GPU test record; "
           "this is written into promotion.json and the wiki", bool),
    REGISTRY_PARAM,
]


def tag(tag: str, global_stable: bool, dry_run: bool, skip_gpu_test: bool, registry: str) -> bool | TaskFailed:
    """Promote registry-side, only through the gates; plan first, then move every tag or none."""
    def work() -> bool:
        folder = stack_dir()
        spec = load_spec(folder)
        promote.parse_tag(tag, global_stable=global_stable)  # a malformed tag stops here, before any request
        host = registry_host(registry)
        client = RegistryClient(host, find_credentials(host))
        artifacts = folder / "artifacts"
        kind = "global stable" if global_stable else "quarter stable"
        try:
            moves = promote.plan(spec, client, host, tag, global_stable=global_stable, skip_gpu_test=skip_gpu_test)
        except promote.PromotionRefused:
            if not dry_run:
                report.write_json(artifacts / "promotion.json", promote.record(
                    [], tag=tag, host=host, global_stable=global_stable, skip_gpu_test=skip_gpu_test,
                    outcome="refused"))
                report.write_lines(artifacts / "IMAGES_TAGGED", [])
            raise
        print(promote.table(moves))
        if dry_run:
            print(f"\ndry run: the {kind} promotion above passes its gates; nothing was changed")
            return True
        outcome = "complete"
        try:
            promote.execute(moves, client)
        except promote.PromotionIncomplete:
            outcome = "incomplete"
            raise
        finally:
            report.write_json(artifacts / "promotion.json", promote.record(
                moves, tag=tag, host=host, global_stable=global_stable, skip_gpu_test=skip_gpu_test,
                outcome=outcome, registry_stats=client.stats))
            report.write_lines(artifacts / "IMAGES_TAGGED", [
                f"{host}/{m.repository}:{m.target_tag}" for m in moves if m.state in (promote.MOVED, promote.ALREADY)])
        _record_promotion(Wiki(folder / "wiki"), spec, moves, tag=tag, global_stable=global_stable,
                          skip_gpu_test=skip_gpu_test)
        print(f"\n{kind}: {sum(m.state == promote.MOVED for m in moves)} tags moved, "
              f"{sum(m.state == promote.ALREADY for m in moves)} already in place")
        return True

    return run_task(work)


def _record_promotion(pages: Wiki, spec: Spec, moves: list[promote.Move], *, tag: str, global_stable: bool,
                      skip_gpu_test: bool) -> None:
    now = report.utc_now()
    if global_stable:
        pages.set_stable({"tag": tag, "time": now, "by": promote.who(), "skip_gpu_test": skip_gpu_test,
                          "images": {m.image: m.source_digest for m in moves}})
    else:
        note = " (GPU test skipped)" if skip_gpu_test else ""
        # A promotion is identified by what it moved: the same digests promoted again replace the row.
        pages.record_build({
            "commit": ",".join(sorted({str(m.source_digest) for m in moves})), "commit_url": None,
            "label": f"{moves[0].source_tag} → {moves[0].target_tag}" if moves else tag,
            "branch": moves[0].source_tag if moves else "", "tag": moves[0].target_tag if moves else tag,
            "time": now, "kind": f"promotion{note}",
            "images": [{"name": m.image, "tag": m.target_tag, "page": pages.page_for_digest(m.source_digest)}
                       for m in moves]})
    pages.render(spec)


GPU_PARAMS = [
    _param("tag", "tag", "", "the tag whose gpu: true images are tested, e.g. 2024.1-main"),
    _param("image", "image", [], "test only this gpu image (repeat for several)", list),
    REGISTRY_PARAM,
]


def test_gpu(tag: str, image: list[str], registry: str) -> bool | TaskFailed:
    """Run the GPU tests of each gpu: true image on the engine at DOCKER_HOST; record the result per digest."""
    def work() -> bool:
        folder = stack_dir()
        spec = load_spec(folder)
        if not tag:
            raise StackError("give --tag, e.g. --tag 2024.1-main")
        check_tag(tag)
        spec.require(image)
        names = [n for n, i in spec.images.items() if i.gpu and (not image or n in image)]
        if not names:
            raise StackError("no image to test: none has gpu: true" + (" among --image" if image else ""))
        host = registry_host(registry)
        client = RegistryClient(host, find_credentials(host))
        engine_client = engine.connect()
        results = []
        for name in names:
            results.append(_gpu_one(spec, name, tag, host, client, engine_client, folder / "artifacts"))
        print(tabulate([[r["image"], r["digest"][:19], r["passed"], r["summary"]] for r in results],
                       headers=["image", "digest", "passed", "result"]))
        return all(r["passed"] for r in results)

    return run_task(work)


def _gpu_one(spec: Spec, name: str, tag: str, host: str, client: RegistryClient, engine_client: Any,
             artifacts: Path) -> dict[str, Any]:
    repo = spec.images[name].repository.on(host)
    tests = spec.images[name].context / "test_gpu"
    if not tests.is_dir():
        raise StackError(f"{name} has gpu: true but no GPU tests: add images/{name}/test_gpu/")
    digest = client.manifest_digest(repo.path, tag)
    if digest is None:
        raise StackError(f"{repo}:{tag} is not in registry {host}")
    try:
        engine_client.api.pull(str(repo), tag=digest,
                               auth_config=client.credentials.auth_config() if client.credentials else None)
    except engine.ENGINE_FAILURES as exc:
        raise StackError(f"the engine cannot pull {repo}@{digest}: {exc}") from None
    LOGGER.info("%s: GPU tests of %s@%s", name, repo, digest[:19])
    try:
        outcome = imagetests.run_tests(spec, name, f"{repo}@{digest}", junit=artifacts / "junit" / f"{name}-gpu.xml",
                                       log=artifacts / "logs" / f"{name}-gpu.log", dirs=[tests],
                                       extra_env={"STACK_GPU": "1"})
    except imagetests.TestsFailed as exc:
        outcome = exc.outcome
    passed = outcome.failed == 0 and outcome.passed > 0
    summary = f"{outcome.passed} passed, {outcome.failed} failed"
    if outcome.messages:
        summary += ": " + outcome.messages[0][:300]
    elif outcome.passed == 0:
        summary += ": no GPU test ran"
    payload = {"image": name, "passed": passed, "summary": summary, "tests": outcome.as_report(),
               "engine": os.environ.get("DOCKER_HOST") or "local", "by": promote.who()}
    stored = gates.write_record(client, repo.path, digest, gates.GPU, payload)
    report.write_json(artifacts / "gates" / f"{name}-gpu.json", stored)
    return stored

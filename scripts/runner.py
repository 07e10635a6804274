"""Run a build: each selected image is built, tested, then pushed, parents before children.

Independent images run at the same time. A failure marks that image failed and skips only
its descendants; every other branch still finishes.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import docker

from . import gates, imagetests, manifests, modelcheck
from .build import BuildRequest, StepFailed, build_image
from .credentials import Credentials
from .engine import ENGINE_FAILURES
from .errors import RegistryError
from .references import Repository
from .registry import RegistryClient
from .report import BUILT, FAILED, PENDING, SKIPPED, UNCHANGED, BuildReport, ImageResult
from .revision import Revision
from .spec import ImageSpec, ModelSpec, Spec
from .tree import StackTree
from .wiki import Wiki

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    registry: str
    push: bool
    workers: int
    explicit: bool = False  # images were named with --image: never add parents on our own


@dataclass(frozen=True)
class Parent:
    """What a child builds FROM: an exact reference, and the tag for Dockerfiles that use BASE_TAG."""

    ref: str  # repo@sha256:... when pushed, else the local image ID
    tag: str
    source: str


class StackBuild:
    def __init__(self, spec: Spec, tree: StackTree, *, reasons: dict[str, str], revision: Revision,
                 options: BuildOptions, artifacts: Path, client: docker.DockerClient,
                 registry: RegistryClient, credentials: Credentials | None, report: BuildReport,
                 wiki: Wiki | None = None) -> None:
        self.spec = spec
        self.tree = tree
        self.reasons = reasons
        self.revision = revision
        self.options = options
        self.artifacts = artifacts
        self.client = client
        self.registry = registry
        self.credentials = credentials
        self.report = report
        self.tag, self.commit_tag = revision.tags(spec.tag_prefix)
        self.parents: dict[str, Parent] = {}
        self.wiki = wiki
        self._wiki_lock = threading.Lock()

    def repository(self, name: str) -> Repository:
        return self.spec.images[name].repository.on(self.options.registry)

    # -- planning ---------------------------------------------------------------------------------

    def resolve_outside_parents(self) -> None:
        """Find, before building anything, the parent of each image whose parent is not rebuilt.

        Without --image, a parent found nowhere is added to the build; with --image it fails the child.
        """
        changed = True
        while changed:
            changed = False
            for name in list(self.reasons):
                parent = self.spec.images[name].parent
                if parent is None or parent in self.reasons or name in self.parents:
                    continue
                found = self._lookup(parent)
                if found is not None:
                    self.parents[name] = found
                    LOGGER.info("%s: parent %s is not rebuilt; using %s (%s)", name, parent, found.ref, found.source)
                elif not self.options.explicit:
                    self.reasons[parent] = f"needed: parent of {name}, not found in registry {self.options.registry}"
                    changed = True
        order = self.tree.breadth_first()
        self.reasons = {n: self.reasons[n] for n in order if n in self.reasons}

    def _lookup(self, parent: str) -> Parent | None:
        repo = self.repository(parent)
        prefix = self.spec.tag_prefix
        candidates = list(dict.fromkeys([self.tag, f"{prefix}-main", f"{prefix}-stable", "stable"]))
        for tag in candidates:
            try:
                digest = self.registry.manifest_digest(repo.path, tag)
            except RegistryError as exc:
                LOGGER.warning("cannot look up %s:%s in the registry (%s); trying the local engine", repo, tag, exc)
                break
            if digest:
                return Parent(f"{repo}@{digest}", tag, f"registry tag {tag}")
        for tag in candidates:
            try:
                image = self.client.images.get(f"{repo}:{tag}")
            except docker.errors.ImageNotFound:
                continue
            return Parent(str(image.id), tag, f"local image {repo}:{tag}")
        return None

    # -- running ----------------------------------------------------------------------------------

    def run(self) -> BuildReport:
        selected = self.reasons
        for name in selected:
            self.report.images[name] = ImageResult(PENDING, selected[name])
        self.report.save(self.artifacts)
        children = {n: [c for c in selected if self.spec.images[c].parent == n] for n in selected}
        with ThreadPoolExecutor(max_workers=max(1, self.options.workers), thread_name_prefix="build") as pool:
            running: dict[Future[bool], str] = {}
            for name in selected:
                parent = self.spec.images[name].parent
                if parent is None or parent not in selected:
                    running[pool.submit(self._one, name)] = name
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    if future.result():
                        for child in children[name]:
                            running[pool.submit(self._one, child)] = child
                    else:
                        self._skip_descendants(name)
        self.report.finished = _now()
        self.report.save(self.artifacts)
        return self.report

    def _skip_descendants(self, failed: str) -> None:
        for name in self.tree.descendants(failed):
            if name in self.reasons and self.report.images[name].status == PENDING:
                self.report.update(name, self.artifacts, status=SKIPPED, reason=f"ancestor {failed} failed")

    def _one(self, name: str) -> bool:
        """Build, test and push one image. Never raises: the outcome goes into the report."""
        started = time.monotonic()
        log_path = self.artifacts / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")
        LOGGER.info("%s: building (%s)", name, self.reasons[name])
        try:
            with log_path.open("a", encoding="utf-8") as log:
                result = self._build_test_push(name, log, log_path)
        except StepFailed as exc:
            self.report.update(name, self.artifacts, status=FAILED, reason=str(exc), log=str(log_path),
                               duration_s=round(time.monotonic() - started, 2), **exc.report)
            LOGGER.error("%s: FAILED: %s (log: %s)", name, exc, log_path)
            return False
        except Exception as exc:  # our bug: record it, keep the other branches going, keep the traceback
            with log_path.open("a", encoding="utf-8") as log:
                log.write(traceback.format_exc())
            self.report.update(name, self.artifacts, status=FAILED, log=str(log_path),
                               reason=f"internal error {type(exc).__name__}: {exc} (traceback in {log_path})",
                               duration_s=round(time.monotonic() - started, 2))
            LOGGER.exception("%s: internal error", name)
            return False
        result.duration_s = round(time.monotonic() - started, 2)
        result.log = str(log_path)
        self.report.update(name, self.artifacts, **vars(result))
        LOGGER.info("%s: %s in %.1fs -> %s", name, "built and pushed" if self.options.push else "built",
                    result.duration_s, result.ref)
        return True

    def _build_test_push(self, name: str, log: IO[str], log_path: Path) -> ImageResult:
        image = self.spec.images[name]
        repo = self.repository(name)
        tags = [t for t in (self.tag, self.commit_tag) if t]
        parent = self._parent_of(image)

        build_args = dict(image.build_args)
        if parent is not None:
            build_args["BASE_IMAGE"] = parent.ref
            build_args["BASE_TAG"] = parent.tag
        log.write(f"== build {repo}:{self.tag}" + (f" FROM {parent.ref}" if parent else "") + "\n")
        labels = self._labels()
        if parent is not None:
            labels["org.opencontainers.image.base.name"] = parent.ref
        image_id = build_image(self.client.api, BuildRequest(
            context=image.context, dockerfile=image.dockerfile, build_args=build_args,
            labels=labels, platform=None), log)
        self._tag_locally(image, image_id, tags)

        log.write(f"== test {image_id}\n")
        log.flush()
        junit = self.artifacts / "junit" / f"{name}.xml"
        outcome = imagetests.run_tests(self.spec, name, image_id, junit=junit, log=log_path)

        result = ImageResult(BUILT, self.reasons[name], ref=f"{repo}:{self.tag}", image_id=image_id,
                             parent=parent.ref if parent else None, tags=tags, tests=outcome.as_report())
        if image.model is not None:
            log.write("== model checks\n")
            try:
                result.model = self._check_model(name, image.model, image_id)
            except StepFailed as exc:
                exc.report.setdefault("tests", result.tests)
                raise
        if not self.options.push:
            self.parents_for_children(name, Parent(image_id, self.tag, "built in this run (not pushed)"))
            self._manifest(image, result, log)
            return result
        log.write(f"== push {repo} {' '.join(tags)}\n")
        digest = self._push(repo, tags[0], log)
        self._verify(repo, tags[0], digest)
        for tag in tags[1:]:
            pushed = self._push(repo, tag, log)
            if pushed != digest:
                raise StepFailed(f"tags of one image pushed with different digests ({digest} vs {pushed})")
            self._verify(repo, tag, pushed)
        result.digest = digest
        if result.model is not None:
            # Gates bind check results to the exact digest that was pushed.
            result.model["digest"] = digest
            self._record_model_gate(name, repo, digest, result.model, log)
        self.parents_for_children(name, Parent(f"{repo}@{digest}", self.tag, "built in this run"))
        self._manifest(image, result, log)
        return result

    def _manifest(self, image: ImageSpec, result: ImageResult, log: IO[str]) -> None:
        """Record what is inside the image. The image is already published: a failure here is a warning."""
        tag = self.commit_tag or self.tag
        facts = manifests.BuildFacts(image=image.name, tag=tag, ref=result.ref or "", digest=result.digest,
                                     commit=self.revision.commit, branch=self.revision.branch,
                                     commit_url=self.revision.commit_url(), parent=result.parent,
                                     platforms=image.platforms)
        commands = {key: self.spec.all_info_cmds[key] for key in image.info_cmds}
        try:
            record = manifests.collect(self.client, result.image_id or "", facts, commands)
        except StepFailed as exc:
            log.write(f"WARNING: {exc}\n")
            LOGGER.warning("%s: %s", image.name, exc)
            return
        manifests.save(record, [self.artifacts / "manifests"])
        if self.wiki is not None:
            with self._wiki_lock:
                result.manifest = self.wiki.add_manifest(record)
        else:
            result.manifest = manifests.record_name(record)

    def _check_model(self, name: str, model_spec: ModelSpec, image_id: str) -> dict[str, Any]:
        """Functional check on the examples, then drift against the current stable; raise if either fails."""
        functional = modelcheck.functional_check(self.client, image_id, model_spec)
        failed = [f"functional.{check}" for check, ok in functional["checks"].items() if not ok]
        if failed:
            drift: dict[str, Any] = {"status": "not run: the functional check failed", "passed": False}
        else:
            drift = modelcheck.drift_check(self.client, image_id, self._stable_baseline(name), model_spec)
            if not drift["passed"]:
                failed.append(f"drift (disagreement {drift.get('observed_rate')} > allowed "
                              f"{drift.get('max_disagreement')} vs {drift.get('baseline_tag')})")
        model = {"image_id": image_id, "functional": functional, "drift": drift}
        if failed:
            raise modelcheck.ModelCheckFailed("model checks failed: " + ", ".join(failed), model)
        return model

    def _record_model_gate(self, name: str, repo: Repository, digest: str, model: dict[str, Any],
                           log: IO[str]) -> None:
        drift = model["drift"]
        payload = {"image": name, "passed": bool(model["functional"]["passed"] and drift["passed"]),
                   "drift_status": drift["status"], "functional": model["functional"]["checks"], "drift": drift,
                   "summary": f"functional {'passed' if model['functional']['passed'] else 'failed'}, "
                              f"drift {drift['status']}"}
        try:
            gates.write_record(self.registry, repo.path, digest, gates.MODEL, payload)
            model["recorded"] = True
        except RegistryError as exc:
            # The image is published; without the record a promotion will refuse it, and say why.
            model["recorded"] = False
            log.write(f"WARNING: model check record not stored: {exc}\n")
            LOGGER.warning("%s: model check record not stored (promotion will refuse it): %s", name, exc)

    def _stable_baseline(self, name: str) -> tuple[str, str, str] | None:
        """The image's current stable as (reference by digest, digest, tag), pulled into the engine."""
        repo = self.repository(name)
        for tag in (f"{self.spec.tag_prefix}-stable", "stable"):
            try:
                digest = self.registry.manifest_digest(repo.path, tag)
            except RegistryError as exc:
                raise StepFailed(f"cannot look up the stable baseline for the drift check: {exc}") from None
            if digest:
                try:
                    self.client.api.pull(str(repo), tag=digest, auth_config=self._auth())
                except ENGINE_FAILURES as exc:
                    raise StepFailed(f"cannot pull the stable baseline {repo}@{digest}: {exc}") from None
                return f"{repo}@{digest}", digest, tag
        return None

    def _parent_of(self, image: ImageSpec) -> Parent | None:
        if image.parent is None:
            return None
        parent = self.parents.get(image.name)
        if parent is None:
            raise StepFailed(f"parent {image.parent} is not built in this run and was not found in registry "
                             f"{self.options.registry} or the local engine: build it too (--image {image.parent})")
        return parent

    def parents_for_children(self, name: str, parent: Parent) -> None:
        for child in self.spec.children(name):
            self.parents[child] = parent

    def _labels(self) -> dict[str, str]:
        labels = {
            "org.opencontainers.image.revision": self.revision.commit,
            "org.opencontainers.image.created": _now(),
            "org.opencontainers.image.version": self.tag,
        }
        if self.revision.source_url:
            labels["org.opencontainers.image.source"] = self.revision.source_url
        return labels

    def _tag_locally(self, image: ImageSpec, image_id: str, tags: list[str]) -> None:
        repo = self.repository(image.name)
        names = {str(repo)}
        # Dockerfiles written for datahub say FROM <image_name>:${BASE_TAG}; give them a local match.
        names.add(str(image.repository))
        try:
            for name in names:
                for tag in tags:
                    self.client.api.tag(image_id, name, tag, force=True)
        except ENGINE_FAILURES as exc:
            raise StepFailed(f"could not tag the image: {exc}") from None

    def _auth(self) -> dict[str, str] | None:
        return self.credentials.auth_config() if self.credentials else None

    def _push(self, repo: Repository, tag: str, log: IO[str]) -> str:
        auth = self._auth()
        digest = None
        try:
            for chunk in self.client.api.push(str(repo), tag=tag, stream=True, decode=True, auth_config=auth):
                if "error" in chunk or "errorDetail" in chunk:
                    message = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
                    log.write(f"ERROR: {message}\n")
                    raise StepFailed(f"push of {repo}:{tag} failed: {message}")
                if chunk.get("status") and not chunk.get("progressDetail"):
                    log.write(f"{chunk.get('id', '')} {chunk['status']}\n".lstrip())
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
        except ENGINE_FAILURES as exc:
            raise StepFailed(f"push of {repo}:{tag} failed: {type(exc).__name__}: {exc}") from None
        if digest is None:
            raise StepFailed(f"push of {repo}:{tag} reported no digest")
        return digest

    def _verify(self, repo: Repository, tag: str, digest: str) -> None:
        try:
            found = self.registry.manifest_digest(repo.path, tag)
        except RegistryError as exc:
            raise StepFailed(f"pushed {repo}:{tag} but could not read it back: {exc}") from None
        if found != digest:
            raise StepFailed(f"registry has {found or 'nothing'} for {repo}:{tag}, but {digest} was pushed")


def initial_report(spec: Spec, *, reasons: dict[str, str], revision: Revision, registry: str, push: bool,
                   base: str | None, base_source: str) -> BuildReport:
    tag, _ = revision.tags(spec.tag_prefix)
    why = f"no changes since {base[:12]}" if base else f"not selected ({base_source})"
    images = {name: ImageResult(PENDING if name in reasons else UNCHANGED, reasons.get(name, why))
              for name in spec.images}
    return BuildReport(commit=revision.commit, branch=revision.branch, tag=tag, registry=registry, pushed=push,
                       base=base, base_source=base_source, images=images, started=_now())


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

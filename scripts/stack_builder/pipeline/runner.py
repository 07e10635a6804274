"""Run a build: each selected image is built and tested per platform, then published, parents first.

Independent images run at the same time. A failure marks that image failed and skips only its
descendants; every other branch still finishes. A multi-platform image is built and tested on
each platform (non-native ones under QEMU), its platforms are pushed under per-platform tags, and
one index of the platforms that passed is assembled registry-side.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker

from stack_builder.engine import baseimages
from stack_builder.records import gates
from stack_builder.checks import imagetests
from stack_builder.records import manifests
from stack_builder.checks import modelcheck
from stack_builder.registry import multiarch
from stack_builder.engine.build import BuildRequest, StepFailed, build_image
from stack_builder.registry.credentials import Credentials
from stack_builder.engine.client import ENGINE_FAILURES
from stack_builder.errors import RegistryError
from stack_builder.spec.references import Repository
from stack_builder.registry.client import RegistryClient
from stack_builder.records.report import BUILT, FAILED, PENDING, SKIPPED, BuildReport, ImageResult, utc_now
from stack_builder.plan.revision import Revision
from stack_builder.spec.stack_spec import ImageSpec, ModelSpec, Spec
from stack_builder.plan.tree import StackTree
from stack_builder.records.wiki import Wiki

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    registry: str
    push: bool
    workers: int
    explicit: bool = False  # images were named with --image: never add parents on our own
    platform: str | None = None  # one platform only (a CI job): push its per-platform tag, no index


@dataclass(frozen=True)
class Parent:
    """What a child builds FROM: an exact reference, and the tag for Dockerfiles that use BASE_TAG."""

    ref: str  # repo@sha256:... when pushed, else the local image ID
    tag: str
    source: str


@dataclass
class PlatformOutcome:
    platform: str
    ok: bool = False
    reason: str = ""
    image_id: str | None = None
    digest: str | None = None
    parent: str | None = None
    tests: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None


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
        self.parents: dict[tuple[str, str], Parent] = {}  # (child, platform) -> parent image
        self.wiki = wiki
        self._wiki_lock = threading.Lock()
        self.native = multiarch.native_platform()
        self._began: dict[str, float] = {}
        self.push_retries = 0

    def repository(self, name: str) -> Repository:
        return self.spec.images[name].repository.on(self.options.registry)

    def platforms(self, name: str) -> list[str]:
        declared = list(self.spec.images[name].platforms)
        if self.options.platform:
            return [p for p in declared if p == self.options.platform]
        return declared

    def multi(self, name: str) -> bool:
        return len(self.spec.images[name].platforms) > 1

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
                if parent is None or parent in self.reasons:
                    continue
                for platform in self.platforms(name):
                    if (name, platform) in self.parents:
                        continue
                    found = self._lookup(parent, platform)
                    if found is not None:
                        self.parents[(name, platform)] = found
                        LOGGER.info("%s (%s): parent %s is not rebuilt; using %s (%s)", name, platform, parent,
                                    found.ref, found.source)
                    elif not self.options.explicit:
                        self.reasons[parent] = (f"needed: parent of {name}, not found in registry "
                                                f"{self.options.registry}")
                        changed = True
                        break
        order = self.tree.breadth_first()
        self.reasons = {n: self.reasons[n] for n in order if n in self.reasons}

    def _lookup(self, parent: str, platform: str) -> Parent | None:
        repo = self.repository(parent)
        prefix = self.spec.tag_prefix
        candidates = list(dict.fromkeys([self.tag, f"{prefix}-main", f"{prefix}-stable", "stable"]))
        try:
            for tag in candidates:
                if self.multi(parent):
                    # A CI level pushes per-platform tags before the index is merged: try those first.
                    digest = self.registry.manifest_digest(repo.path, multiarch.platform_tag(tag, platform))
                    digest = digest or multiarch.platform_digest(self.registry, repo.path, tag, platform)
                else:
                    digest = self.registry.manifest_digest(repo.path, tag)
                if digest:
                    return Parent(f"{repo}@{digest}", tag, f"registry tag {tag}")
        except RegistryError as exc:
            LOGGER.warning("cannot look up %s in the registry (%s); trying the local engine", repo, exc)
        if platform != self.native:
            return None
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
        outcomes: dict[str, dict[str, PlatformOutcome]] = {name: {} for name in selected}
        with ThreadPoolExecutor(max_workers=max(1, self.options.workers), thread_name_prefix="build") as pool:
            # future -> (image, platform) for a platform job, (image, None) for the image's finalise step
            pending: dict[Future[Any], tuple[str, str | None]] = {}

            def finalise_when_ready(name: str) -> None:
                if len(outcomes[name]) == len(self.platforms(name)):
                    pending[pool.submit(self._finalise, name, outcomes[name])] = (name, None)

            def start(name: str) -> None:
                image = self.spec.images[name]
                for platform in self.platforms(name):
                    if image.parent in selected and (name, platform) not in self.parents:
                        outcomes[name][platform] = PlatformOutcome(
                            platform, reason=f"parent {image.parent} has no {platform} image in this run")
                    else:
                        pending[pool.submit(self._platform_job, name, platform)] = (name, platform)
                finalise_when_ready(name)

            for name in selected:
                parent = self.spec.images[name].parent
                if parent is None or parent not in selected:
                    start(name)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    name, platform = pending.pop(future)
                    if platform is not None:
                        outcomes[name][platform] = future.result()
                        finalise_when_ready(name)
                    elif future.result():
                        for child in children[name]:
                            start(child)
                    else:
                        self._skip_descendants(name)
        self.report.finished = utc_now()
        self.report.save(self.artifacts)
        return self.report

    def _skip_descendants(self, failed: str) -> None:
        for name in self.tree.descendants(failed):
            if name in self.reasons and self.report.images[name].status == PENDING:
                self.report.update(name, self.artifacts, status=SKIPPED, reason=f"ancestor {failed} failed")

    def _log_path(self, name: str, platform: str | None = None) -> Path:
        suffix = f"-{platform.replace('/', '-')}" if platform and self.multi(name) else ""
        return self.artifacts / "logs" / f"{name}{suffix}.log"

    def _platform_job(self, name: str, platform: str) -> PlatformOutcome:
        """Build, test and check one platform of an image. Never raises: the outcome says what happened."""
        self._began.setdefault(name, time.monotonic())
        log_path = self._log_path(name, platform)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")
        LOGGER.info("%s%s: building (%s)", name, f" ({platform})" if self.multi(name) else "", self.reasons[name])
        outcome = PlatformOutcome(platform)
        try:
            with log_path.open("a", encoding="utf-8") as log:
                self._build_and_test(name, platform, outcome, log, log_path)
            outcome.ok = True
        except StepFailed as exc:
            outcome.reason = str(exc)
            outcome.tests = exc.report.get("tests", outcome.tests)
            outcome.model = exc.report.get("model", outcome.model)
        except Exception as exc:  # our bug: record it, keep the other branches going, keep the traceback
            with log_path.open("a", encoding="utf-8") as log:
                log.write(traceback.format_exc())
            outcome.reason = f"internal error {type(exc).__name__}: {exc} (traceback in {log_path})"
            LOGGER.exception("%s (%s): internal error", name, platform)
        if not outcome.ok:
            LOGGER.error("%s%s: FAILED: %s (log: %s)", name, f" ({platform})" if self.multi(name) else "",
                         outcome.reason, log_path)
        return outcome

    def _build_and_test(self, name: str, platform: str, outcome: PlatformOutcome, log: IO[str],
                        log_path: Path) -> None:
        image = self.spec.images[name]
        parent = self._parent_of(image, platform)
        build_args = dict(image.build_args)
        labels = self._labels()
        if parent is not None:
            build_args["BASE_IMAGE"] = parent.ref
            if image.parent is not None:
                build_args["BASE_TAG"] = parent.tag
                labels["org.opencontainers.image.base.name"] = parent.ref
            outcome.parent = parent.ref
        log.write(f"== build {self.repository(name)}:{self.tag} for {platform}" +
                  (f" FROM {parent.ref}" if parent else "") + "\n")
        requested = platform if (self.multi(name) or platform != self.native) else None
        outcome.image_id = build_image(self.client.api, BuildRequest(
            context=image.context, dockerfile=image.dockerfile, build_args=build_args, labels=labels,
            platform=requested), log)
        self._tag_locally(image, outcome.image_id, self._local_tags(name, platform))

        log.write(f"== test {outcome.image_id}\n")
        log.flush()
        suffix = f"-{platform.replace('/', '-')}" if self.multi(name) else ""
        junit = self.artifacts / "junit" / f"{name}{suffix}.xml"
        outcome.tests = imagetests.run_tests(self.spec, name, outcome.image_id, junit=junit, log=log_path,
                                             extra_env={"STACK_PLATFORM": platform}).as_report()
        if image.model is not None:
            log.write("== model checks\n")
            try:
                outcome.model = self._check_model(name, image.model, outcome.image_id)
            except StepFailed as exc:
                exc.report.setdefault("tests", outcome.tests)
                raise

    def _parent_of(self, image: ImageSpec, platform: str) -> Parent | None:
        if image.parent is None:
            return self._root_base(image, platform)
        parent = self.parents.get((image.name, platform))
        if parent is None:
            raise StepFailed(f"parent {image.parent} ({platform}) is not built in this run and was not found in "
                             f"registry {self.options.registry} or the local engine: build it too "
                             f"(--image {image.parent})")
        return parent

    def _root_base(self, image: ImageSpec, platform: str) -> Parent | None:
        """For a root whose Dockerfile says ARG BASE_IMAGE=<default>: the default's image for this platform.

        One local name holds one platform, so a set-up keeps other platforms as <default>-<os>-<arch>.
        """
        default = baseimages.base_arg_default(image.dockerfile)
        if default is None or (platform == self.native and not self.multi(image.name)):
            return None
        for name in (default, multiarch.platform_tag(default, platform)):
            try:
                found = self.client.images.get(name)
            except docker.errors.ImageNotFound:
                continue
            if f"{found.attrs.get('Os')}/{found.attrs.get('Architecture')}" == platform:
                return Parent(str(found.id), "", f"local base {name}")
        return None  # left to the engine (it pulls the platform from a registry when it can)

    def _local_tags(self, name: str, platform: str) -> list[str]:
        if self.multi(name):
            return [multiarch.platform_tag(self.tag, platform)]
        return [t for t in (self.tag, self.commit_tag) if t]

    # -- publishing -------------------------------------------------------------------------------

    def _finalise(self, name: str, outcomes: dict[str, PlatformOutcome]) -> bool:
        """Decide the image's status from its platforms, then push, index, record. Never raises."""
        image = self.spec.images[name]
        ordered = [outcomes[p] for p in self.platforms(name)]
        built = [o for o in ordered if o.ok]
        failed = {o.platform: o.reason for o in ordered if not o.ok}
        log_path = self._log_path(name)
        fields: dict[str, Any] = {
            "platforms_built": [o.platform for o in built], "platforms_failed": failed,
            "tests": _sum_tests(ordered), "model": _merge_models(ordered),
            "image_id": built[0].image_id if built else None, "parent": built[0].parent if built else None,
            "log": str(log_path)}
        if not built or (failed and image.require_all_platforms):
            why = "; ".join(f"{p}: {r}" for p, r in failed.items()) if self.multi(name) else next(iter(failed.values()))
            if built:
                why = f"require_all_platforms: {why}"
            self.report.update(name, self.artifacts, status=FAILED, reason=why,
                               duration_s=self._duration(name), **fields)
            return False
        try:
            with log_path.open("a", encoding="utf-8") as log:
                result = self._publish(name, built, log, fields)
        except StepFailed as exc:
            self.report.update(name, self.artifacts, status=FAILED, reason=str(exc),
                               duration_s=self._duration(name), **fields)
            LOGGER.error("%s: FAILED: %s (log: %s)", name, exc, log_path)
            return False
        except Exception as exc:
            with log_path.open("a", encoding="utf-8") as log:
                log.write(traceback.format_exc())
            self.report.update(name, self.artifacts, status=FAILED, duration_s=self._duration(name),
                               reason=f"internal error {type(exc).__name__}: {exc} (traceback in {log_path})", **fields)
            LOGGER.exception("%s: internal error", name)
            return False
        result.duration_s = self._duration(name)
        self.report.update(name, self.artifacts, **vars(result))
        note = f" [{', '.join(result.platforms_built)}]" if self.multi(name) else ""
        LOGGER.info("%s: %s in %.1fs -> %s%s", name, "built and pushed" if self.options.push else "built",
                    result.duration_s, result.ref, note)
        return True

    def _duration(self, name: str) -> float:
        """Seconds from the image's first platform job starting to now."""
        return round(time.monotonic() - self._began.get(name, time.monotonic()), 2)

    def _publish(self, name: str, built: list[PlatformOutcome], log: IO[str], fields: dict[str, Any]) -> ImageResult:
        image = self.spec.images[name]
        repo = self.repository(name)
        tags = [t for t in (self.tag, self.commit_tag) if t]
        result = ImageResult(BUILT, self.reasons[name], ref=f"{repo}:{self.tag}", tags=tags, **fields)
        if not self.options.push:
            for outcome in built:
                self._parent_for_children(name, outcome.platform, Parent(str(outcome.image_id), self.tag,
                                                                         "built in this run (not pushed)"))
            self._manifest(image, result, log)
            return result
        if self.multi(name):
            for outcome in built:
                tag = multiarch.platform_tag(self.tag, outcome.platform)
                outcome.digest = self._push(repo, tag, log)
                self._verify(repo, tag, outcome.digest)
                self._parent_for_children(name, outcome.platform, Parent(f"{repo}@{outcome.digest}", self.tag,
                                                                         "built in this run"))
            if self.options.platform:
                # One platform of a CI fan-out: `doit merge` assembles the index when all are done.
                only = built[0]
                result.ref, result.digest = f"{repo}:{multiarch.platform_tag(self.tag, only.platform)}", only.digest
                result.tags = [multiarch.platform_tag(self.tag, only.platform)]
            else:
                entries = [multiarch.Entry(o.platform, str(o.digest), "", 0) for o in built]
                try:
                    result.digest = multiarch.publish_index(self.registry, repo.path, tags, entries)
                except RegistryError as exc:
                    raise StepFailed(f"index not published: {exc}") from None
        else:
            digest = self._push(repo, tags[0], log)
            self._verify(repo, tags[0], digest)
            for tag in tags[1:]:
                pushed = self._push(repo, tag, log)
                if pushed != digest:
                    raise StepFailed(f"tags of one image pushed with different digests ({digest} vs {pushed})")
                self._verify(repo, tag, pushed)
            result.digest = digest
            self._parent_for_children(name, built[0].platform, Parent(f"{repo}@{digest}", self.tag,
                                                                      "built in this run"))
        if result.model is not None and result.digest:
            # Gates bind check results to the exact digest that was pushed (the index, when there is one).
            result.model["digest"] = result.digest
            self._record_model_gate(name, repo, result.digest, result.model, log)
        self._manifest(image, result, log)
        return result

    def _parent_for_children(self, name: str, platform: str, parent: Parent) -> None:
        for child in self.spec.children(name):
            self.parents[(child, platform)] = parent

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

    def _manifest(self, image: ImageSpec, result: ImageResult, log: IO[str]) -> None:
        """Record what is inside the image. The image is already published: a failure here is a warning."""
        tag = self.commit_tag or self.tag
        facts = manifests.BuildFacts(image=image.name, tag=tag, ref=result.ref or "", digest=result.digest,
                                     commit=self.revision.commit, branch=self.revision.branch,
                                     commit_url=self.revision.commit_url(), parent=result.parent,
                                     platforms=tuple(result.platforms_built))
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

    def _labels(self) -> dict[str, str]:
        labels = {
            "org.opencontainers.image.revision": self.revision.commit,
            "org.opencontainers.image.created": utc_now(),
            "org.opencontainers.image.version": self.tag,
        }
        if self.revision.source_url:
            labels["org.opencontainers.image.source"] = self.revision.source_url
        return labels

    def _tag_locally(self, image: ImageSpec, image_id: str, tags: list[str]) -> None:
        # Dockerfiles written for datahub say FROM <image_name>:${BASE_TAG}; give them a local match.
        names = {str(self.repository(image.name)), str(image.repository)}
        try:
            for name in names:
                for tag in tags:
                    self.client.api.tag(image_id, name, tag, force=True)
        except ENGINE_FAILURES as exc:
            raise StepFailed(f"could not tag the image: {exc}") from None

    def _auth(self) -> dict[str, str] | None:
        return self.credentials.auth_config() if self.credentials else None

    def _push(self, repo: Repository, tag: str, log: IO[str]) -> str:
        """Push through the engine; a transient failure (5xx, reset, timeout) is retried with backoff."""
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            try:
                return self._push_once(repo, tag, log)
            except StepFailed as exc:
                if attempt == PUSH_ATTEMPTS or not _transient(str(exc)):
                    raise
                delay = PUSH_BACKOFF_S * 2 ** (attempt - 1)
                self.push_retries += 1
                log.write(f"transient push failure, retry {attempt} in {delay:.1f}s: {exc}\n")
                LOGGER.warning("push of %s:%s failed (%s); retry %d in %.1fs", repo, tag, exc, attempt, delay)
                time.sleep(delay)
        raise StepFailed(f"push of {repo}:{tag} failed")  # not reached: the last attempt raises

    def _push_once(self, repo: Repository, tag: str, log: IO[str]) -> str:
        digest = None
        log.write(f"== push {repo}:{tag}\n")
        try:
            for chunk in self.client.api.push(str(repo), tag=tag, stream=True, decode=True, auth_config=self._auth()):
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


PUSH_ATTEMPTS = 5
PUSH_BACKOFF_S = 1.0
TRANSIENT_PUSH = ("500 internal server error", "502 bad gateway", "503 service unavailable", "504 gateway",
                  "received unexpected http status: 5", "connection reset", "broken pipe", "eof", "timeout",
                  "connection refused", "i/o timeout", "tls handshake timeout", "unexpected end of json")


def _transient(message: str) -> bool:
    lowered = message.lower()
    return not any(word in lowered for word in ("unauthorized", "denied", "forbidden")) and \
        any(word in lowered for word in TRANSIENT_PUSH)


def _sum_tests(outcomes: list[PlatformOutcome]) -> dict[str, Any]:
    reports = [o.tests for o in outcomes if o.tests]
    if len(reports) == 1:
        return reports[0]
    total: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "junit": None, "failures": []}
    for outcome in outcomes:
        for key in ("passed", "failed", "skipped"):
            total[key] += int(outcome.tests.get(key) or 0)
        total["failures"] += [f"{outcome.platform}: {f}" for f in outcome.tests.get("failures") or []]
    total["junit"] = [o.tests.get("junit") for o in outcomes if o.tests.get("junit")] or None
    return total


def _merge_models(outcomes: list[PlatformOutcome]) -> dict[str, Any] | None:
    models = {o.platform: o.model for o in outcomes if o.model is not None}
    if not models:
        return None
    first = dict(next(iter(models.values())))
    if len(models) > 1:
        first["platforms"] = models
        first["functional"] = {**first["functional"], "passed": all(m["functional"]["passed"] for m in models.values())}
    return first


def initial_report(spec: Spec, *, reasons: dict[str, str], revision: Revision, registry: str, push: bool,
                   base: str | None, base_source: str) -> BuildReport:
    tag, _ = revision.tags(spec.tag_prefix)
    why = f"no changes since {base[:12]}" if base else f"not selected ({base_source})"
    images = {name: ImageResult(PENDING if name in reasons else "unchanged", reasons.get(name, why))
              for name in spec.images}
    return BuildReport(commit=revision.commit, branch=revision.branch, tag=tag, registry=registry, pushed=push,
                       base=base, base_source=base_source, images=images, started=utc_now())



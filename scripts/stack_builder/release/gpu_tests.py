"""`test_gpu`: run each gpu: true image's GPU tests on the engine at DOCKER_HOST; record the result per digest."""
from __future__ import annotations

import logging

from stack_builder.checks import imagetests
from stack_builder.config import Config
from stack_builder.engine import client as engine_client
from stack_builder.engine import images
from stack_builder.engine.client import Engine
from stack_builder.errors import StackError, StepFailed
from stack_builder.release.promote import who
from stack_builder.records import gates
from stack_builder.records.files import write_json
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.signing import Signing
from stack_builder.spec.references import check_tag
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)


def run_gpu_tests(config: Config, tag: str, only: list[str], *, timeout_s: int = 0) -> list[gates.GateRecord]:
    """``timeout_s``: seconds each image's GPU tests may run (0: the spec's `timeouts: {gpu_tests: N}`)."""
    spec = config.spec
    if not tag:
        raise StackError("give --tag, e.g. --tag 2024.1-main")
    check_tag(tag)
    spec.require(only)
    names = [n for n, i in spec.images.items() if i.gpu and (not only or n in only)]
    if not names:
        raise StackError("no image to test: none has gpu: true" + (" among --image" if only else ""))
    registry = config.registry_client()
    # With signing, each result is also this job's signed statement, which a promotion requires of the record.
    signing = Signing.from_settings(config.settings)
    if signing is not None and not signing.can_sign:
        LOGGER.warning("signing is configured with a public key only: the GPU results get no signed statement, "
                       "and a promotion that verifies signatures will refuse them")
    engine = engine_client.connect()
    return [_run_one(config, spec, name, tag, registry, engine, timeout_s, signing) for name in names]


def _run_one(config: Config, spec: Spec, name: str, tag: str, registry: RegistryClient,
             engine: Engine, timeout_s: int = 0, signing: Signing | None = None) -> gates.GateRecord:
    repo = spec.images[name].repository.on(config.registry)
    tests = spec.images[name].context / "test_gpu"
    if not tests.is_dir():
        raise StackError(f"{name} has gpu: true but no GPU tests: add images/{name}/test_gpu/")
    digest = registry.manifest_digest(repo.path, tag)
    if digest is None:
        raise StackError(f"{repo}:{tag} is not in registry {config.registry}")
    images.pull(engine, str(repo), digest, auth=registry.credentials.auth_config() if registry.credentials else None)
    LOGGER.info("%s: GPU tests of %s@%s", name, repo, digest[:19])
    artifacts = config.artifacts
    try:
        outcome = imagetests.run_tests(spec, name, f"{repo}@{digest}", junit=artifacts / "junit" / f"{name}-gpu.xml",
                                       log=artifacts / "logs" / f"{name}-gpu.log", dirs=[tests],
                                       extra_env={"STACK_GPU": "1"},
                                       timeout_s=timeout_s or spec.images[name].timeouts["gpu_tests"])
    except imagetests.TestsFailed as exc:
        outcome = exc.outcome
    except StepFailed as exc:  # timed out: the gate fails, and the record says why
        outcome = imagetests.TestOutcome(failed=1, messages=[str(exc)])
    passed = outcome.failed == 0 and outcome.passed > 0
    summary = f"{outcome.passed} passed, {outcome.failed} failed"
    if outcome.messages:
        summary += ": " + outcome.messages[0][:300]
    elif outcome.passed == 0:
        summary += ": no GPU test ran"
    details = {"tests": vars(outcome.counts()), "engine": config.settings.engine.docker_host or "local",
               "by": who(config.settings.ci.actor)}
    stored = gates.write_record(registry, repo.path, digest, gates.GateRecord(gates.GPU, name, passed, summary,
                                                                              details), signing=signing)
    write_json(artifacts / "gates" / f"{name}-gpu.json", stored.as_json())
    return stored

"""Every setting the environment gives, read in one place into frozen values.

``Settings.from_env()`` is the package's one reader of the process environment: a task reads it once,
in ``config.make_config``, and passes the parts on (``config.settings.registry``, ``.signing``,
``.engine``, ``.ci``). A part's own ``from_env`` is for callers that have no ``Config``: the image-test
plugin in its own process, tests and benchmarks. Secret values are registered with ``secrets`` as
they are read, so they are redacted from then on. The names and meanings are the README's.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from stack_builder import secrets
from stack_builder.errors import StackError
from stack_builder.defaults import REGISTRY_VAR  # (shown by the CLI's help before settings load)

LOGGER = logging.getLogger(__name__)

# The registry: which one, its credentials, and how to speak to it (registry/client.py).
CA_VAR, TLS_VAR, INSECURE_VAR = "STACK_REGISTRY_CA", "STACK_REGISTRY_TLS", "STACK_REGISTRY_INSECURE"
REGISTRY_TIMEOUT_VAR = "STACK_REGISTRY_TIMEOUT"
GITHUB_API_VAR = "STACK_GITHUB_API"  # https://api.github.com, or a GitHub Enterprise Server's API
# Signing with cosign (registry/signing.py).
KEY_VAR, PUBKEY_VAR, MODE_VAR = "STACK_SIGNING_KEY", "STACK_SIGNING_PUBKEY", "STACK_SIGNING"
IDENTITY_VAR, ISSUER_VAR = "STACK_SIGNING_IDENTITY", "STACK_SIGNING_ISSUER"
# Keyless: whose certificates are believed, as plain values (the identity's regular expression is built from them).
REPOSITORY_VAR, WORKFLOW_VAR, REF_VAR = "STACK_SIGNING_REPOSITORY", "STACK_SIGNING_WORKFLOW", "STACK_SIGNING_REF"
DEFAULT_WORKFLOW, DEFAULT_REF = ".github/workflows/stack-build.yml", "refs/heads/main"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
# The engine and its containers (engine/).
DOCKER_HOST_VAR = "DOCKER_HOST"
CONTAINER_TIMEOUT_VAR = "STACK_CONTAINER_TIMEOUT_S"
TRUST_HOST_CA_VAR = "STACK_TRUST_HOST_CA"
# Set for an image's test process by the run (inherited by its children): labels of the containers it starts.
RUN_VAR, IMAGE_NAME_VAR, PLATFORM_VAR = "STACK_RUN_ID", "STACK_IMAGE_NAME", "STACK_PLATFORM"
# Set by `build --engines` for each of its jobs: the engine's name (for the report) and the job's own folders.
ENGINE_NAME_VAR, ARTIFACTS_VAR, WIKI_VAR = "STACK_ENGINE_NAME", "STACK_ARTIFACTS_DIR", "STACK_WIKI_DIR"
IMAGE_VAR, GPU_VAR = "STACK_IMAGE", "STACK_GPU"  # the image under test; STACK_GPU=1: its containers get every GPU
# precalc and serve: the prediction store's URL, when not on the command line (a CI secret: its password stays
# off every command line)
PRECALC_STORE_VAR = "STACK_PRECALC_STORE"
CACHE_VAR = "STACK_CACHE_DIR"  # what one run remembers for the next; "off" for nothing


@dataclass(frozen=True, kw_only=True)
class RegistrySettings:
    host: str = ""  # STACK_REGISTRY, unchecked (Config checks it)
    user: str = ""  # STACK_REGISTRY_USER, or handed over through the pipe
    password: str = field(default="", repr=False)  # STACK_REGISTRY_PASSWORD, or handed over
    docker_config: Path = Path("~/.docker")  # DOCKER_CONFIG, else $HOME/.docker: where `docker login` wrote
    ca: str = ""  # STACK_REGISTRY_CA: the CA certificate to trust
    tls: str = ""  # STACK_REGISTRY_TLS: "1" forces HTTPS, "0" plain HTTP
    insecure: bool = False  # STACK_REGISTRY_INSECURE=1: plain HTTP allowed where TLS is not spoken
    timeout_s: float = 30.0  # STACK_REGISTRY_TIMEOUT
    github_api: str = "https://api.github.com"  # STACK_GITHUB_API, without a trailing /

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "RegistrySettings":
        env = _environment(env)
        user, password = env.get(secrets.USER_VAR, ""), env.get(secrets.PASSWORD_VAR, "")
        if not user and not password and secrets.handed(secrets.USER_VAR) and secrets.handed(secrets.PASSWORD_VAR):
            user, password = secrets.handed(secrets.USER_VAR), secrets.handed(secrets.PASSWORD_VAR)
        secrets.remember(password)
        folder = env.get("DOCKER_CONFIG") or Path(env.get("HOME", "~")).expanduser() / ".docker"
        return cls(host=env.get(REGISTRY_VAR, ""), user=user, password=password, docker_config=Path(folder),
                   ca=env.get(CA_VAR, ""), tls=env.get(TLS_VAR, ""), insecure=env.get(INSECURE_VAR) == "1",
                   timeout_s=_registry_timeout(env.get(REGISTRY_TIMEOUT_VAR, "")),
                   github_api=env.get(GITHUB_API_VAR, "https://api.github.com").rstrip("/"))


@dataclass(frozen=True, kw_only=True)
class SigningSettings:
    """As set, unchecked: ``registry.signing.Signing`` checks them and says what is wrong."""

    mode: str = ""  # STACK_SIGNING: "", "key" or "keyless"
    key: str = ""  # STACK_SIGNING_KEY: a cosign private key file
    public_key: str = ""  # STACK_SIGNING_PUBKEY: the public key only (verifies)
    identity: str = ""  # STACK_SIGNING_IDENTITY: keyless, the certificate identity outright (an anchored regexp)
    # Keyless, the usual way: the identity is built from these, escaped and anchored (registry/signing.py).
    repository: str = ""  # STACK_SIGNING_REPOSITORY: owner/repo on GitHub
    workflow: str = DEFAULT_WORKFLOW  # STACK_SIGNING_WORKFLOW: the workflow file whose jobs sign
    ref: str = DEFAULT_REF  # STACK_SIGNING_REF: the ref whose statements serve every later commit
    issuer: str = GITHUB_ISSUER  # STACK_SIGNING_ISSUER
    password: str = field(default="", repr=False)  # COSIGN_PASSWORD, or handed over

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SigningSettings":
        env = _environment(env)
        password = env.get(secrets.SIGNING_PASSWORD_VAR) or secrets.handed(secrets.SIGNING_PASSWORD_VAR)
        secrets.remember(password)
        return cls(mode=env.get(MODE_VAR, "").strip(), key=env.get(KEY_VAR, "").strip(),
                   public_key=env.get(PUBKEY_VAR, "").strip(), identity=env.get(IDENTITY_VAR, "").strip(),
                   repository=env.get(REPOSITORY_VAR, "").strip(),
                   workflow=env.get(WORKFLOW_VAR, "").strip() or DEFAULT_WORKFLOW,
                   ref=env.get(REF_VAR, "").strip() or DEFAULT_REF,
                   issuer=env.get(ISSUER_VAR) or GITHUB_ISSUER, password=password)


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    docker_host: str = ""  # DOCKER_HOST as set (the docker SDK reads it itself to connect): for messages
    container_timeout_s: float | None = None  # STACK_CONTAINER_TIMEOUT_S: a ceiling on every container's time
    trust_host_ca: bool | None = None  # STACK_TRUST_HOST_CA=1 or 0: overrides the check of the set-up
    run_id: str = ""  # STACK_RUN_ID, as the parent run set it for an image's test process
    image_name: str = ""  # STACK_IMAGE_NAME, the same
    platform: str = ""  # STACK_PLATFORM, the same
    image: str = ""  # STACK_IMAGE: the image under test, in an image's test process
    gpu: bool = False  # STACK_GPU=1: the image's test containers request every GPU
    name: str = ""  # STACK_ENGINE_NAME: the engine's name in an --engines file, for the report

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "EngineSettings":
        env = _environment(env)
        trust = env.get(TRUST_HOST_CA_VAR)
        return cls(docker_host=env.get(DOCKER_HOST_VAR, ""), container_timeout_s=_ceiling(env.get(CONTAINER_TIMEOUT_VAR)),
                   trust_host_ca=(trust == "1") if trust in ("0", "1") else None, run_id=env.get(RUN_VAR, ""),
                   image_name=env.get(IMAGE_NAME_VAR, ""), platform=env.get(PLATFORM_VAR, ""),
                   image=env.get(IMAGE_VAR, ""), gpu=env.get(GPU_VAR) == "1", name=env.get(ENGINE_NAME_VAR, ""))


@dataclass(frozen=True, kw_only=True)
class CiSettings:
    """Where the tool runs, and what the CI gives it."""

    debug: bool = False  # STACK_DEBUG=1: debug logging
    ci: bool = False  # CI=true
    github_actions: bool = False  # GITHUB_ACTIONS=true
    github_output: str = ""  # GITHUB_OUTPUT: the file a step's outputs go to
    step_summary: str = ""  # GITHUB_STEP_SUMMARY: the file of the job's summary page
    actor: str = ""  # GITHUB_ACTOR: who started the workflow
    wiki_max_pages: int | None = None  # STACK_WIKI_MAX_PAGES: a lower cap on the wiki's pages
    precalc_store: str = field(default="", repr=False)  # STACK_PRECALC_STORE: the prediction store's URL (a secret)
    artifacts_dir: str = ""  # STACK_ARTIFACTS_DIR: where a job of `build --engines` keeps its records
    wiki_dir: str = ""  # STACK_WIKI_DIR: the same for the wiki pages it writes
    # STACK_CACHE_DIR (off: none), else $XDG_CACHE_HOME/stack-builder, else ~/.cache/stack-builder: what a run may
    # remember for the next (specs that passed their shape check)
    cache_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "CiSettings":
        env = _environment(env)
        cap = env.get("STACK_WIKI_MAX_PAGES", "")
        return cls(debug=env.get("STACK_DEBUG") == "1", ci=env.get("CI") == "true",
                   github_actions=env.get("GITHUB_ACTIONS") == "true", github_output=env.get("GITHUB_OUTPUT", ""),
                   step_summary=env.get("GITHUB_STEP_SUMMARY", ""), actor=env.get("GITHUB_ACTOR", ""),
                   wiki_max_pages=int(cap) if cap.isdigit() else None,
                   precalc_store=env.get(PRECALC_STORE_VAR, ""), artifacts_dir=env.get(ARTIFACTS_VAR, ""),
                   wiki_dir=env.get(WIKI_VAR, ""), cache_dir=_cache_dir(env))


@dataclass(frozen=True, kw_only=True)
class Settings:
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    signing: SigningSettings = field(default_factory=SigningSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    ci: CiSettings = field(default_factory=CiSettings)
    # The environment as read, for what is named only at run time (a spec's build secrets, CI refs) and for
    # child processes, which get it passed through (less the secrets they must not see).
    environment: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """The settings in ``env`` (default: this process's environment, read now)."""
        env = _environment(env)
        return cls(registry=RegistrySettings.from_env(env), signing=SigningSettings.from_env(env),
                   engine=EngineSettings.from_env(env), ci=CiSettings.from_env(env), environment=env)


def _cache_dir(env: Mapping[str, str]) -> Path | None:
    named = env.get(CACHE_VAR, "")
    if named:
        return None if named == "off" else Path(named)
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "stack-builder"
    return Path(env["HOME"]) / ".cache" / "stack-builder" if env.get("HOME") else None


def environment() -> Mapping[str, str]:
    """A read-only copy of the process environment as it is now."""
    return MappingProxyType(dict(os.environ))


def _environment(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return environment() if env is None else env


def _registry_timeout(value: str) -> float:
    """STACK_REGISTRY_TIMEOUT: seconds above 0 (default 30); anything else is a configuration error."""
    if not value.strip():
        return 30.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds <= 0:
        raise StackError(f"{REGISTRY_TIMEOUT_VAR}={value!r} is not a number of seconds above 0: give the time one "
                         "registry request may take in all (default 30), or unset it")
    return seconds


def _ceiling(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        LOGGER.warning("%s=%r is not a number of seconds; it is ignored", CONTAINER_TIMEOUT_VAR, value)
        return None
    return seconds if seconds > 0 else None

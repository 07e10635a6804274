"""Signatures by digest, with cosign: signed after the tests pass, verified before a tag moves.

Signing is configured by the environment (read by ``settings``, passed in as ``Settings``):
- ``STACK_SIGNING_KEY``: a cosign private key file (its password in ``COSIGN_PASSWORD``); signs and verifies.
- ``STACK_SIGNING_PUBKEY``: the public key only; verifies (a promotion job needs no private key).
- ``STACK_SIGNING=keyless``: Sigstore keyless signing with the CI's OIDC identity (GitHub Actions);
  verification checks the certificate's issuer (``STACK_SIGNING_ISSUER``, GitHub's by default) and its
  identity, which is the signing job's workflow file at its ref: ``https://github.com/OWNER/REPO/
  .github/workflows/main.yml@refs/heads/main``. The tool builds that identity's regular expression
  itself, escaped and anchored, from ``STACK_SIGNING_REPOSITORY`` (OWNER/REPO), ``STACK_SIGNING_WORKFLOW``
  and ``STACK_SIGNING_REF`` (the trusted ref, refs/heads/main by default); ``STACK_SIGNING_IDENTITY``
  overrides it with a regular expression of one's own, which must be anchored (``^...$``).
  A statement signed on the trusted ref serves every later commit; one signed by the same workflow on
  any other ref (a branch job) serves only the commit its certificate names (cosign's
  ``--certificate-github-workflow-sha``), e.g. that commit fast-forwarded onto main.

  A job of a reusable workflow gets a certificate naming the *called* workflow file (GitHub's
  ``job_workflow_ref``), while the calling run's repository, ref and commit are in the certificate's GitHub
  Workflow Repository, Ref and SHA extensions. So ``STACK_SIGNING_WORKFLOW`` is either a file of
  ``STACK_SIGNING_REPOSITORY`` (``.github/workflows/stack-build.yml``, at the ref the job runs on: the
  repository calls its own workflow by ``./`` path), or ``OWNER/REPO/.github/workflows/FILE@REF``, a
  reusable workflow of another repository at the ref the caller pinned (``stack-builder/stack-builder/
  .github/workflows/stack-build.yml@refs/tags/v0.2.0``). Either way the calling repository is bound too
  (``--certificate-github-workflow-repository``; on the trusted ref, ``--certificate-github-workflow-ref``):
  another repository calling the same workflow signs with the same identity, but not for this stack.

cosign reads registry credentials from a Docker config of its own, written for the one call into a
private folder and removed after it; the key's password reaches cosign only through its standard input.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from stack_builder import signals
from stack_builder.errors import StackError, StepFailed
from stack_builder.registry.client import is_loopback, trusted_ca
from stack_builder.registry.credentials import Credentials
from stack_builder.secrets import redact_all, without_secrets
from stack_builder.settings import (GITHUB_ISSUER, IDENTITY_VAR, ISSUER_VAR, KEY_VAR, MODE_VAR, PUBKEY_VAR, REF_VAR,
                                    REPOSITORY_VAR, WORKFLOW_VAR, RegistrySettings, Settings, SigningSettings,
                                    environment)

LOGGER = logging.getLogger(__name__)

__all__ = ["GITHUB_ISSUER", "IDENTITY_VAR", "ISSUER_VAR", "KEY_VAR", "MODE_VAR", "PUBKEY_VAR", "Signing",
           "SigningError", "cosign_binary", "sibling_workflow"]
COSIGN_TIMEOUT_S = 300
GITHUB_URL = "https://github.com/"  # a certificate's identity: GITHUB_URL + OWNER/REPO/WORKFLOW@REF
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_WORKFLOW_FILE = r"\.github/workflows/[A-Za-z0-9_.-]+\.ya?ml"
_REF_FORM = r"refs/(?:heads|tags)/[A-Za-z0-9_./-]+"
# A file of the signing repository, or OWNER/REPO/FILE@REF: a reusable workflow of another repository at one ref.
_WORKFLOW = re.compile(rf"(?:(?P<repository>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)/)?(?P<file>{_WORKFLOW_FILE})"
                       rf"(?:@(?P<ref>{_REF_FORM}))?")
_REF = re.compile(_REF_FORM)


class SigningError(StepFailed):
    """cosign could not sign: the digest is pushed but unsigned, so a promotion will refuse it."""


def cosign_binary() -> str:
    found = shutil.which("cosign") or str(Path(sys.prefix) / "bin" / "cosign")
    if not Path(found).is_file():
        raise StackError("signing is configured but cosign is not installed: run `bash setup.sh env` (it puts "
                         "cosign in .venv/bin), or put cosign on PATH")
    return found


@dataclass(frozen=True)
class Signing:
    key: Path | None = None
    public_key: Path | None = None
    keyless: bool = False
    identity: str = ""  # keyless: the trusted identity (an anchored regular expression)
    any_ref_identity: str = ""  # keyless: the same workflow on any ref, believed for one commit only ("": never)
    issuer: str = GITHUB_ISSUER
    caller_repository: str = ""  # keyless: the calling run's repository and trusted ref, the certificate's extensions
    caller_ref: str = ""
    _derived: dict[str, Path] = field(default_factory=dict, compare=False, repr=False)
    password: str = field(default="", repr=False)  # the key's password (COSIGN_PASSWORD, or handed over)
    registry: RegistrySettings = field(default_factory=RegistrySettings.from_env)  # how cosign reaches the registry
    # cosign's environment, less the secrets: the task's (from_settings), else the process's as it is now
    environment: Mapping[str, str] = field(default_factory=environment, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Signing | None":
        """The signing ``settings`` set up, or None when none is; a clear error for a broken one."""
        wanted = settings.signing
        if wanted.mode not in ("", "key", "keyless"):
            raise StackError(f"{MODE_VAR}='{wanted.mode[:40]}' is not a signing mode: use keyless, or unset it and "
                             f"set {KEY_VAR} to a cosign key file")
        identity, any_ref = keyless_identities(wanted) if wanted.mode == "keyless" else ("", "")
        key, public = ("", "") if wanted.mode == "keyless" else _key_files(wanted)
        if wanted.mode != "keyless" and not key and not public:
            return None
        keyless = wanted.mode == "keyless"
        return cls(key=Path(key) if key else None, public_key=Path(public) if public else None, keyless=keyless,
                   identity=identity, any_ref_identity=any_ref, issuer=wanted.issuer if keyless else GITHUB_ISSUER,
                   password=wanted.password, registry=settings.registry, environment=settings.environment, **_caller(wanted))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Signing | None":
        """The signing set up in ``env`` (default: the environment now); a task uses ``from_settings``."""
        return cls.from_settings(Settings.from_env(env))

    @property
    def can_sign(self) -> bool:
        return self.keyless or self.key is not None

    def describe(self) -> str:
        return f"keyless ({self.identity}{_run_by(self)})" if self.keyless else f"key {self.key or self.public_key}"

    def sign(self, reference: str, credentials: Credentials | None) -> str:
        """Sign ``host/repository@digest``; return cosign's output (redacted). Raises ``SigningError``."""
        if not self.can_sign:
            raise SigningError(f"cannot sign {reference}: only a public key is configured ({PUBKEY_VAR}); set "
                               f"{KEY_VAR} to sign")
        args = ["sign", "--yes"]
        if not self.keyless:
            args += ["--key", str(self.key), "--tlog-upload=false"]
        code, output = self._cosign([*args, *_registry_args(self.registry, reference), reference], credentials, with_password=True)
        if code != 0:
            raise SigningError(f"cosign could not sign {reference} (exit {code}): {_last_line(output)}")
        return output

    @property
    def binds_commits(self) -> bool:
        """Whether a statement can be believed for one commit only (keyless, another ref than the trusted one)."""
        return self.keyless and bool(self.any_ref_identity)

    def verifier(self, credentials: Credentials | None, *, commit: str = "") -> list[str]:
        """cosign's arguments saying whose signatures are believed: the key, or the keyless identity. With
        ``commit`` (keyless): the workflow on any ref, for a certificate naming that commit only."""
        if not self.keyless:
            return ["--key", str(self._public_key(credentials)), "--insecure-ignore-tlog=true"]
        identity, last = (self.any_ref_identity, _extension("sha", commit)) if commit else \
            (self.identity, _extension("ref", self.caller_ref))  # a commit of any ref, or the trusted ref
        return ["--certificate-identity-regexp", identity, "--certificate-oidc-issuer", self.issuer,
                *_extension("repository", self.caller_repository), *last]

    def verify(self, reference: str, credentials: Credentials | None, *, commit: str = "") -> str | None:
        """None when ``host/repository@digest`` carries a valid signature; else why not. ``commit`` (keyless):
        one a job on any ref signed at that commit."""
        args = ["verify", *self.verifier(credentials, commit=commit)]
        code, output = self._cosign([*args, *_registry_args(self.registry, reference), reference], credentials, with_password=False)
        if code == 0:
            return None
        return f"no valid signature ({self.describe()}): {_last_line(output)}"

    def attest(self, reference: str, predicate: Path, predicate_type: str, credentials: Credentials | None) -> str:
        """Attach a signed in-toto statement (``predicate`` of ``predicate_type``) to ``host/repository@digest``."""
        if not self.can_sign:
            raise SigningError(f"cannot attest {reference}: only a public key is configured ({PUBKEY_VAR})")
        args = ["attest", "--yes", "--type", predicate_type, "--predicate", str(predicate)]
        if not self.keyless:
            args += ["--key", str(self.key), "--tlog-upload=false"]
        code, output = self._cosign([*args, *_registry_args(self.registry, reference), reference], credentials, with_password=True)
        if code != 0:
            raise SigningError(f"cosign could not attest {reference} (exit {code}): {_last_line(output)}")
        return output

    def statements(self, reference: str, predicate_type: str, credentials: Credentials | None, *,
                   commit: str = "") -> list[bytes]:
        """The in-toto statements (JSON) of ``predicate_type`` attached to ``host/repository@digest`` whose
        signatures verify with this set-up's key or identity; none when there is none, or none verifies.
        ``commit`` (keyless, ``binds_commits``): those a job on any ref signed at that commit, instead."""
        if commit and not self.binds_commits:
            raise ValueError("statements bound to a commit need a keyless identity for any ref")
        args = ["verify-attestation", *self.verifier(credentials, commit=commit)]
        code, output = self._cosign([*args, "--type", predicate_type, *_registry_args(self.registry, reference), reference],
                                    credentials, with_password=False)
        if code != 0:
            return []
        found = []
        for line in output.splitlines():
            try:
                envelope = json.loads(line)
                found.append(base64.b64decode(envelope["payload"]))
            except (ValueError, KeyError, TypeError):
                continue  # cosign's own messages
        return found

    def _public_key(self, credentials: Credentials | None) -> Path:
        if self.public_key is not None:
            return self.public_key
        if "pub" not in self._derived:
            code, output = self._cosign(["public-key", "--key", str(self.key)], credentials, with_password=True)
            if code != 0:
                raise StackError(f"cosign could not read the public key of {KEY_VAR} (exit {code}): "
                                 f"{_last_line(output)}; check COSIGN_PASSWORD")
            folder = Path(tempfile.mkdtemp(prefix="stack-cosign-pub-"))
            path = folder / "cosign.pub"
            path.write_text(output[output.find("-----BEGIN"):], encoding="utf-8")
            self._derived["pub"] = path
        return self._derived["pub"]

    def _cosign(self, args: list[str], credentials: Credentials | None, *, with_password: bool) -> tuple[int, str]:
        """Run cosign. The key's password goes to its standard input, never into an environment or a command
        line (another process of the same user could read those in /proc while it runs)."""
        env = without_secrets(self.environment)  # COSIGN_PASSWORD and the registry password included
        env["COSIGN_YES"] = "true"
        password = self.password
        feed = with_password and not self.keyless
        with tempfile.TemporaryDirectory(prefix="stack-cosign-") as folder:
            _docker_config(Path(folder), args[-1].split("/", 1)[0], credentials)
            env["DOCKER_CONFIG"] = folder
            proc = subprocess.Popen([cosign_binary(), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.PIPE if feed else subprocess.DEVNULL, env=env,
                                    start_new_session=True)
            with signals.child(proc):
                try:
                    raw, _ = proc.communicate(input=password.encode() if feed else None, timeout=COSIGN_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    signals.end(proc)
                    return 124, f"cosign timed out after {COSIGN_TIMEOUT_S} s"
        output = redact_all(raw.decode("utf-8", "replace"))
        if password:
            output = output.replace(password, "***")
        return proc.returncode, output


def _run_by(signing: Signing) -> str:
    return f", run by {signing.caller_repository}" if signing.caller_repository else ""


def _caller(wanted: SigningSettings) -> dict[str, Any]:
    """Keyless with an identity built from the repository: the calling run's repository and trusted ref, which
    the certificate's GitHub Workflow Repository and Ref extensions name (bound apart from the called workflow)."""
    bound = wanted.mode == "keyless" and not wanted.identity
    return {"caller_repository": wanted.repository if bound else "", "caller_ref": wanted.ref if bound else ""}


def _extension(name: str, value: str) -> list[str]:
    """cosign's check of the certificate's GitHub Workflow ``name`` extension (none when ``value`` is empty)."""
    return [f"--certificate-github-workflow-{name}", value] if value else []


def _key_files(wanted: SigningSettings) -> tuple[str, str]:
    if wanted.mode == "key" and not wanted.key:
        raise StackError(f"{MODE_VAR}=key but {KEY_VAR} is not set: give the cosign private key file to sign with "
                         f"(`cosign generate-key-pair` writes cosign.key), or unset {MODE_VAR}; nothing is built "
                         "unsigned on a set-up that asks for signing")
    for var, value in ((KEY_VAR, wanted.key), (PUBKEY_VAR, wanted.public_key)):
        if value and not Path(value).is_file():
            raise StackError(f"{var}={value[:200]} is not a file: give the path of a cosign key "
                             "(`cosign generate-key-pair` writes cosign.key and cosign.pub)")
    return wanted.key, wanted.public_key


def _docker_config(folder: Path, host: str, credentials: Credentials | None) -> None:
    """A Docker config of cosign's own in ``folder``: the registry's credentials, readable by this user only."""
    auths = {}
    if credentials is not None:
        token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
        auths[host] = {"auth": token}
    config = folder / "config.json"
    config.touch(mode=0o600)
    config.write_text(json.dumps({"auths": auths}), encoding="utf-8")


def keyless_identities(wanted: SigningSettings) -> tuple[str, str]:
    """(trusted, any_ref): the certificate identities keyless signatures are checked against, as anchored
    regular expressions. ``trusted`` is the workflow on the trusted ref; ``any_ref`` the same workflow on
    any ref, believed only for the commit its certificate names ("" for an identity given outright)."""
    if wanted.identity:
        pattern = wanted.identity
        if not pattern.startswith("^") or not pattern.endswith("$") or pattern.endswith("\\$"):
            raise StackError(f"{IDENTITY_VAR}={pattern[:200]} is not anchored: cosign matches it anywhere in the "
                             "certificate's identity, so another repository, workflow or ref could match it. Write "
                             "^...$ with dots escaped, or leave it unset and set "
                             f"{REPOSITORY_VAR}=OWNER/REPO (and {WORKFLOW_VAR}, {REF_VAR}) for the tool to build it")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise StackError(f"{IDENTITY_VAR} is not a regular expression: {exc}") from None
        return f"^(?:{pattern[1:-1]})$", ""  # grouped, so that an alternative cannot escape the anchors
    checks = ((REPOSITORY_VAR, wanted.repository, _REPOSITORY, "OWNER/REPO, e.g. ${{ github.repository }}"),
              (WORKFLOW_VAR, wanted.workflow, _WORKFLOW, "the signing workflow's file, e.g. "
               ".github/workflows/stack-build.yml, or a reusable workflow of another repository at its ref, "
               "OWNER/REPO/.github/workflows/FILE@REF"),
              (REF_VAR, wanted.ref, _REF, "the trusted ref, e.g. refs/heads/main"))
    if not wanted.repository:
        raise StackError(f"{MODE_VAR}=keyless needs {IDENTITY_VAR} or {REPOSITORY_VAR}: set {REPOSITORY_VAR}="
                         "OWNER/REPO (the repository whose workflow signs), and the tool builds the certificate "
                         f"identity to verify from it, {WORKFLOW_VAR} and {REF_VAR}")
    for var, value, form, meaning in checks:
        if not form.fullmatch(value):
            raise StackError(f"{var}={value[:200]} is not {meaning}")
    called = _WORKFLOW.fullmatch(wanted.workflow)
    if called is None or bool(called["repository"]) != bool(called["ref"]):
        raise StackError(f"{WORKFLOW_VAR}={wanted.workflow[:200]} is not {checks[1][3]}: a workflow of another "
                         "repository needs both OWNER/REPO/ and @REF")
    if called["repository"]:
        # Another repository's reusable workflow, at the ref the caller pinned whatever ref the caller runs on:
        # the same identity on every ref (the caller's ref and commit are checked in the extensions).
        pinned = f"^{re.escape(f'{GITHUB_URL}{wanted.workflow}')}$"
        return pinned, pinned
    workflow = re.escape(f"{GITHUB_URL}{wanted.repository}/{wanted.workflow}@")
    return f"^{workflow}{re.escape(wanted.ref)}$", f"^{workflow}refs/[^@]+$"


def sibling_workflow(workflow: str, file: str) -> str:
    """The workflow ``file`` (``.github/workflows/X.yml``) where ``workflow`` (a ``STACK_SIGNING_WORKFLOW``) is:
    in the same repository at the same ref, when ``workflow`` names another repository's at a ref."""
    called = _WORKFLOW.fullmatch(workflow)
    if called is None or not called["repository"] or not called["ref"]:
        return file
    return f"{called['repository']}/{file}@{called['ref']}"


def _registry_args(registry: RegistrySettings, reference: str) -> list[str]:
    """How cosign reaches the registry: as our client does. Plain HTTP where the client allows it (a loopback
    registry, STACK_REGISTRY_INSECURE=1, STACK_REGISTRY_TLS=0): cosign's verify falls back to HTTP only with
    --allow-insecure-registry as well, which also lets it accept an unverified certificate there, as dockerd
    does for an insecure registry. Elsewhere TLS is verified, against the registry's own CA as dockerd trusts it."""
    host = reference.split("/", 1)[0]
    plain = is_loopback(host) or registry.insecure or registry.tls == "0"
    ca = trusted_ca(host, registry.ca)
    return [*(["--allow-http-registry", "--allow-insecure-registry"] if plain else []),
            *(["--registry-cacert", ca] if ca else [])]


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"

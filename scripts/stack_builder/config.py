"""One frozen configuration per task: which stack, which registry, where records go, and the settings the
environment gave (read once, in ``make_config``)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from pathlib import Path

from stack_builder import secrets
from stack_builder.errors import StackError, shown
from stack_builder.defaults import DEFAULT_REGISTRY, REGISTRY_VAR
from stack_builder.settings import Settings

if TYPE_CHECKING:
    from stack_builder.registry.client import RegistryClient
    from stack_builder.spec.stack_spec import Spec

__all__ = ["Config", "DEFAULT_REGISTRY", "MAX_NAME", "REGISTRY_VAR", "make_config"]

MAX_NAME = 255  # host/path, as Docker's reference grammar limits it


@dataclass(frozen=True, kw_only=True)
class Config:
    stack_dir: Path
    spec: Spec  # validated before anything else is read
    registry: str  # HOST[:PORT] that replaces the host of every image_name; "" for tasks that use none
    settings: Settings = field(default_factory=Settings.from_env, compare=False)  # make_config's: read once

    @property
    def artifacts(self) -> Path:
        return Path(self.settings.ci.artifacts_dir) if self.settings.ci.artifacts_dir else self.stack_dir / "artifacts"

    @property
    def wiki_dir(self) -> Path:
        return Path(self.settings.ci.wiki_dir) if self.settings.ci.wiki_dir else self.stack_dir / "wiki"


    def with_registry(self, registry: str) -> "Config":
        """This config with the registry: ``--registry``, else $STACK_REGISTRY, else the local one."""
        from stack_builder.spec.references import check_registry  # light start-up: tasks are listed without it

        host = check_registry(registry or self.settings.registry.host or DEFAULT_REGISTRY)
        for name, image in self.spec.images.items():  # Docker's limit on a whole name, host included
            full = f"{host}/{image.repository.path}"
            if len(full) > MAX_NAME:
                raise StackError(f"images.{name}.image_name: on registry {host} the name is {len(full)} characters "
                                 f"({shown(full)}), more than the {MAX_NAME} a registry accepts: shorten it")
        secrets.keep(host)
        return replace(self, registry=host)

    def registry_client(self) -> RegistryClient:
        """A client of this task's registry, with its credentials and TLS settings."""
        # Imported here: the registry layer sits above this module, and requests loads only when a task needs it.
        from stack_builder.registry.client import RegistryClient
        from stack_builder.registry.credentials import credentials_for

        return RegistryClient(self.registry, credentials_for(self.registry, self.settings.registry),
                              settings=self.settings.registry)


def make_config(*, registry: str = "", uses_registry: bool = True) -> Config:
    """The stack in the current folder (``-d`` chooses it), its spec checked first, then the registry.

    A broken spec or a malformed registry stops here, before any request; a task that never talks
    to a registry (``uses_registry=False``) does not read that setting at all.
    """
    from stack_builder.spec.stack_spec import load_spec  # jsonschema and yaml: only when a task runs

    folder = Path.cwd().resolve()
    settings = Settings.from_env()
    memo = settings.ci.cache_dir / "passed-specs" if settings.ci.cache_dir else None
    config = Config(stack_dir=folder, spec=load_spec(folder, memo=memo), registry="", settings=settings)
    secrets.declare((var for image in config.spec.images.values() for var in image.secrets.values()),
                    settings.environment)
    # Names are checked values, never redacted (secrets.keep): an image called like a short password stays.
    secrets.keep(config.spec.tag_prefix, *config.spec.images,
                 *(image.repository.path for image in config.spec.images.values()))
    return config.with_registry(registry) if uses_registry else config

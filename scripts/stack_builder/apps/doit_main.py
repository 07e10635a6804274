"""doit's command with our tasks: the loader that moves into the stack folder (``-d``) and reads this package's
tasks, and ``--version`` that names this tool too. Loaded only when doit runs the command (``cli``)."""
from __future__ import annotations

import inspect
import os
from typing import Any

import doit
from doit.cmd_base import NamespaceTaskLoader
from doit.doit_cmd import DoitMain
from doit.exceptions import InvalidCommand

from stack_builder.apps import doit_tasks
from stack_builder.apps.params import STACK_DIR_OPTION


class StackTaskLoader(NamespaceTaskLoader):  # type: ignore[misc]  # doit has no type hints
    """doit's loader over our task creators, after moving into the stack folder."""

    cmd_options = (STACK_DIR_OPTION,)

    def setup(self, opt_values: dict[str, Any]) -> None:
        folder = opt_values.get("cwdPath")
        if folder:
            if not os.path.isdir(folder):
                raise InvalidCommand(f"-d {folder}: no such folder (give the stack folder, the one with spec.yml)")
            os.chdir(folder)
        self.namespace = dict(inspect.getmembers(doit_tasks))


class StackBuilderMain(DoitMain):  # type: ignore[misc]  # doit has no type hints
    BIN_NAME = "stack-builder"

    @staticmethod
    def print_version() -> None:
        """``stack-builder --version``: this tool's version, then that of the doit it runs on."""
        from stack_builder.version import doit_version, version

        print(f"stack-builder {version()}")
        print(f"doit {doit_version()} (lib @ {os.path.dirname(os.path.abspath(doit.__file__))})")

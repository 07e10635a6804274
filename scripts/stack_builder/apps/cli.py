"""The ``stack-builder`` command: doit with our tasks, on the stack in the current folder or ``-d DIR``.

It never imports a ``dodo.py``: the tasks come from this package, so it also runs in a stack
that has a ``dodo.py`` (and a ``scripts`` package) of its own. A command that doit would only parse and call
(``direct``) runs without loading doit at all.
"""
from __future__ import annotations

import os
import sys

from stack_builder.apps.params import STACK_DIR_OPTION
from stack_builder.defaults import FD_VAR, SECRET_VARS

__all__ = ["STACK_DIR_OPTION", "keep_secrets_home", "main"]


def keep_secrets_home() -> None:
    """For ``doit -f dodo.py ...`` (a dodo.py calls this first): the same hand-over as ``stack-builder``'s, so
    the top process's environment never holds the secrets either. Anywhere but in doit's own command (a
    dodo.py imported by another program), it does nothing."""
    if not _running_doit() or not _holds_secrets():
        return
    from stack_builder.registry import credentials

    if credentials.must_hand_over(os.environ):
        from doit import loader

        os.chdir(loader.initial_workdir)  # doit has moved into -d's folder; its arguments are relative to this one
        credentials.hand_over(sys.argv[1:], os.environ, module="doit")  # never returns
    credentials.receive(os.environ)


def _running_doit() -> bool:
    """Whether this process is doit's command: ``python -m doit`` or the ``doit`` script."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", "") in ("doit.__main__", "doit") or os.path.basename(sys.argv[0]) == "doit"


def _holds_secrets() -> bool:
    """Whether the environment holds a secret to hand over, or names a hand-over to receive (cheap to ask:
    a command without any, such as ``list``, never loads the credentials module)."""
    return any(os.environ.get(name) for name in (*SECRET_VARS, FD_VAR))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if _holds_secrets():
        from stack_builder.registry import credentials

        if credentials.must_hand_over(os.environ) and argv is None:
            credentials.hand_over(args, os.environ)  # never returns: the same command, without them in its environment
        credentials.receive(os.environ)
    from stack_builder.apps import direct

    code = direct.run(args)
    if code is not None:
        return code
    from stack_builder.apps.doit_main import StackBuilderMain, StackTaskLoader

    return int(StackBuilderMain(StackTaskLoader()).run(args))


if __name__ == "__main__":
    sys.exit(main())

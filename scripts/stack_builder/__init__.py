"""stack-builder: build, test, publish and promote a stack of Docker images."""
from __future__ import annotations


def __getattr__(name: str) -> str:
    """``stack_builder.__version__``, read only when asked for (see ``stack_builder.version``)."""
    if name == "__version__":
        from stack_builder.version import version

        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

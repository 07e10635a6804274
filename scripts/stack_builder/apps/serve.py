"""`serve`: the HTTP lookup API over the prediction store, read-only (serving/)."""
from __future__ import annotations

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import make_config
from stack_builder.errors import StackError


def main(store: str, host: str, port: int, max_keys: int, max_body: int, default_tag: str, tag_ttl: int,
         models_ttl: int, registry: str) -> bool | Failed:
    def work() -> bool:
        # Imported here: starlette and uvicorn load only when the server starts.
        from stack_builder.serving.questions import Limits
        from stack_builder.serving.server import ServeOptions, serve
        from stack_builder.serving.service import ServiceOptions

        for name, value in (("--max-keys", max_keys), ("--max-body", max_body)):
            if value < 1:
                raise StackError(f"{name} {value}: at least 1")
        if tag_ttl < 0 or models_ttl < 0:
            raise StackError("--tag-ttl and --models-ttl are seconds, 0 or more")
        limits = Limits(max_keys=max_keys, max_body=max_body)
        service = ServiceOptions(limits=limits, default_tag=default_tag, tags_ttl_s=tag_ttl,
                                 models_ttl_s=models_ttl)
        serve(make_config(registry=registry), ServeOptions(store=store, host=host, port=port, service=service))
        return True

    return run_task(work)

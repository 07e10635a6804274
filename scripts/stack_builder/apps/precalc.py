"""`precalc`: a model image's predictions over a reference library, stored; or looked up, exported, loaded."""
from __future__ import annotations

import json

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import make_config
from stack_builder.errors import StackError
from stack_builder.precalc import run as precalculation


def main(image: str, library: str, tag: str, key: str, shards: int, shard_size: int, workers: int, sample: int,
         only_shard: int, lookup: list[str], export: str, load: str, store: str, matrix: bool,
         registry: str) -> bool | Failed:
    def work() -> bool:
        if lookup:
            print("\n".join(precalculation.lookup(make_config(uses_registry=False), image, list(lookup), store)))
            return True
        if load:
            added = precalculation.load(make_config(uses_registry=False), image, load, store)
            print(f"loaded {added} new rows into the prediction store")
            return True
        if not library:
            raise StackError("give --library FILE.csv to precalculate (or --lookup KEY, --load DIR)")
        options = precalculation.PrecalcOptions(
            image=image, library=library, tag=tag, key=key, shards=shards, shard_size=shard_size, workers=workers,
            sample=sample, only_shard=only_shard, export=export, store=store)
        if matrix:
            print(json.dumps(precalculation.matrix(make_config(uses_registry=False), options)))
            return True
        summary = precalculation.precalc(make_config(registry=registry), options)
        print("\n".join(summary.lines()))
        return not summary.failed and not summary.interrupted and not summary.refused

    return run_task(work)

"""Batch precalculation: a model image's predictions over a reference library, sharded, validated, stored."""

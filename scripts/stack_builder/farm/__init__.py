"""Builds over several Docker engines: each platform on engines of its own (``build --engines FILE``)."""

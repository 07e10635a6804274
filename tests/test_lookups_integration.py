"""Registry lookups: concurrent (bounded), and never twice for the same reference in one run.

A counting proxy stands in front of the real registry; it sees every request the run makes.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from faultproxy import fault_proxy
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.lookups import Lookups
from stacks import MakeStack, small_stack

pytestmark = pytest.mark.integration


class Watch:
    """A proxy rule: count each (method, path), hold each request a moment, record the most in flight."""

    def __init__(self, hold_s: float = 0.3) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()
        self.hold_s = hold_s
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, method: str, path: str) -> None:
        with self.lock:
            self.seen[(method, path)] += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.hold_s)
        with self.lock:
            self.in_flight -= 1


def test_prefetch_is_concurrent_bounded_and_asks_once(registry: str) -> None:
    watch = Watch()
    with fault_proxy(registry, watch) as (host, _):
        lookups = Lookups(RegistryClient(host, retries=0), concurrency=4)
        repos = [f"lookups/img{i}" for i in range(10)]
        lookups.prefetch(repos)
        lookups.prefetch(repos)
        for repo in repos:
            assert lookups.digest(repo, "2024.1-main") is None  # no such tag: known from the list, not asked
    listed = {path for (method, path), n in watch.seen.items() if path.endswith("/tags/list?n=1000")}
    assert listed == {f"/v2/{repo}/tags/list?n=1000" for repo in repos}
    assert max(watch.seen.values()) == 1, watch.seen
    assert 2 <= watch.peak <= 4


def test_a_plan_asks_each_reference_once(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="once")
    stack.commit("initial")
    built = stack.doit("build")
    assert built.returncode == 0, built.stdout + built.stderr
    stack.repo.git.checkout("-b", "topic")
    stack.write("images/leaf/notes.txt", "changed\n")
    stack.write("images/right/notes.txt", "changed\n")
    stack.commit("leaf and right")
    watch = Watch(hold_s=0.05)
    with fault_proxy(registry, watch) as (host, _):
        result = stack.doit("plan", "--registry", host)
    assert result.returncode == 0, result.stdout + result.stderr
    # root and left are looked up (are they published? where is the leaf's and right's parent?), once each.
    assert max(watch.seen.values()) == 1, watch.seen
    assert ("GET", "/v2/once/root/tags/list?n=1000") in watch.seen
    assert ("HEAD", "/v2/once/root/manifests/2024.1-main") in watch.seen  # right's parent, by digest
    assert ("HEAD", "/v2/once/left/manifests/2024.1-main") in watch.seen  # leaf's parent
    assert not any("2024.1-topic" in path for _, path in watch.seen)  # not in the tag list: never asked

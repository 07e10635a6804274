"""The catalog pre-filter believes a registry's catalog only where a sample of tag lists agrees with it."""
from __future__ import annotations

from typing import Any, cast

import pytest

from stack_builder.errors import RegistryError
from stack_builder.registry import catalog
from stack_builder.registry.client import RegistryClient
from stack_builder.retry import RetryPolicy


class Response:
    def __init__(self, status: int, body: Any = None, following: str | None = None) -> None:
        self.status_code = status
        self.body = body
        self.links = {"next": {"url": following}} if following else {}

    def json(self) -> Any:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


class Registry:
    """Answers catalog requests from a list of responses (a RegistryError is raised), recording the URLs."""

    host = "registry.invalid"
    base = "https://registry.invalid"
    policy = RetryPolicy(retries=0, backoff_s=0)

    def __init__(self, *answers: Response | RegistryError) -> None:
        self.answers = list(answers)
        self.asked: list[str | None] = []

    def _request(self, method: str, repository: str | None, path: str, **kwargs: Any) -> Response:
        self.asked.append(kwargs.get("url") or path)
        answer = self.answers.pop(0)
        if isinstance(answer, RegistryError):
            raise answer
        return answer


def listed(*answers: Response | RegistryError, max_pages: int = 5) -> frozenset[str] | None:
    return catalog.listed_repositories(cast(RegistryClient, Registry(*answers)), max_pages=max_pages)


def test_the_catalog_is_read_page_after_page() -> None:
    registry = Registry(Response(200, {"repositories": ["a/x", "a/y"]}, "/v2/_catalog?last=a%2Fy&n=1000"),
                        Response(200, {"repositories": ["b/z"]}))
    assert catalog.listed_repositories(cast(RegistryClient, registry), max_pages=5) == frozenset({"a/x", "a/y", "b/z"})
    assert registry.asked == ["/_catalog?n=1000", "https://registry.invalid/v2/_catalog?last=a%2Fy&n=1000"]


@pytest.mark.parametrize("answers", [
    (Response(404, {"errors": []}),),  # no catalog (most hosted registries)
    (RegistryError("HTTP 401"),),  # refused
    (Response(200, ValueError("not JSON")),),
    (Response(200, {"repositories": "a/x"}),),
    (Response(200, {"repositories": ["a/x"]}, "https://elsewhere.invalid/v2/_catalog?n=1000"),),
    (Response(200, {"repositories": ["a/x"]}, "/v2/_catalog?last=a&n=1000"),) * 3,  # longer than it is worth
])
def test_no_usable_catalog_is_none(answers: tuple[Response | RegistryError, ...]) -> None:
    assert listed(*answers, max_pages=2) is None


def absent(sampled: dict[str, frozenset[str] | None], catalog_lists: list[str] | None,
           monkeypatch: pytest.MonkeyPatch) -> tuple[set[str], int]:
    asked = []

    def listed_repositories(_registry: RegistryClient, *, max_pages: int) -> frozenset[str] | None:
        asked.append(max_pages)
        return None if catalog_lists is None else frozenset(catalog_lists)

    monkeypatch.setattr(catalog, "listed_repositories", listed_repositories)
    repositories = [f"r/{i:03d}" for i in range(200)]
    return catalog.absent(cast(RegistryClient, Registry()), repositories, sampled), len(asked)


def test_a_catalog_agreeing_with_a_mostly_absent_sample_names_the_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    sampled: dict[str, frozenset[str] | None] = {"r/000": frozenset(), "r/010": frozenset(), "r/020": frozenset({"t"})}
    found, asked = absent(sampled, ["r/020", "r/150"], monkeypatch)
    assert asked == 1 and found == {f"r/{i:03d}" for i in range(200)} - {"r/000", "r/010", "r/020", "r/150"}


@pytest.mark.parametrize("sampled, catalog_lists, asks_catalog", [
    ({"r/000": frozenset({"t"}), "r/010": frozenset({"t"}), "r/020": frozenset()}, [], False),  # most present
    ({"r/000": frozenset(), "r/010": None}, [], False),  # a tag list that failed: nothing is presumed
    ({"r/000": frozenset(), "r/010": frozenset(), "r/020": frozenset({"t"})}, ["r/150"], True),  # disagrees
    ({"r/000": frozenset(), "r/010": frozenset()}, None, True),  # no catalog
])
def test_otherwise_nothing_is_presumed_absent(sampled: dict[str, frozenset[str] | None],
                                              catalog_lists: list[str] | None, asks_catalog: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert absent(sampled, catalog_lists, monkeypatch) == (set(), int(asks_catalog))

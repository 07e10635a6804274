"""Which of many repositories a registry lacks altogether, read from its catalog instead of asked one by one.

A plan asks every image's tag list: on a stack of thousands of images, thousands of requests, each
costing the registry about a millisecond of work. When a sample of them says the registry lacks most
(a new registry, a new stack, many new images), one catalog request per thousand repositories says
which exist at all; a repository absent from it has no tags to list.

The catalog is only believed when it agrees with the sample: every sampled repository that has tags
must be in it. A registry without a catalog (most hosted ones), or one that refuses, errs or would
page on for longer than asking directly, is asked one by one as before. What the catalog can get
wrong is only ever "absent" (an image then rebuilt), never "present".
"""
from __future__ import annotations

import logging
from typing import Mapping

from stack_builder.errors import RegistryError
from stack_builder.registry.client import RegistryClient
from stack_builder.retry import RetryPolicy

LOGGER = logging.getLogger(__name__)

FROM_REPOSITORIES = 100  # fewer are asked one by one: the catalog would not save enough
SAMPLE = 16  # tag lists asked first, to see whether the registry lacks most
PAGE = 1000  # repositories per catalog page: the distribution registry's largest
SAVED_PER_PAGE = 100  # a catalog page must save at least this many tag-list requests on average


def sample_of(repositories: list[str]) -> list[str]:
    """At most ``SAMPLE`` repositories, spread evenly over the sorted list."""
    return repositories[::max(1, len(repositories) // SAMPLE)][:SAMPLE]


def absent(registry: RegistryClient, repositories: list[str],
           sampled: Mapping[str, frozenset[str] | None]) -> set[str]:
    """The unsampled ``repositories`` the registry's catalog lacks, when the sample (repository -> its tags, None
    when they could not be listed) says most are absent and the catalog agrees with it; else none."""
    answers = list(sampled.values())
    if None in answers or 2 * sum(1 for tags in answers if not tags) < len(answers):
        return set()
    listed = listed_repositories(registry, max_pages=1 + len(repositories) // SAVED_PER_PAGE)
    if listed is None or any(tags and repository not in listed for repository, tags in sampled.items()):
        return set()
    found = {repository for repository in repositories if repository not in listed and repository not in sampled}
    LOGGER.info("registry %s: its catalog lacks %d of the %d repositories looked up; their tag lists are not "
                "asked", registry.host, len(found), len(repositories))
    return found


def listed_repositories(registry: RegistryClient, *, max_pages: int) -> frozenset[str] | None:
    """Every repository in the registry's catalog (``GET /v2/_catalog``, page after page); None when there is no
    catalog, it is refused or malformed, or it has more than ``max_pages`` pages."""
    # Impatient: a registry without a catalog is asked one by one, so waiting out retries would only cost.
    policy = RetryPolicy(retries=1, backoff_s=registry.policy.backoff_s, sleep=registry.policy.sleep)
    found: set[str] = set()
    url: str | None = None
    for _page in range(max_pages):
        try:
            # The transport's own request: credentials, auth challenges and plain-HTTP fallback as for any other.
            response = registry._request("GET", None, f"/_catalog?n={PAGE}", url=url, accept_missing=True,
                                         policy=policy)
            listed = response.json().get("repositories") if response.status_code == 200 else None
        except (RegistryError, ValueError, AttributeError):
            return None
        if not isinstance(listed, list):
            return None
        found.update(str(repository) for repository in listed)
        following = response.links.get("next", {}).get("url")
        if not following:
            return frozenset(found)
        if "://" in following and not following.startswith(f"{registry.base}/"):
            return None  # a next page on another host: not followed with our credentials
        url = following if "://" in following else f"{registry.base}{following}"
    return None

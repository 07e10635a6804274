"""The documentation site in a real browser: the getting-started page, served over HTTP as GitHub Pages serves it,
opened in headless Chromium from Debian once its scripts (Material's) ran. It must show its title and the two
commands, and every link of its navigation must lead to a page the site has."""
from __future__ import annotations

import html
import re
import shutil
import subprocess
import threading
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urljoin

import pytest

from test_docs import mkdocs_build

pytestmark = pytest.mark.integration


def browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is missing: `bash setup.sh env` installs it", pytrace=False)
    return found


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The built site on a loopback HTTP server: its base URL."""
    site = tmp_path_factory.mktemp("site")
    result = mkdocs_build(site)
    assert result.returncode == 0, result.stderr[-5000:]
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def rendered(chromium: str, url: str) -> str:
    """The DOM of ``url`` once its scripts ran, as headless Chromium leaves it."""
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
                           "--virtual-time-budget=10000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def status(url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    with opener.open(url, timeout=10) as answer:
        return int(answer.status)


def test_getting_started_in_a_browser(served: str) -> None:
    url = urljoin(served, "getting-started/")
    dom = rendered(browser(), url)
    assert re.search(r"<title>Getting started - Stack builder</title>", dom), dom[:2000]
    assert re.search(r"<h1[^>]*>Getting started", dom)
    words = html.unescape(re.sub(r"<[^>]+>", "", dom))
    assert "bash setup.sh          # set everything up" in words
    assert "bash setup.sh test     # set everything up, run the whole test suite" in words
    assert "stack-builder init" in words and "pip install stack-builder" in words
    assert "md-nav--primary" in dom  # Material's navigation, drawn
    hrefs = set(re.findall(r'<a [^>]*href="([^"#]+)"[^>]*class="md-nav__link', dom)) | \
        set(re.findall(r'<a [^>]*class="md-nav__link[^"]*"[^>]*href="([^"#]+)"', dom))
    targets = {urljoin(url, html.unescape(h)) for h in hrefs if "://" not in h or h.startswith(served)}
    for page in ("reference/spec/", "reference/commands/", "reference/workflows/", "benchmarks/", "concepts/"):
        assert urljoin(served, page) in targets, (page, sorted(targets))
    broken = [t for t in sorted(targets) if status(t) != 200]
    assert broken == []

"""The wiki in a real browser: Home and a manifest page rendered as GitHub does (GFM HTML, Mermaid from npm)
in headless Chromium from Debian. The diagram must be drawn with one node per image, every link between
pages must resolve, and a hostile package name must stay text (no element, no script)."""
from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from stack_builder.records.wiki import Wiki
from stack_builder.spec.stack_spec import parse_spec
from stacks import REPO

pytestmark = pytest.mark.integration

MERMAID = REPO / ".stack-run" / "mermaid" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
EVIL = "evilpkg|<img src=x onerror=alert(1)>[x](nowhere)"
SPEC = """\
images:
  base: {image_name: ghcr.io/o/base}
  lab: {image_name: ghcr.io/o/lab, depend_on: base}
  model: {image_name: ghcr.io/o/model, depend_on: lab}
  other: {image_name: ghcr.io/o/other, depend_on: base}
tag: {prefix: "2024.1"}
"""


def browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None or not MERMAID.is_file():
        pytest.fail("chromium and mermaid are missing: `bash setup.sh env` installs them", pytrace=False)
    return found


def as_github(markdown_text: str) -> str:
    """GFM to HTML as GitHub does it, with its Mermaid blocks drawn by Mermaid."""
    body = cmarkgfm.github_flavored_markdown_to_html(markdown_text, options=Options.CMARK_OPT_GITHUB_PRE_LANG)
    body = re.sub(r'<pre lang="mermaid"><code>(.*?)</code></pre>', r'<pre class="mermaid">\1</pre>', body, flags=re.S)
    return (f"<!doctype html><html><head><meta charset='utf-8'><script src='file://{MERMAID}'></script></head>"
            f"<body>{body}<script>mermaid.initialize({{startOnLoad: true}});</script></body></html>")


def rendered(chromium: str, page: Path) -> str:
    """The DOM of ``page`` once its scripts ran, as headless Chromium leaves it."""
    target = page.with_suffix(".html")
    target.write_text(as_github(page.read_text()))
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           "--virtual-time-budget=15000", "--dump-dom", target.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_home_and_a_manifest_page_in_a_browser(tmp_path: Path) -> None:
    chromium = browser()
    spec = parse_spec(SPEC, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False)
    wiki = Wiki(tmp_path / "wiki")
    record = {"image": "base", "tag": "2024.1-git-aaaaaaaaaaaa", "ref": "r/o/base:2024.1-main",
              "digest": "sha256:" + "1" * 64, "image_id": "sha256:" + "2" * 64, "created": "2024-01-01T00:00:00Z",
              "commit": "c" * 40, "commit_url": "https://example.invalid/o/r/commit/" + "c" * 40, "branch": "main",
              "size": 1, "parent": None, "platforms": ["linux/amd64"], "layers": [], "tags": ["2024.1-main"],
              "packages": {"apt": {EVIL: "1.0", "bash": "5.2"}}, "commands": {}}
    page = wiki.add_manifest(record)
    wiki.record_build({"commit": "c" * 40, "commit_url": record["commit_url"], "branch": "main", "tag": "2024.1-main",
                       "time": "2024-01-01T00:00:00Z", "kind": "build",
                       "images": [{"name": "base", "tag": "2024.1-main", "page": page}]})
    wiki.render(spec)

    home = rendered(chromium, wiki.folder / "Home.md")
    nodes = re.findall(r'<g [^>]*data-node="true" id="flowchart-(n\d+)-\d+" class="node', home)
    assert sorted(set(nodes)) == ["n0", "n1", "n2", "n3"], home[:3000]  # the diagram, one node per image
    for name in ("base", "lab", "model", "other"):
        assert f">{name}<" in home
    manifest = rendered(chromium, wiki.folder / f"{page}.md")
    for dom in (home, manifest):
        for href in re.findall(r'<a href="([^"]+)"', dom):
            target = html.unescape(href)
            if "://" in target:
                continue  # the commit on the forge: not reachable from here
            assert (wiki.folder / f"{target.partition('#')[0]}.md").is_file(), f"{target} does not resolve"
    assert "<img" not in manifest and "onerror" not in re.sub(r"&lt;img src=x onerror", "", manifest)
    assert html.escape(EVIL, quote=False) in manifest  # the name, as text

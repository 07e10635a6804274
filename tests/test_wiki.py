"""The wiki: pages rendered with GitHub's Markdown renderer (cmark-gfm), links that resolve, the page cap."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cmarkgfm
import pytest

from stack_builder.records import manifests
from stack_builder.spec.stack_spec import Spec, parse_spec
from stack_builder.records.wiki import Wiki, broken_links

SPEC = "images:\n  base: {image_name: o/base}\n  child: {image_name: o/child, depend_on: base}\n" \
       "tag: {prefix: '2024.1'}\n"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))
        if values.get("id"):
            self.ids.add(str(values["id"]))


def rendered(path: Path) -> Links:
    # GitHub renders wiki pages with cmark-gfm; UNSAFE keeps the raw <a id> and <details> as GitHub does.
    html = cmarkgfm.github_flavored_markdown_to_html(path.read_text(), options=cmarkgfm.Options.CMARK_OPT_UNSAFE)
    parser = Links()
    parser.feed(html)
    return parser


def assert_links_resolve(folder: Path) -> None:
    for page in folder.glob("*.md"):
        for href in rendered(page).hrefs:
            if "://" in href:
                continue
            target, _, anchor = href.partition("#")
            assert (folder / f"{target}.md").is_file(), f"{page.name} links to missing {href}"
            if anchor:
                assert anchor in rendered(folder / f"{target}.md").ids, f"{page.name} links to missing {href}"
    assert broken_links(folder) == []


def record(image: str, tag: str, created: str, packages: dict[str, str], commit: str = "c" * 40) -> dict[str, Any]:
    return {"image": image, "tag": tag, "ref": f"r/{image}:{tag}", "digest": "sha256:" + "1" * 64,
            "image_id": "sha256:" + "2" * 64, "created": created, "commit": commit,
            "commit_url": f"https://example.invalid/o/r/commit/{commit}", "branch": "main", "size": 1234567,
            "parent": None, "platforms": ["linux/amd64"], "architecture": "amd64",
            "layers": [{"id": "x", "created": 1700000000, "created_by": "RUN echo a | tee b", "size": 10, "tags": []},
                       {"id": "y", "created": 1700000000, "created_by": "", "size": 0, "tags": []}],
            "packages": {"pip": packages},
            "commands": {"PY": {"description": "Python Version", "command": "python --version", "exit_code": 0,
                                "output": "\n".join(f"line {i}" for i in range(40)) + "\n```\nfenced"}}}


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    return parse_spec(SPEC, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False)


def test_home_stable_and_manifest_pages_render_as_intended(tmp_path: Path, spec: Spec) -> None:
    wiki = Wiki(tmp_path / "wiki")
    page = wiki.add_manifest(record("base", "2024.1-git-aaa", "2024-01-01T00:00:00Z", {"numpy": "1.26"}))
    wiki.record_build({"commit": "c" * 40, "commit_url": "https://example.invalid/o/r/commit/" + "c" * 40,
                       "branch": "main", "tag": "2024.1-main", "time": "2024-01-01T00:00:00Z", "kind": "build",
                       "images": [{"name": "base", "tag": "2024.1-main", "page": page}]})
    wiki.render(spec)
    home = rendered(wiki.folder / "Home.md")
    assert "table" in home.tags
    assert "base-2024.1-git-aaa" in home.hrefs and "Stable_Tag" in home.hrefs
    html = cmarkgfm.github_flavored_markdown_to_html((wiki.folder / "Home.md").read_text())
    assert '<pre lang="mermaid">' in html and 'n0 --&gt; n1' in html
    manifest = cmarkgfm.github_flavored_markdown_to_html((wiki.folder / f"{page}.md").read_text(),
                                                         options=cmarkgfm.Options.CMARK_OPT_UNSAFE)
    # The pipe inside a layer command stays in its cell; long output is folded; a fence in output is harmless.
    assert "<td><code>RUN echo a | tee b</code></td>" in manifest
    assert "<details>" in manifest and "fenced" in manifest and manifest.count("<table>") >= 3
    assert "First recorded build" in manifest
    assert "No global" in (wiki.folder / "Stable_Tag.md").read_text()
    assert_links_resolve(wiki.folder)


def test_same_commit_twice_adds_no_duplicate_row(tmp_path: Path, spec: Spec) -> None:
    wiki = Wiki(tmp_path / "wiki")
    entry = {"commit": "d" * 40, "commit_url": None, "branch": "main", "tag": "2024.1-main", "kind": "build",
             "images": [{"name": "base", "tag": "2024.1-main", "page": None}]}
    wiki.record_build({**entry, "time": "2024-01-01T00:00:00Z"})
    wiki.record_build({**entry, "time": "2024-01-02T00:00:00Z"})
    wiki.render(spec)
    rows = [line for line in (wiki.folder / "Home.md").read_text().splitlines() if "`dddddddddddd`" in line]
    assert len(rows) == 1 and "2024-01-02" in rows[0]


def test_changes_since_previous_build(tmp_path: Path) -> None:
    wiki = Wiki(tmp_path / "wiki")
    wiki.add_manifest(record("base", "2024.1-git-aaa", "2024-01-01T00:00:00Z", {"numpy": "1.26", "old": "1"}))
    page = wiki.add_manifest(record("base", "2024.1-git-bbb", "2024-01-02T00:00:00Z", {"numpy": "2.0", "new": "3"}))
    text = (wiki.folder / f"{page}.md").read_text()
    assert "| pip | new | — | 3 |" in text
    assert "| pip | numpy | 1.26 | 2.0 |" in text
    assert "| pip | old | 1 | — |" in text


def test_page_cap_folds_oldest_into_archives_without_dead_links(tmp_path: Path, spec: Spec) -> None:
    wiki = Wiki(tmp_path / "wiki", max_pages=7)
    for day in range(1, 9):
        name = "base" if day % 2 else "child"
        page = wiki.add_manifest(record(name, f"2024.1-git-{day:03d}", f"2024-01-0{day}T00:00:00Z", {"a": str(day)}))
        wiki.record_build({"commit": f"{day:040d}", "commit_url": None, "branch": "main", "tag": "2024.1-main",
                           "time": f"2024-01-0{day}T00:00:00Z", "kind": "build",
                           "images": [{"name": name, "tag": "2024.1-main", "page": page}]})
    wiki.render(spec)
    pages = sorted(p.stem for p in wiki.folder.glob("*.md"))
    assert len(pages) <= 7, pages  # Home, Stable_Tag, Models, two archives, two pages
    assert "Archive-base" in pages and "Archive-child" in pages
    # The newest pages stay; the oldest were folded, and Home links to their archive anchors.
    assert "base-2024.1-git-007" in pages and "base-2024.1-git-001" not in pages
    home = rendered(wiki.folder / "Home.md")
    assert "Archive-base#base-2024-1-git-001" in home.hrefs
    assert_links_resolve(wiki.folder)


def test_broken_links_are_found(tmp_path: Path) -> None:
    (tmp_path / "Home.md").write_text("[ok](Home) [gone](Missing) [bad anchor](Home#nowhere) [web](https://x.invalid)")
    assert broken_links(tmp_path) == ["Home.md: link to missing page Missing",
                                      "Home.md: link to missing anchor Home#nowhere"]


def test_manifest_record_names_and_sizes() -> None:
    assert manifests.record_name({"image": "a", "tag": "2024.1-main"}) == "a-2024.1-main"
    assert re.match(r"1\.2 MB", manifests._size(1234567))


def test_a_manifest_page_folds_layers_cuts_commands_and_escapes_in_its_place() -> None:
    from stack_builder.records.manifests import render

    layers = [{"created": 0, "size": 10, "created_by": "RUN " + "x" * 400 if i == 0 else f"RUN a || b {i}"}
              for i in range(30)]
    record = {"image": "img", "tag": "2024.1-git-0123456789ab", "commit": "c" * 40, "commit_url": None,
              "branch": "main", "ref": "127.0.0.1:5000/ns/img:2024.1-main", "digest": "sha256:" + "d" * 64,
              "image_id": "sha256:" + "e" * 64, "size": 1, "parent": None, "platforms": ["linux/amd64"],
              "created": "2024-01-01T00:00:00Z", "layers": layers, "packages": {},
              "commands": {"X": {"description": "Shell", "command": "a || b", "exit_code": 0, "output": "ok"}}}
    page = render(record, None)
    assert "| | |" not in page and "| field | value |" in page
    assert "<summary>Show 30 layers</summary>" in page  # 30 rows are folded
    assert "RUN " + "x" * 155 + "…" in page and "x" * 200 not in page  # a long command is cut, and says so
    assert "` a || b ` (exit 0)" in page  # outside a table a pipe needs no escape
    assert "` RUN a \\|\\| b 1 `" in page  # inside one it does
    assert f"docker pull 127.0.0.1:5000/ns/img@sha256:{'d' * 64}" in page



def test_the_wiki_check_fails_for_a_page_without_its_build_row(tmp_path: Path, spec: Spec) -> None:
    from stack_builder.errors import StackError
    from stack_builder.records.wiki import rerender

    wiki = Wiki(tmp_path / "wiki")
    first = wiki.add_manifest(record("base", "2024.1-git-aaaaaaaaaaaa", "2024-01-01T00:00:00Z", {"a": "1"}))
    wiki.record_build({"commit": "c" * 40, "commit_url": None, "branch": "main", "tag": "2024.1-git-aaaaaaaaaaaa",
                       "time": "2024-01-01T00:00:00Z", "kind": "build",
                       "images": [{"name": "base", "tag": "2024.1-git-aaaaaaaaaaaa", "page": first}]})
    assert rerender(spec, wiki.folder) >= 3
    # A second image's page of the same run is added to the same row, not a new one.
    other = wiki.add_manifest(record("other", "2024.1-git-aaaaaaaaaaaa", "2024-01-01T00:00:00Z", {}))
    wiki.record_build({"commit": "c" * 40, "commit_url": None, "branch": "main", "tag": "2024.1-git-aaaaaaaaaaaa",
                       "time": "2024-01-01T00:01:00Z", "kind": "build",
                       "images": [{"name": "other", "tag": "2024.1-git-aaaaaaaaaaaa", "page": other}]})
    assert len(wiki.builds()) == 1 and [i["name"] for i in wiki.builds()[0].images] == ["base", "other"]
    orphan = wiki.add_manifest(record("base", "2024.1-git-bbbbbbbbbbbb", "2024-01-02T00:00:00Z", {"a": "2"}))
    with pytest.raises(StackError, match=f"{orphan}.md: no build row on Home links to it"):
        rerender(spec, wiki.folder)


def test_a_manifest_page_links_parent_dockerfile_and_diff_and_shows_tags_tests_and_model() -> None:
    page_record = {**record("iris", "2024.1-git-aaaaaaaaaaaa", "2024-01-01T00:00:00Z", {"numpy": "2.0"}),
                   "parent": "r/base@sha256:" + "3" * 64, "tags": ["2024.1-main", "2024.1-git-aaaaaaaaaaaa"],
                   "dockerfile": "images/iris/Dockerfile", "tests": {"passed": 7, "failed": 0, "skipped": 1},
                   "model": {"functional": {"passed": True, "checks": {"columns": True, "deterministic": True}},
                             "drift": {"status": "passed", "n": 922, "epsilon": 0.05, "delta": 0.01,
                                       "observed_rate": 0.0, "max_disagreement": 0.05}},
                   "commands": {"PIP": {"description": "pip Packages", "command": "pip list", "exit_code": 0,
                                        "output": "numpy 2.0"}}}
    page = manifests.render(page_record, None, parent_page="base-2024.1-git-bbbbbbbbbbbb")
    html = cmarkgfm.github_flavored_markdown_to_html(page)
    assert "<th>field</th>" in html and "<th></th>" not in html  # no empty header row
    assert 'href="base-2024.1-git-bbbbbbbbbbbb"' in html  # the parent's page
    assert f'href="https://example.invalid/o/r/blob/{"c" * 40}/images/iris/Dockerfile"' in html
    assert f'href="https://example.invalid/o/r/commit/{"c" * 40}"' in html  # the commit and its diff
    assert "<code>2024.1-main</code>" in html and "7 passed, 0 failed, 1 skipped" in html
    assert "n = 922, ε = 0.05, δ = 0.01, observed disagreement 0.0" in html
    assert "<td>deterministic</td>\n<td>passed</td>" in html
    assert html.count("numpy") == 1  # one listing per manager: the raw `pip list` output is not repeated


@pytest.mark.parametrize("value", ["evilpkg|<img src=x onerror=alert(1)>[x](nowhere)", "see www.evil.example and "
                                   "https://evil.example/x", "*bold* _em_ ~~gone~~ `code` ![i](j) \\| <b>b</b>"])
def test_text_renders_as_exactly_its_characters(value: str) -> None:
    from stack_builder.records import markdown

    html = cmarkgfm.github_flavored_markdown_to_html(f"| cell |\n| --- |\n| {markdown.text(value)} |\n")
    assert not re.search(r"<(a|img|em|strong|del|code|b)[ >]", html), html
    cell = re.search(r"<td>(.*)</td>", html, re.S)
    assert cell is not None
    import html as html_module
    assert html_module.unescape(cell.group(1)) == value


def test_rows_in_the_old_kind_text_are_read_as_kinds(tmp_path: Path, spec: Spec) -> None:
    import json

    from stack_builder.records.runs import Run, RunKind

    wiki = Wiki(tmp_path / "wiki")
    old = [("build", RunKind.BUILD, False), ("promotion", RunKind.PROMOTION, False),
           ("promotion (GPU test skipped)", RunKind.PROMOTION, True),
           ("promotion rollback", RunKind.ROLLBACK, False),
           ("promotion (GPU test skipped) rollback", RunKind.ROLLBACK, True)]
    rows: list[dict[str, Any]] = [
        {"commit": f"{i:040d}", "commit_url": None, "branch": "", "tag": f"2024.1-stable-{i}", "kind": kind,
         "label": f"move {i}", "time": f"2024-01-0{9 - i}T00:00:00Z", "images": []}
        for i, (kind, _, _) in enumerate(old)]
    (wiki.folder / "_data").mkdir(parents=True)
    (wiki.folder / "_data" / "builds.json").write_text(json.dumps(rows))
    assert [(r.kind, r.gpu_test_skipped) for r in wiki.builds()] == [(k, s) for _, k, s in old]
    wiki.render(spec)
    home = (wiki.folder / "Home.md").read_text()
    assert "| 2024-01-08T00:00:00Z | move 1 | passed |" in home
    assert "| 2024-01-07T00:00:00Z | move 2 | GPU test skipped |" in home
    assert "| 2024-01-05T00:00:00Z | move 4 | GPU test skipped |" in home
    assert "move 0" not in home  # a build: in the builds table, which shows no label
    # Rows are written back in the new form only, and read back the same.
    wiki.record_build(rows[0] | {"time": "2024-01-10T00:00:00Z"})
    stored = json.loads((wiki.folder / "_data" / "builds.json").read_text())
    assert {row["kind"] for row in stored} == {"build", "promotion", "rollback"}
    assert [Run.from_json(row) for row in stored][1:] == wiki.builds()[1:]
    assert Run.from_json({**rows[1], "kind": "something new"}).kind is RunKind.BUILD  # as the wiki showed it

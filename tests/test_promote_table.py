"""The promotion table is set as tabulate sets text ("simple" layout), without loading tabulate."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tabulate import tabulate

from stack_builder.release import promote

# Text as a promotion's cells hold it: names, digests, tags, gate results; never a number, which tabulate would
# align to the right (and never leading or trailing spaces, which it strips).
WORDS = st.text(alphabet=st.sampled_from("abz-_.:/()—0"), min_size=1, max_size=30).filter(
    lambda text: not text.strip("0.-").isdigit() and not text.replace(".", "", 1).lstrip("-").isdigit())
HEADERS = ["image", "source digest", "target tag", "current target", "gates", "state"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(WORDS, min_size=6, max_size=6), max_size=5))
def test_the_table_is_tabulates_simple_layout(rows: list[list[str]]) -> None:
    assert promote.columns(rows, HEADERS) == tabulate(rows, headers=HEADERS, disable_numparse=True)


def test_a_planned_move_in_its_table() -> None:
    move = promote.Move(image="base", repository="org/base", source_tag="2024.1-main", target_tag="2024.1-stable",
                        source_digest="sha256:" + "a" * 64, gates={"gpu": "passed"})
    lines = promote.table([move]).splitlines()
    assert lines[0].split() == ["image", "source", "digest", "target", "tag", "current", "target", "gates", "state"]
    assert lines[2].split() == ["base", "sha256:aaaaaaaaaaaa", "2024.1-stable", "—", "gpu:", "passed", "planned"]

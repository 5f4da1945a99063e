"""One `show stat` parser (metrics.haproxy_stats) for the bridge's server states and the canary's
counters: both read the same rows from the same answer, and refuse the same non-answers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haproxy_bridge.errors import SocketError
from haproxy_bridge.server_states import stat_rows as bridge_rows
from metrics.haproxy_stats import StatsFormatError, parse_show_stat, stat_rows
from scheduler.canary import parse_show_stat as canary_parse

from .test_canary_haproxy import RECORDED

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)


def test_both_callers_use_the_one_parser() -> None:
    assert canary_parse is parse_show_stat
    assert bridge_rows(RECORDED) == stat_rows(RECORDED)
    assert [s.server for s in parse_show_stat(RECORDED)] == [r["svname"] for r in stat_rows(RECORDED)]


@given(st.lists(st.tuples(names, names, st.integers(0, 10**9)), max_size=20))
def test_typed_and_text_rows_agree(rows: list[tuple[str, str, int]]) -> None:
    text = "# pxname,svname,lbtot,type\n" + "".join(f"{b},{s},{n},2\n" for b, s, n in rows)
    typed = parse_show_stat(text)
    assert [(s.backend, s.server, s.lb_total) for s in typed] == \
        [(r["pxname"], r["svname"], int(r["lbtot"])) for r in stat_rows(text)] == rows


@pytest.mark.parametrize("answer", ["", "Unknown command: 'show stat'\n", "# type,status\n2,UP\n"])
def test_a_non_answer_is_one_error_translated_at_the_bridge(answer: str) -> None:
    with pytest.raises(StatsFormatError):
        stat_rows(answer)
    with pytest.raises(SocketError, match="show stat"):
        bridge_rows(answer)

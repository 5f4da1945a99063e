"""Pure parts around processes: exit-to-state mapping, /proc/stat parsing, usage sums."""

from __future__ import annotations

import os
import signal

import pytest

from executor import TASK_FAILED, TASK_FINISHED, TASK_KILLED, process_alive, read_start_time
from executor.procfs import ProcStat, parse_stat
from executor.states import (
    ADOPTED_EXIT_MESSAGE,
    ADOPTED_KILL_MESSAGE,
    exit_from_returncode,
    exit_of_adopted,
    signal_name,
)
from executor.stats import usage_from_stats


@pytest.mark.parametrize(
    ("returncode", "killed", "state", "code", "sig", "message"),
    [
        (0, False, TASK_FINISHED, 0, None, "Command exited with status 0"),
        (3, False, TASK_FAILED, 3, None, "Command exited with status 3"),
        (-9, False, TASK_FAILED, None, 9, "Command terminated with signal SIGKILL"),
        (-15, True, TASK_KILLED, None, 15, "Command terminated with signal SIGTERM"),
        (0, True, TASK_KILLED, 0, None, "Command exited with status 0"),
        (143, True, TASK_KILLED, 143, None, "Command exited with status 143"),
    ],
)
def test_exit_mapping(
    returncode: int, killed: bool, state: str, code: int | None, sig: int | None, message: str
) -> None:
    report = exit_from_returncode("t1", returncode, killed=killed)
    assert (report.task_id, report.state, report.exit_code, report.signal, report.message) == (
        "t1", state, code, sig, message,
    )


def test_unknown_signal_numbers_are_still_named() -> None:
    assert signal_name(signal.SIGSEGV) == "SIGSEGV"
    assert signal_name(250) == "signal 250"


def test_adopted_exits_have_no_status() -> None:
    assert exit_of_adopted("t", killed=False) == exit_of_adopted("t", killed=False)
    failed = exit_of_adopted("t", killed=False)
    assert (failed.state, failed.exit_code, failed.signal, failed.message) == (
        TASK_FAILED, None, None, ADOPTED_EXIT_MESSAGE,
    )
    killed = exit_of_adopted("t", killed=True)
    assert (killed.state, killed.message) == (TASK_KILLED, ADOPTED_KILL_MESSAGE)


STAT_LINE = (
    "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 "
    "7 3 2 1 20 0 1 0 987654 12345678 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0"
)


def test_parse_stat_survives_spaces_and_parentheses_in_the_name() -> None:
    stat = parse_stat(STAT_LINE)
    assert stat == ProcStat(
        pid=4242, state="S", ppid=1, pgid=4242, session=4242,
        utime=7, stime=3, cutime=2, cstime=1, start_time=987654, rss_pages=321,
    )


def test_parse_stat_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_stat("not a stat line")


def test_own_process_identity() -> None:
    start = read_start_time(os.getpid())
    assert start is not None
    assert process_alive(os.getpid(), start)
    assert not process_alive(os.getpid(), start + 1)
    assert read_start_time(0) is None and read_start_time(-5) is None
    assert not process_alive(0, 0)


def stat(pid: int, *, utime: int, stime: int, rss: int, state: str = "S") -> ProcStat:
    return ProcStat(pid, state, 1, 100, 100, utime, stime, 1, 0, 5, rss)


def test_usage_sums_the_live_members_of_the_group() -> None:
    usage = usage_from_stats(
        [
            stat(100, utime=10, stime=5, rss=10),
            stat(101, utime=2, stime=1, rss=3),
            stat(102, utime=50, stime=50, rss=7, state="Z"),
        ],
        ticks_per_second=100,
        page_size=4096,
    )
    assert usage is not None
    assert usage.cpu_user_ns == (10 + 1 + 2 + 1) * 10_000_000  # utime + cutime of each
    assert usage.cpu_system_ns == (5 + 1) * 10_000_000
    assert usage.cpu_ns == usage.cpu_user_ns + usage.cpu_system_ns
    assert usage.rss_bytes == 13 * 4096
    assert usage.processes == 2


def test_usage_of_an_empty_or_dead_group_is_none() -> None:
    assert usage_from_stats([], ticks_per_second=100, page_size=4096) is None
    zombie = stat(7, utime=1, stime=1, rss=0, state="Z")
    assert usage_from_stats([zombie], ticks_per_second=100, page_size=4096) is None

"""The journal: schema and migration, safe opening, events in, history out."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import StoreError
from core.events import Event, RunStatus, TaskChanged, TaskState
from core.journal import JournalRecorder, create_journal
from core.store import Store, new_run_id, open_store, process_alive
from core.store_schema import APP_ID, SCHEMA_VERSION, create_at_version
from tests.core.journal_helpers import (
    NEWER_BY,
    chain_plan,
    diamond_plan,
    finished,
    flat,
    foreign_sqlite,
    newer_tek,
    ran,
    started,
)


def _fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_new_journal_is_wal_versioned_and_marked(tmp_path: Path) -> None:
    with open_store(tmp_path / "j.db") as store:
        assert store.path == tmp_path / "j.db"
    conn = sqlite3.connect(tmp_path / "j.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APP_ID


def test_default_path_is_under_tek_home(tek_home: Path) -> None:
    with open_store() as store:
        assert store.path == tek_home / "tek.db"
    assert (tek_home / "tek.db").is_file()


def test_migration_from_v1_keeps_runs_and_adds_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    create_at_version(path, 1)
    conn = sqlite3.connect(path, isolation_level=None)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.execute(
        "INSERT INTO runs (id, plan_path, plan_hash, task_count, status, created_ts, started_ts,"
        " ended_ts) VALUES ('r1', '/p.csv', 'h', 1, 'succeeded', 1.0, 2.0, 5.0)"
    )
    conn.execute(
        "INSERT INTO tasks (run_id, task_id, idx, row_hash, state, attempts)"
        " VALUES ('r1', 'a', 0, 'x', 'succeeded', 1)"
    )
    conn.execute(
        "INSERT INTO attempts (run_id, task_id, attempt, state, started_ts, ended_ts, exit_code,"
        " log_path) VALUES ('r1', 'a', 1, 'succeeded', 2.0, 4.0, 0, '/l/a.1.log')"
    )
    conn.close()

    with open_store(path) as store:
        run, tasks, attempts = store.read_run("r1")
        assert (run.status, run.counts, run.duration_s, run.pid) == ("succeeded", {"succeeded": 1}, 3.0, None)
        assert tasks[0].state == "succeeded"
        (att,) = attempts
        assert (att.log_path, att.metrics, att.gpus, att.duration_s) == ("/l/a.1.log", {}, (), 2.0)
        # v2's columns are there and writable
        rec = JournalRecorder(store, "r1")
        rec.record_sync([TaskChanged("a", TaskState.RUNNING, 2, 10.0, pid=7, gpus=(1,))])
        assert store.attempts("r1", "a")[1].gpus == (1,)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(os.urandom(4096)), "not an SQLite database"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + os.urandom(4080)), "not a tek journal|not a usable"),
        (lambda p: p.write_text("id,command\na,true\n"), "not an SQLite database"),
        (foreign_sqlite, "another application"),
        (newer_tek, f"schema version {SCHEMA_VERSION + NEWER_BY} is newer"),
    ],
    ids=["random-bytes", "corrupt-sqlite", "csv-file", "foreign-sqlite", "newer-schema"],
)
def test_bad_files_are_refused_and_left_untouched(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / "bad.db"
    make(path)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = _fingerprint(path)
    siblings = sorted(tmp_path.iterdir())
    with pytest.raises(StoreError, match=message) as info:
        open_store(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert _fingerprint(path) == before
    assert sorted(tmp_path.iterdir()) == siblings  # no -wal or -shm left behind


def test_missing_journal_is_not_created_for_readers(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no journal here"):
        open_store(tmp_path / "none.db", create=False)
    assert not (tmp_path / "none.db").exists()


def _journal(store: Store, plan_n: int = 3) -> tuple[str, JournalRecorder]:
    run_id = new_run_id()
    plan = chain_plan(plan_n)
    store.begin_run(run_id, plan, {"jobs": 2})
    return run_id, JournalRecorder(store, run_id)


def test_events_make_runs_tasks_and_attempts(tmp_path: Path, tek_home: Path) -> None:
    with open_store(tmp_path / "j.db") as store:
        run_id, rec = _journal(store)
        rec.record_sync([started(run_id, 3)])
        run = store.get_run(run_id)
        assert (run.status, run.counts, run.options, run.pid) == ("running", {"pending": 3}, {"jobs": 2}, os.getpid())
        assert run.is_live and run.effective_status == "running"
        rec.record_sync(flat(ran("t0"), ran("t1", ok=False)))
        rec.record_sync([TaskChanged("t1", TaskState.RETRYING, 1, 103.0)])
        rec.record_sync(flat(ran("t1", attempt=2, ts=110.0), TaskChanged("t2", TaskState.CANCELLED, 0, 120.0, reason="cancelled by user")))
        rec.record_sync([finished(run_id, RunStatus.CANCELLED)])

        run, tasks, attempts = store.read_run(run_id)
        assert (run.status, run.ended_ts, run.effective_status) == ("cancelled", 200.0, "cancelled")
        assert run.counts == {"succeeded": 2, "cancelled": 1}
        assert [(t.task_id, t.state, t.attempts) for t in tasks] == [
            ("t0", "succeeded", 1), ("t1", "succeeded", 2), ("t2", "cancelled", 0),
        ]  # fmt: skip
        assert tasks[2].reason == "cancelled by user"
        by = {(a.task_id, a.attempt): a for a in attempts}
        assert set(by) == {("t0", 1), ("t1", 1), ("t1", 2)}
        assert (by["t1", 1].state, by["t1", 1].exit_code, by["t1", 1].reason) == ("failed", 1, "exit code 1")
        t0 = by["t0", 1]
        assert (t0.state, t0.started_ts, t0.ended_ts, t0.pid, t0.gpus) == ("succeeded", 100.0, 101.5, 4242, (0,))
        assert (t0.cpus, t0.memory_mb, t0.metrics) == (1.0, 0, {"loss": 0.25})
        assert t0.log_path == str(tek_home / "runs" / run_id / "t0.1.log")


def test_attempt_closed_in_a_later_batch_and_pid_update(tmp_path: Path) -> None:
    with open_store(tmp_path / "j.db") as store:
        run_id, rec = _journal(store, 1)
        rec.record_sync([TaskChanged("t0", TaskState.RUNNING, 1, 1.0)])
        rec.record_sync([TaskChanged("t0", TaskState.RUNNING, 1, 1.2, pid=99)])
        (att,) = store.attempts(run_id, "t0")
        assert (att.state, att.ended_ts, att.pid, att.started_ts) == ("running", None, 99, 1.0)
        assert store.get_run(run_id).counts == {"running": 1}
        rec.record_sync([TaskChanged("t0", TaskState.FAILED, 1, 3.0, exit_code=-9, reason="timed out after 2s")])
        (att,) = store.attempts(run_id, "t0")
        assert (att.state, att.ended_ts, att.exit_code, att.reason) == ("failed", 3.0, -9, "timed out after 2s")


def _all_rows(store: Store, run_id: str) -> tuple[object, ...]:
    run, tasks, attempts = store.read_run(run_id)
    return run.status, run.counts, tuple(tasks), tuple(attempts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=12), seed=st.integers(0, 2**16))
def test_batching_does_not_change_what_is_recorded(cuts: list[int], seed: int) -> None:
    """One event per batch or any split, applied at once or queued: the same journal."""
    import random

    rnd = random.Random(seed)
    events: list[Event] = [started("R", 5)]
    ts = 100.0
    for tid in ("a", "b", "c", "d", "e"):
        for attempt in range(1, rnd.randint(1, 3) + 1):
            ts += 1
            ok = rnd.random() < 0.5
            events += ran(tid, attempt, ts, ok=ok)
            if not ok:
                events.append(TaskChanged(tid, TaskState.RETRYING, attempt, ts + 2))
            if ok:
                break
    events.append(finished("R"))
    bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
    split = [events[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    results = []
    for batches, inline_max in (([[e] for e in events], 256), (split, 256), (split, 0), (split, 3)):
        with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "j.db") as store:
            store.begin_run("R", diamond_plan())
            rec = JournalRecorder(store, "R", inline_max=inline_max)
            for batch in batches:
                rec.record_sync(batch)
            results.append(_all_rows(store, "R"))
    assert results[0] == results[1] == results[2] == results[3]


async def test_record_commits_before_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with open_store(path) as store, open_store(path, create=False) as reader:
        run_id, rec = _journal(store, 2)
        with anyio.fail_after(10):
            await rec.record(ran("t0"))
            assert reader.attempts(run_id, "t0")[0].state == "succeeded"
            # batches without state changes cost no write
            from core.events import OutputLines

            await rec.record([OutputLines("t1", 1, ("hello",))])
        assert rec.stats.batches == 1


def test_reopen_closes_open_attempts_as_interrupted(tmp_path: Path) -> None:
    with open_store(tmp_path / "j.db") as store:
        run_id, rec = _journal(store)
        rec.record_sync(flat(started(run_id, 3), ran("t0"), TaskChanged("t1", TaskState.RUNNING, 1, 5.0)))
        store._conn.execute("UPDATE runs SET pid = 2147483000")  # its writer died
        plan = chain_plan(3)
        closed = store.reopen_run(run_id, plan, frozenset({"t1", "t2"}))
        assert closed == 1
        run, tasks, attempts = store.read_run(run_id)
        assert (run.status, run.resumes) == ("pending", 1)
        assert [t.state for t in tasks] == ["succeeded", "pending", "pending"]
        assert [(a.task_id, a.state) for a in attempts] == [("t0", "succeeded"), ("t1", "interrupted")]
        assert attempts[1].ended_ts is not None


def test_last_is_the_run_most_recently_resumed(tmp_path: Path) -> None:
    with open_store(tmp_path / "j.db") as store:
        plan = chain_plan(1)
        store.begin_run("20260101-000000-aaaa", plan)
        store.begin_run("20260102-000000-bbbb", plan)
        assert store.resolve_run("last") == "20260102-000000-bbbb"
        store._conn.execute("UPDATE runs SET pid = 2147483000")  # both writers died
        store.reopen_run("20260101-000000-aaaa", plan, frozenset({"t0"}))
        assert store.resolve_run("last") == "20260101-000000-aaaa"


def test_resolve_run_last_prefix_and_errors(tmp_path: Path) -> None:
    with open_store(tmp_path / "j.db") as store:
        plan = chain_plan(1)
        for rid in ("20260101-000000-aaaa", "20260101-000000-aabb", "20260102-000000-cccc"):
            store.begin_run(rid, plan)
        assert store.resolve_run("last") == "20260102-000000-cccc"
        assert store.resolve_run("20260102") == "20260102-000000-cccc"
        assert store.resolve_run("20260101-000000-aaaa") == "20260101-000000-aaaa"
        with pytest.raises(StoreError, match="ambiguous"):
            store.resolve_run("20260101-000000-aa")
        with pytest.raises(StoreError, match="no run 'zzz'"):
            store.resolve_run("zzz")
        with pytest.raises(StoreError, match="no run of /nowhere.csv"):
            store.resolve_run("last", plan_path="/nowhere.csv")
        assert [r.id for r in store.list_runs(limit=2)] == ["20260102-000000-cccc", "20260101-000000-aabb"]


def test_dead_writer_reads_as_interrupted(tmp_path: Path) -> None:
    with open_store(tmp_path / "j.db") as store:
        run_id, rec = _journal(store, 1)
        rec.record_sync([started(run_id, 1)])
        store._conn.execute("UPDATE runs SET pid = 2147483000")
        run = store.get_run(run_id)
        assert (run.is_live, run.effective_status) == (False, "interrupted")
    assert not process_alive(None, "", 0.0)
    assert process_alive(os.getpid(), "", 1e12)
    assert not process_alive(os.getpid(), "", 0.0)  # pid recycled since the run began


def test_big_batches_are_queued_then_applied_in_order(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    plan = chain_plan(3)
    with open_store(path) as store:
        j = create_journal(plan, store=store)
        rec = JournalRecorder(store, j.run_id, inline_max=2)
        rec.record_sync(flat(started(j.run_id, 3), ran("t0"), ran("t1")))  # 4 rows: queued
        rec.record_sync([TaskChanged("t2", TaskState.RUNNING, 1, 1.0)])  # small, but queued behind
        assert (rec.stats.batches, rec.stats.queued) == (2, 2)
        raw = sqlite3.connect(path)
        assert raw.execute("SELECT count(*) FROM pending").fetchone()[0] == 2
        assert raw.execute("SELECT count(*) FROM attempts").fetchone()[0] == 0
        # the run row is always current; a reader applies the queue before it reads
        assert raw.execute("SELECT status FROM runs").fetchone()[0] == "running"
        with open_store(path, create=False) as reader:
            assert reader.get_run(j.run_id).counts == {"succeeded": 2, "running": 1}
        assert raw.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
        rec.record_sync(flat(TaskChanged("t2", TaskState.SUCCEEDED, 1, 2.0), finished(j.run_id)))
        j.close()
        assert raw.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
        assert raw.execute("SELECT count(*), min(state) FROM attempts").fetchone() == (3, "succeeded")


def test_a_page_corrupt_deep_in_the_file_is_a_store_error(tmp_path: Path) -> None:
    """Past a good header and first page, SQLite errors still come out as StoreError."""
    path = tmp_path / "j.db"
    with open_store(path) as store:
        create_journal(chain_plan(3000), store=store)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[3 * page : len(data) - page] = os.urandom(len(data) - 4 * page)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="journal is damaged|not a usable tek journal") as info:  # noqa: SIM117
        with open_store(path, create=False) as store:
            store.read_run(store.resolve_run("last"))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_damaged_queued_batch_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with open_store(path) as store:
        j = create_journal(chain_plan(2), store=store)
        JournalRecorder(store, j.run_id, inline_max=0).record_sync(flat(started(j.run_id, 2), ran("t0")))
    raw = sqlite3.connect(path)
    (blob,) = raw.execute("SELECT rows FROM pending").fetchone()
    damaged = blob[:-3] + bytes(b ^ 0xFF for b in blob[-3:])
    raw.execute("UPDATE pending SET rows = ?", (damaged,))
    raw.commit()
    raw.close()
    with open_store(path, create=False) as store, pytest.raises(StoreError, match=f"{path}: run .*damaged"):
        store.read_run(j.run_id)


@pytest.mark.parametrize("inline_max", [0, 10_000], ids=["queued", "applied"])
def test_tasks_that_end_alike_are_written_together_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline_max: int
) -> None:
    """Grouped task updates (one statement per outcome) record what row-by-row upserts do.

    200 plan tasks succeed or fail and 80 sub-plan tasks (no row until they
    run) succeed: one group has tasks without rows, so it is upserted.
    """
    import core.store_batch

    events = flat(
        started("R", 200),
        *(ran(f"t{i}", ok=i % 3 != 0) for i in range(200)),
        *(ran(f"t5/s{i}") for i in range(80)),
        finished("R"),
    )
    results = []
    for group_min in (64, 10**9):
        monkeypatch.setattr(core.store_batch, "_GROUP_MIN", group_min)
        with open_store(tmp_path / f"j{group_min}.db") as store:
            store.begin_run("R", chain_plan(200))
            JournalRecorder(store, "R", inline_max=inline_max).record_sync(events)
            results.append(_all_rows(store, "R"))
    assert results[0] == results[1]
    _, counts, tasks, attempts = results[0]
    assert isinstance(tasks, tuple) and isinstance(attempts, tuple)
    assert counts == {"succeeded": 213, "failed": 67} and len(tasks) == len(attempts) == 280


def test_a_background_set_up_that_fails_raises_on_next_use(tmp_path: Path) -> None:
    """Whatever the set-up thread hit comes out of the next use, as a StoreError."""
    from core.plan import Plan, Task

    twice = Plan((Task(id="a", agent="noop"), Task(id="a", agent="noop")))  # not validated: same id
    with open_store(tmp_path / "j.db") as store:
        store.begin_run("R", twice, background=True)
        with pytest.raises(StoreError, match="journal error: UNIQUE constraint failed"):
            store.list_runs()
        assert store.list_runs() == []  # one transaction: no run row without its tasks


def test_attempts_inserted_in_chunks_keep_every_column(tmp_path: Path, tek_home: Path) -> None:
    """700 attempts in one batch (chunks of 256, 128, ... 4): each row whole and right."""
    from core.paths import run_log_path
    from core.plan import Plan, Task

    plan = Plan(tuple(Task(id=f"t{i}", agent="noop", cpus=2.0 if i == 5 else 1.0, memory_mb=64 * (i == 5))
                      for i in range(600)))  # fmt: skip
    events = flat(
        started("R", 600),
        *(ran(f"t{i}", ok=i % 7 != 0) for i in range(600)),
        *(ran(f"t3/s{i}") for i in range(100)),  # sub-plan tasks: no row of their own
        TaskChanged("t9", TaskState.RUNNING, 2, 300.0),
        TaskChanged("t9", TaskState.RUNNING, 2, 301.0, pid=77),  # the pid comes later
    )
    with open_store(tmp_path / "j.db") as store:
        store.begin_run("R", plan)
        JournalRecorder(store, "R").record_sync(events)
        _, tasks, attempts = store.read_run("R")
    by = {(a.task_id, a.attempt): a for a in attempts}
    assert len(attempts) == 701 and len(tasks) == 700
    t5, t7, sub, t9 = by["t5", 1], by["t7", 1], by["t3/s42", 1], by["t9", 2]
    assert (t5.state, t5.exit_code, t5.reason, t5.metrics, t5.pid, t5.gpus) == (
        "succeeded", 0, "", {"loss": 0.25}, 4242, (0,))
    assert (t5.cpus, t5.memory_mb, t5.started_ts, t5.ended_ts) == (2.0, 64, 100.0, 101.5)
    assert (t7.state, t7.exit_code, t7.reason, t7.metrics, t7.cpus) == ("failed", 1, "exit code 1", {}, 1.0)
    assert t5.log_path == str(run_log_path("R", "t5", 1))
    assert (sub.cpus, sub.memory_mb, sub.log_path) == (None, None, str(run_log_path("R", "t3__s42", 1)))
    assert (t9.state, t9.started_ts, t9.ended_ts, t9.pid) == ("running", 300.0, None, 77)


def test_a_new_run_never_takes_the_id_of_one_in_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids are the second plus 4 random hex digits: two runs started in the same
    second could draw the same one, and the second run failed with exit 2."""
    taken, fresh = "20260101-000000-aaaa", "20260101-000000-bbbb"
    with open_store(tmp_path / "j.db") as store:
        assert store.begin_run(taken, chain_plan(2)) == taken
        draws = iter([taken, taken, fresh])
        monkeypatch.setattr("core.store_runs.new_run_id", lambda: next(draws))
        journal = create_journal(chain_plan(2), store=store)
        journal.ready()
        assert journal.run_id == fresh
        assert sorted(r.id for r in store.list_runs()) == [taken, fresh]

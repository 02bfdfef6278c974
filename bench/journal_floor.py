"""The floor under ``bench/dispatch.py --journal``: the journal's rows, and nothing else.

For N tasks a run's journal must hold one ``tasks`` row per task (written
when the run starts, so a crash can be resumed), one ``attempts`` row per
attempt and each task's final state. This script writes exactly those rows
into a fresh file in WAL mode, the fastest way the ``sqlite3`` module allows
(one ``executemany`` per table, one transaction each; no events, no hashing,
no merging), and prints how long that takes next to the 15% budget of the
journal-less run that ``bench/dispatch.py`` measures: with tek's text keys
(run id, task id), with integer keys, and with text keys through SQLite's
``json_each`` (one statement per table: the only way a writer thread could
insert without holding the GIL, since ``executemany`` binds each row under
it). Usage::

    .venv/bin/python bench/journal_floor.py [--tasks 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

_TEXT = """
CREATE TABLE tasks (run TEXT, task TEXT, hash TEXT, state TEXT, PRIMARY KEY (run, task))
    WITHOUT ROWID;
CREATE TABLE attempts (run TEXT, task TEXT, attempt INT, state TEXT, started REAL, ended REAL,
    code INT, PRIMARY KEY (run, task, attempt)) WITHOUT ROWID;
"""
_INT = _TEXT.replace("run TEXT, task TEXT", "run INT, task INT")


_JSON_SQL = (
    "INSERT INTO tasks SELECT ?1, value ->> 0, value ->> 1, value ->> 2 FROM json_each(?2)",
    "INSERT INTO attempts SELECT ?1, value ->> 0, value ->> 1, value ->> 2, value ->> 3,"
    " value ->> 4, value ->> 5 FROM json_each(?2)",
    # an upsert, so SQLite finds each task by its key (UPDATE ... FROM scans)
    "INSERT INTO tasks SELECT ?1, value ->> 1, '', value ->> 0 FROM json_each(?2) WHERE true"
    " ON CONFLICT (run, task) DO UPDATE SET state = excluded.state",
)


def write_rows(path: Path, schema: str, n: int, text_keys: bool, as_json: bool = False) -> float:
    """Seconds to write ``n`` tasks' rows (task, attempt, final state) into a new journal."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(schema)
    run: str | int = "20261124-120000-abcd" if text_keys else 1
    keys: list[str] | list[int] = [f"t{i}" for i in range(n)] if text_keys else list(range(n))
    tasks = [(run, k, "0123456789abcdef", "pending") for k in keys]
    attempts = [(run, k, 1, "succeeded", 1.0, 1.01, 0) for k in keys]
    states = [("succeeded", run, k) for k in keys]
    t0 = time.perf_counter()
    if as_json:
        for sql, rows in zip(_JSON_SQL, (tasks, attempts, states), strict=True):
            if sql.endswith("excluded.state"):
                data = json.dumps([(state, key) for state, _, key in rows])
            else:
                data = json.dumps([row[1:] for row in rows])
            conn.execute("BEGIN")
            conn.execute(sql, (run, data))
            conn.execute("COMMIT")
        seconds = time.perf_counter() - t0
        conn.close()
        return seconds
    for sql, rows in (
        ("INSERT INTO tasks VALUES (?, ?, ?, ?)", tasks),
        ("INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?)", attempts),
        ("UPDATE tasks SET state = ? WHERE run = ? AND task = ?", states),
    ):
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    conn.close()
    return seconds


def main() -> None:
    """Print the best time of each key kind."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"{args.tasks} tasks: 1 task row + 1 attempt row + 1 state update each,"
          f" best of {args.repeat} (SQLite {sqlite3.sqlite_version}):")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        kinds = (
            ("text keys", _TEXT, True, False),
            ("integer keys", _INT, False, False),
            ("json_each", _TEXT, True, True),
        )
        for label, schema, text_keys, as_json in kinds:
            best = float("inf")
            for i in range(args.repeat):
                path = Path(tmp) / f"{label[0]}{i}.db"
                best = min(best, write_rows(path, schema, args.tasks, text_keys, as_json))
            print(f"  {label:<13} {best * 1000:6.1f} ms")
    print("  compare: 15% of the journal-less run (bench/dispatch.py --journal, 'off')")


if __name__ == "__main__":
    main()

"""A journal on a full disk is sound: readers read it, writers say the disk is full.

A full disk is made without mounting anything. ``RLIMIT_FSIZE`` = 0 (with
SIGXFSZ ignored) makes every write to a regular file fail, exactly where a
full disk fails SQLite: the first connection cannot size the journal's
``-shm`` file (``SQLITE_IOERR_SHMSIZE``), which tek read as damage ("not a
usable tek journal: cannot commit - no transaction is active"). The system
then says ``File too large`` (EFBIG); with ``no_space=True`` a
``sitecustomize`` also makes ``os.statvfs`` report no free blocks, as on a
full disk, so the reason reads as ``No space left on device``. Both reach
the processes ``tek run -d`` starts.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import StoreWriteError
from core.paths import run_dir, run_log_path
from core.store import Store, open_store
from tek_tui.cli import main
from tests.core.journal_helpers import chain_plan

_SITE = """\
import os
if os.environ.get("TEK_TEST_NO_SPACE"):
    _statvfs = os.statvfs

    def _no_space(path):
        st = _statvfs(path)
        return os.statvfs_result((st.f_bsize, st.f_frsize, st.f_blocks, 0, 0, st.f_files,
                                  st.f_ffree, st.f_favail, st.f_flag, st.f_namemax))

    os.statvfs = _no_space
if os.environ.get("TEK_TEST_SILENT_START") and "TEK_READY_FD" in os.environ:
    os._exit(1)  # the run `tek run -d` started dies before a word
"""

NO_SPACE = "No space left on device (the disk is full: free some space, or give --store PATH on another disk)"


def _no_file_writes() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killing signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def _tek(home: Path, *args: str, full: bool = False, no_space: bool = False,
         **extra: str) -> subprocess.CompletedProcess[str]:
    """``tek ARGS`` with ``TEK_HOME=home``; ``full``: no file can be written;
    ``no_space``: the system reports no free space (``extra``: more environment)."""
    site = home.parent / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITE)
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "TEK_HOME": str(home), "PYTHONPATH": os.pathsep.join(paths), **extra}
    if no_space:
        env["TEK_TEST_NO_SPACE"] = "1"
    return subprocess.run([sys.executable, "-m", "tek_tui", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False,
                          preexec_fn=_no_file_writes if full else None)


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path, str]:
    """A home whose journal holds one run of a one-task plan that printed ``ok``."""
    home, plan = tmp_path / "home", tmp_path / "one.csv"
    plan.write_text("id,command\na,echo ok\n")
    done = _tek(home, "run", str(plan), "--plain")
    assert done.returncode == 0, done.stderr
    (run_id,) = [p.name for p in (home / "runs").iterdir()]
    assert not list(home.glob("tek.db-*"))  # closed cleanly: the next opener makes the -shm
    return home, plan, run_id


def _journal(home: Path) -> tuple[bytes, int]:
    db = home / "tek.db"
    return db.read_bytes(), db.stat().st_mtime_ns


# ------------------------------------------------------------------- readers


def test_runs_show_and_logs_read_a_journal_on_a_full_disk(recorded: tuple[Path, Path, str]) -> None:
    home, _, run_id = recorded
    before = _journal(home)
    listed = _tek(home, "runs", "--json", full=True)
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["status"]) for r in json.loads(listed.stdout)] == [(run_id, "succeeded")]
    shown = _tek(home, "show", "last", "--json", full=True)
    assert shown.returncode == 0, shown.stderr
    assert [t["state"] for t in json.loads(shown.stdout)["tasks"]] == ["succeeded"]
    logs = _tek(home, "logs", "last", "a", full=True, no_space=True)
    assert (logs.returncode, logs.stdout, logs.stderr) == (0, "ok\n", "")
    assert _journal(home) == before


def test_readers_on_a_full_disk_read_past_batches_they_cannot_apply(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with open_store(home / "tek.db") as store:
        rid = store.begin_run("20260101-000000-aaaa", chain_plan(1))
        queued = store.write_batch(rid, str(run_dir(rid)), [("t0", "running", 1, time.time(), None, "",
                                                            None, (), None)], [], inline_max=0)
        assert not queued  # committed to `pending`, applied by the next reader that can write
    shown = _tek(home, "show", "last", "--json", full=True)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == rid
    with open_store(home / "tek.db") as store:  # once it can write, the batch is applied
        assert [t.state for t in store.read_run(rid)[1]] == ["running"]


def test_a_store_opened_read_only_for_want_of_space_refuses_writes_with_the_reason(
    recorded: tuple[Path, Path, str],
) -> None:
    home, plan, _ = recorded
    code = (
        "import sys; from core.store import open_store; from core.errors import StoreWriteError\n"
        "from core.plan_io import read_plan\n"
        "store = open_store(sys.argv[1], create=False)\n"
        "print(store.unwritable.errno, len(store.list_runs()))\n"
        "try:\n    store.begin_run(None, read_plan(sys.argv[2]))\n"
        "except StoreWriteError as exc:\n    print(exc.errno, exc)\n"
    )
    site = home.parent / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITE)
    env = {**os.environ, "TEK_HOME": str(home), "PYTHONPATH": str(site), "TEK_TEST_NO_SPACE": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(home / "tek.db"), str(plan)],
                          capture_output=True, text=True, env=env, timeout=60, check=False,
                          preexec_fn=_no_file_writes)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{errno.ENOSPC} 1", f"{errno.ENOSPC} {home / 'tek.db'}: cannot write the journal: {NO_SPACE}"]


# ------------------------------------------------------------------- writers


def test_run_on_a_full_disk_says_so_in_one_line_and_leaves_the_journal(
    recorded: tuple[Path, Path, str],
) -> None:
    home, plan, run_id = recorded
    before = _journal(home)
    line = f"{home / 'tek.db'}: cannot write the journal: {NO_SPACE}"
    for args in (["run", str(plan), "--plain"], ["run", str(plan), "--json"],
                 ["run", "--resume", "last", "--plain"]):
        done = _tek(home, *args, full=True, no_space=True)
        assert (done.returncode, done.stderr) == (2, f"tek: {line}\n"), args
        assert done.stdout == (json.dumps({"errors": [line]}) + "\n" if "--json" in args else "")
    assert _journal(home) == before
    listed = _tek(home, "runs", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]


def test_a_file_size_limit_is_named_never_called_damage(recorded: tuple[Path, Path, str]) -> None:
    home, plan, _ = recorded
    done = _tek(home, "run", str(plan), "--plain", full=True)
    assert (done.returncode, done.stderr) == (2, f"tek: {home / 'tek.db'}: cannot write the journal: "
                                                 "File too large (over this process's file size limit, ulimit -f)\n")


# --------------------------------------------------------------------- prune


def test_prune_on_a_full_disk_deletes_the_logs_first_and_says_the_runs_stay(
    recorded: tuple[Path, Path, str],
) -> None:
    home, _, run_id = recorded
    done = _tek(home, "prune", "--keep", "0", full=True, no_space=True)
    assert done.returncode == 2
    assert done.stderr.startswith(f"tek: {home / 'tek.db'}: cannot write the journal: {NO_SPACE}; "
                                  "the logs of the 1 run(s) to prune are deleted (")
    assert done.stderr.endswith(" MB freed), the runs stay listed until `tek prune` can write "
                                "the journal\n") and done.stderr.count("\n") == 1
    assert not (home / "runs" / run_id).exists()
    assert "damaged" not in done.stderr
    again = _tek(home, "prune", "--keep", "0")  # space again: it forgets them
    assert again.returncode == 0, again.stderr
    assert json.loads(_tek(home, "runs", "--json").stdout) == []


def test_prune_frees_space_with_the_logs_then_forgets_the_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """The journal cannot be written until the logs of the runs to prune are gone."""
    with open_store() as store:
        for rid in ("20260101-000000-aaaa", "20260102-000000-aaaa"):
            store.begin_run(rid, chain_plan(1))
            log = run_log_path(rid, "t0", 1)
            log.parent.mkdir(parents=True)
            log.write_bytes(b"x" * 300_000)
        with store.write() as conn:  # ended runs (a run this live process owns is kept)
            conn.execute("UPDATE runs SET status = 'succeeded', pid = NULL")
    delete = Store.delete_run

    def full_until_logs_go(self: Store, run_id: str) -> None:
        if run_dir(run_id).exists():
            raise StoreWriteError(f"{self.path}: cannot write the journal: No space left on device",
                                  errno.ENOSPC)
        delete(self, run_id)

    monkeypatch.setattr(Store, "delete_run", full_until_logs_go)
    assert main(["prune", "--keep", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "pruned 2 run(s), 0.6 MB of logs; kept 0"
    with open_store() as store:
        assert store.list_runs() == []


# ------------------------------------------------------------------ detached


def test_a_detached_run_refused_for_want_of_space_says_why(recorded: tuple[Path, Path, str]) -> None:
    home, plan, _ = recorded
    line = f"{home / 'tek.db'}: cannot write the journal: {NO_SPACE}"
    done = _tek(home, "run", "-d", str(plan), full=True, no_space=True)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"tek: {line}\n")
    done = _tek(home, "run", "-d", str(plan), "--json", full=True, no_space=True)
    assert (done.returncode, done.stderr) == (2, f"tek: {line}\n")
    assert json.loads(done.stdout) == {"errors": [line]}
    assert not list((home / "detached").iterdir())


def test_a_detached_run_that_died_without_a_word_says_its_output_was_lost(
    recorded: tuple[Path, Path, str],
) -> None:
    home, plan, _ = recorded
    done = _tek(home, "run", "-d", str(plan), "--json", full=True, no_space=True,
                TEK_TEST_SILENT_START="1")
    line = (f"the run ended before it started (exit code 1), saying nothing; its output could "
            f"not be written in {home / 'detached'}: No space left on device")
    assert (done.returncode, done.stderr) == (2, f"tek: {line}\n")
    assert json.loads(done.stdout) == {"errors": [line]}

"""How a run's events leave it: :class:`RunEvents`, the engine's publishing half.

A scheduler turn ends with :meth:`RunEvents._flush`: the turn's events (ready
tasks, output lines taken from the attempts' logs, pool samples, pids of
attempts still running at a tick) become one batch. Without a journal the
batch is published at once. With one, the writer task (:meth:`_write_loop`)
awaits ``recorder.record(batch)`` and then publishes it: durable before
announced. The writer is pipelined with the scheduler, which goes on with
its next turns while a batch is written; what they flush meanwhile is
recorded next, as one batch (a group commit, at most every
``WRITE_INTERVAL_S``). Publishing never awaits (:mod:`core.broadcast`), so no
subscriber can slow the run.
"""

from __future__ import annotations

import time

import anyio

from core.events import OutputDropped, OutputLines, PoolChanged, TaskChanged, TaskState
from core.logsink import AttemptLog
from core.run_state import RunState

#: Shortest time between the starts of two journal writes (group commit).
WRITE_INTERVAL_S = 0.01
_RUNNING, _READY = TaskState.RUNNING, TaskState.READY


class RunEvents(RunState):
    """Batches, records and publishes a run's events (see the module docstring)."""

    def _on_output(self, log: AttemptLog) -> None:
        self._output_logs.add(log)
        self.poke()

    def _take_output(self, log: AttemptLog) -> None:
        key = self._logs.get(log)
        if key is None:
            return
        lines, dropped = log.take()
        if lines:
            self._batch.append(OutputLines(key[0], key[1], tuple(lines)))
        if dropped:
            self.dropped_lines += dropped
            self._batch.append(OutputDropped(key[0], key[1], dropped))

    def _announce_pids(self) -> None:
        news, self._pid_news = self._pid_news, []
        now = time.time()
        for rec, attempt in news:
            if rec.attempt == attempt and rec.state is _RUNNING and rec.pid is not None:
                self._batch.append(TaskChanged(rec.task.id, _RUNNING, attempt, now, None, "",
                                               rec.pid, rec.gpus))

    async def _flush(self, final: bool = False) -> None:
        if self._readied:
            now = time.time()
            append = self._batch.append
            for rec in self._readied:
                if rec.state is _READY:
                    append(TaskChanged(rec.task.id, _READY, rec.attempt, now))
            self._readied = []
        if self._output_logs:  # only logs that got lines since their last take
            logs, self._output_logs = self._output_logs, set()
            for log in logs:
                self._take_output(log)
        if self._pools_due:
            self._pools_due = False
            now = time.time()
            for p in self.pools.values():
                if p.dirty:
                    p.dirty = False
                    self._batch.append(PoolChanged(p.name, p.size, p.busy, p.queued,
                                                   p.finished, now, p.waiting_for))
        if self._foreign:
            foreign, self._foreign = self._foreign, []
            if self.recorder is not None and (self._unwritten or self._writing):
                # A nested run's events come after what this run flushed
                # before them (a sub-task starts after its plan task does):
                # they wait for those batches to be recorded and published.
                self._foreign_after.append((len(self._unwritten), foreign))
                self._unwritten_evt.set()
            else:
                self.broadcaster.publish(foreign)
        batch = self._batch
        if not batch:
            return
        self._batch = []
        if self.recorder is None:
            self.broadcaster.publish(batch)
        elif final:
            self._unwritten.extend(batch)
            await self._write()
        else:  # the writer task records it, then publishes it
            self._unwritten.extend(batch)
            self._unwritten_evt.set()

    async def _write_loop(self) -> None:
        """Record what the scheduler flushed, one batch at a time, in order.

        Pipelined: the scheduler goes on while a batch is written, and what it
        flushes meanwhile is recorded next as one batch (a group commit).
        Batches start at most every ``WRITE_INTERVAL_S``, so a run of short
        shell tasks commits a hundred times a second, not once per task. A
        batch is published only after ``record`` returned: durable before
        announced.
        """
        while True:
            await self._unwritten_evt.wait()
            self._unwritten_evt.clear()
            began = time.monotonic()
            await self._write()
            if not self._unwritten:
                self._written_evt.set()
            rest = began + WRITE_INTERVAL_S - time.monotonic()
            if rest > 0 and not self._stopping:
                await anyio.sleep(rest)

    async def _write(self) -> None:
        batch, self._unwritten = self._unwritten, []
        after, self._foreign_after = self._foreign_after, []
        if not batch and not after:
            return
        if batch and self.recorder is not None and self._record_error is None:
            self._writing = True
            try:
                await self.recorder.record(batch)
            except Exception as exc:
                # Nothing may run unrecorded: stop everything, then raise it
                # from run() once every process is gone.
                self._record_error = exc
                self.stop(f"journal write failed: {exc}")
            finally:
                self._writing = False
        start = 0
        for at, foreign in after:  # nested runs' events, each after what came before it
            if at > start:
                self.broadcaster.publish(batch[start:at])
                start = at
            self.broadcaster.publish(foreign)
        if start < len(batch):
            self.broadcaster.publish(batch[start:] if start else batch)

    async def _written(self) -> None:
        """Wait until the writer has recorded and published every flushed batch."""
        while (self._unwritten or self._foreign_after or self._writing
               or self._unwritten_evt.is_set()):
            self._written_evt.clear()
            await self._written_evt.wait()

"""The ML worker process: ``python -m core.ml.worker``.

A worker imports torch once, says ``ready``, then serves requests one at a
time, so many small ML tasks pay torch's import once per worker, not once per
task (``core.ml.pool`` is the parent side). The protocol is JSON lines:

- parent → worker, on stdin: ``{"op", "args", "run_id", "task_id", "cpus",
  "gpus", "cwd", "env"}``; end of stdin means "exit" (the attempt number is
  ``TEK_ATTEMPT`` in ``env``).
- worker → parent, on the original stdout: ``{"type": "ready", "pid",
  "torch"}`` once; then per request any number of ``{"type": "log", "line"}``
  and ``{"type": "progress", "values", "fraction"}`` and one ``{"type":
  "done", "ok", "metrics", "reason"}``.

File descriptors 1 and 2 are redirected into a pipe whose lines become
``log`` messages, so whatever an op or a C library prints lands in the
task's log and can never corrupt the protocol. The original stderr is kept
for faulthandler: a segfault's traceback goes there, and the parent shows its
tail when the worker dies. Torch is imported in :func:`main`, never at module
import, so the parent can import this module's constants cheaply.

The lifeline: ``--lifeline FD`` names the read end of a pipe whose write end
only the parent holds. A thread blocks reading it; end of file means the
parent died (even by SIGKILL, which runs no cleanup), and the worker kills
its own process group at once, mid-training or not. End of stdin alone is not
enough: the worker reads it only between requests. ``PR_SET_PDEATHSIG`` is
not used: it fires when the parent *thread* that spawned the worker exits,
and a warm worker outlives the thread (and event loop) of the run that
started it, to serve the next one.
"""

from __future__ import annotations

import faulthandler
import io
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from core.errors import TekError
from core.ml.context import OpContext
from core.ml.device import DeviceError

CUDA_ENV = "CUDA_VISIBLE_DEVICES"
LIFELINE_ARG = "--lifeline"
#: Exceptions whose message alone is a good reason (no traceback in the log).
EXPECTED = (TekError, ValueError, KeyError, FileNotFoundError, DeviceError)


def expected_reason(exc: BaseException) -> str:
    """An expected error as the attempt's reason: its message (a KeyError's without the quotes)."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


class Channel:
    """Thread-safe writer of protocol messages to the parent."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, **message: Any) -> None:
        """Write one message as one JSON line and flush."""
        line = json.dumps(message, default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


_DRAIN = "\x00tek-drain"


def _capture_output(channel: Channel) -> Callable[[], None]:
    """Point fds 1 and 2 at a pipe whose lines are sent as ``log`` messages.

    Returns:
        ``drain()``: waits until everything printed so far has been sent, so
        a request's output never trails its ``done`` into the next task's log.
    """
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", 0), line_buffering=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", 0), line_buffering=True)
    drained = threading.Event()

    def pump() -> None:
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line.rstrip("\n") == _DRAIN:
                    drained.set()
                else:
                    channel.send(type="log", line=line.rstrip("\n"))

    def drain() -> None:
        drained.clear()
        sys.stderr.flush()
        sys.stdout.write(_DRAIN + "\n")
        sys.stdout.flush()
        drained.wait(timeout=2.0)

    threading.Thread(target=pump, name="tek-ml-output", daemon=True).start()
    return drain


def handle(
    request: dict[str, Any], channel: Channel, drain: Callable[[], None] = lambda: None
) -> None:
    """Run one request and send its ``done`` message."""
    from core.ml import convert, data, evaluate, selection, train

    env = request.get("env") or dict(os.environ)
    attempt = str(env.get("TEK_ATTEMPT", ""))
    ctx = OpContext(
        run_id=request.get("run_id", ""),
        task_id=request.get("task_id", ""),
        attempt=int(attempt) if attempt.isdigit() else 0,
        cpus=float(request.get("cpus", 1.0)),
        gpus=tuple(request.get("gpus", ())),
        cwd=Path(request.get("cwd") or os.getcwd()),
        env=env,
        log=lambda line: channel.send(type="log", line=line),
        progress=lambda fraction=None, **values: channel.send(
            type="progress", values=values, fraction=fraction
        ),
    )
    op, args = request["op"], request["args"]
    # The task's environment (TEK_HOME above all) applies for this request
    # only: a warm worker serves tasks of runs with different environments.
    # CUDA_VISIBLE_DEVICES is the exception: CUDA reads it once per process,
    # so a warm worker keeps seeing every device and maps the engine's
    # indices itself (core.ml.device).
    saved_env = dict(os.environ)
    os.environ.clear()
    os.environ.update({k: v for k, v in ctx.env.items() if k != CUDA_ENV})
    if CUDA_ENV in saved_env:
        os.environ[CUDA_ENV] = saved_env[CUDA_ENV]
    try:
        if op == "train":
            metrics = train.run_train(args, ctx)
        elif op == "evaluate":
            metrics = evaluate.run_evaluate(args, ctx)
        elif op == "infer":
            metrics = evaluate.run_infer(args, ctx)
        elif op == "convert":
            metrics = convert.run_convert(args, ctx)
        elif op == "dataset":
            path = ctx.path(args["out"])
            ds = data.synthetic(args["kind"], args)
            data.write_table(data.to_frame(ds), path)
            ctx.log(f"dataset {args['kind']}: {len(ds.x)} rows written to {path}")
            metrics = {"rows": float(len(ds.x))}
        elif op == "select":
            winner, saved = selection.select_best(
                args["candidates"],
                args["metric"],
                args["mode"],
                args["save"],
                ctx.lineage(),
                log=ctx.log,
            )
            ctx.log(f"select: {winner.ref} wins on {args['metric']}; saved as {saved.ref}")
            metrics = {args["metric"]: float(winner.meta["metrics"][args["metric"]])}
        else:
            raise ValueError(f"unknown op {op!r}")
    except EXPECTED + (data.DataError,) as exc:
        drain()
        channel.send(type="done", ok=False, reason=expected_reason(exc), metrics={})
    except Exception as exc:
        drain()
        for line in traceback.format_exc().splitlines():
            ctx.log(line)
        channel.send(type="done", ok=False, reason=f"{type(exc).__name__}: {exc}", metrics={})
    else:
        drain()
        channel.send(type="done", ok=True, reason="", metrics=metrics)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        _reset()


def _reset() -> None:
    """Undo per-task global torch settings so the next task starts clean."""
    import torch

    torch.use_deterministic_algorithms(False)


def _hold_lifeline(fd: int) -> None:
    """Kill this worker's process group as soon as the parent's end of ``fd`` closes."""

    def watch() -> None:
        while True:
            try:
                chunk = os.read(fd, 64)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                break
        # The parent is gone: nobody reads our results, and a rerun of this
        # task may start any moment. Kill our group (whatever the op started
        # too) when we lead it (the pool starts workers as session leaders),
        # else just ourselves; _exit is the fallback.
        try:
            if os.getpgrp() == os.getpid():
                os.killpg(os.getpid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(137)

    threading.Thread(target=watch, name="tek-ml-lifeline", daemon=True).start()


def _lifeline_fd(argv: list[str]) -> int | None:
    if LIFELINE_ARG in argv:
        index = argv.index(LIFELINE_ARG)
        if index + 1 < len(argv) and argv[index + 1].isdigit():
            return int(argv[index + 1])
    return None


def main(argv: list[str] | None = None) -> int:
    """Serve requests until stdin closes (or the parent dies: see the lifeline)."""
    lifeline = _lifeline_fd(sys.argv[1:] if argv is None else argv)
    if lifeline is not None:
        _hold_lifeline(lifeline)  # first: a parent dying during torch's import counts too
    channel = Channel(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    crash = os.fdopen(os.dup(2), "w")
    faulthandler.enable(file=crash)
    drain = _capture_output(channel)
    import torch

    # Warm the modules every op needs, so the first task does not pay for them.
    from core.ml import convert, data, evaluate, train  # noqa: F401

    channel.send(type="ready", pid=os.getpid(), torch=torch.__version__)
    for line in sys.stdin:
        if line.strip():
            handle(json.loads(line), channel, drain)
    return 0


if __name__ == "__main__":
    sys.exit(main())

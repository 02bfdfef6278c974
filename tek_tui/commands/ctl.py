"""``tek ctl ACTION [ARGS] [--run RUN_ID|last]``: steer a running run from a script.

Sends one run-protocol control to a run another process is running (``tek
run``, ``tek run -d`` or a console), over the socket it is served on
(``core.run_socket``), and waits for the run's answer:

- ``start``, ``pause``, ``resume``: dispatch;
- ``cancel``: the whole run; ``cancel TASK``: one task;
- ``retry TASK``, ``skip TASK``;
- ``resize POOL SIZE``.

Without ``--run`` it steers the one run going; with several it refuses
rather than guess (``--run last`` takes the newest). Exit codes: 0 the run
applied it; 2 bad input, no such live run, or the run refused it (one
``tek: ...`` line saying why, as the console would).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from core.errors import TekError

if TYPE_CHECKING:
    from pathlib import Path

    from core.events import Control

#: Each action and the arguments it takes.
ACTIONS: dict[str, tuple[str, ...]] = {
    "start": (), "pause": (), "resume": (), "cancel": ("[TASK]",), "retry": ("TASK",),
    "skip": ("TASK",), "resize": ("POOL", "SIZE"),
}  # fmt: skip


def register(sub: Any) -> None:
    """Add the ``ctl`` subcommand."""
    usage = ", ".join(f"{a} {' '.join(args)}".strip() for a, args in ACTIONS.items())
    p = sub.add_parser("ctl", help="steer a running run from a script (pause, cancel, retry, ...)",
                       description=f"Send one control to a running run: {usage}.")
    p.add_argument("action", choices=list(ACTIONS), metavar="ACTION", help=usage)
    p.add_argument("args", nargs="*", metavar="ARG", help="the task, or the pool and its size")
    p.add_argument("--run", metavar="RUN_ID|last",
                   help="which running run (default: the only one; with several, say which)")
    p.set_defaults(func=_ctl)


def command_for(action: str, args: list[str]) -> Control:
    """The protocol control that ``tek ctl ACTION ARGS`` asks for.

    Raises:
        TekError: wrong arguments for the action.
    """
    from core.events import (
        CancelRun,
        CancelTask,
        Pause,
        ResizePool,
        Resume,
        RetryTask,
        SkipTask,
        Start,
    )

    wanted = ACTIONS[action]
    optional = wanted and wanted[-1].startswith("[")
    if len(args) > len(wanted) or (len(args) < len(wanted) and not optional):
        shape = " ".join(wanted) or "no arguments"
        raise TekError(f"ctl {action} takes {shape} (got {' '.join(args) or 'nothing'})")
    if action == "resize":
        pool, size = args
        if not size.isdigit():
            raise TekError(f"ctl resize {pool} {size}: SIZE must be a whole number, 0 or more")
        return ResizePool(pool, int(size))
    if action == "cancel":
        return CancelTask(args[0]) if args else CancelRun()
    simple: dict[str, type[Any]] = {"start": Start, "pause": Pause, "resume": Resume}
    if action in simple:
        return simple[action]()  # type: ignore[no-any-return]
    return (RetryTask if action == "retry" else SkipTask)(args[0])


def _ctl(args: argparse.Namespace) -> int:
    import anyio

    from core.run_socket import find_served, served_runs

    command = command_for(args.action, args.args)  # bad arguments fail before any connection
    if args.run is None:  # a script must never steer the wrong run: it names one if two go
        live = served_runs()
        if len(live) > 1:
            names = ", ".join(p.stem for p in live[:5])
            raise TekError(f"{len(live)} runs are going ({names}): say which with --run RUN_ID "
                           "(or --run last for the newest)")
    path = find_served(args.run or "last")
    anyio.run(_send, path, command)
    words = " ".join([args.action, *args.args])
    print(f"run {path.stem}: {words}: done")
    return 0


async def _send(path: Path, command: Control) -> None:
    """Attach, send ``command``, wait for the answer, detach.

    Raises:
        TekError: the run refused it (its reason), or the connection failed.
    """
    import anyio

    from core.errors import ControlError
    from core.run_socket import SocketClient

    client = await SocketClient.connect(path)

    async def drain() -> None:  # the answer comes on the event stream
        async for _ in client.events():
            pass

    refused = ""
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            try:
                await client.control(command)
            except ControlError as exc:
                refused = str(exc)
            finally:
                tg.cancel_scope.cancel()
    finally:
        await client.aclose()
    if refused:
        raise TekError(f"run {path.stem} refused it: {refused}")

"""The run protocol over a Unix socket: attach, watch, steer, detach (``core.run_socket``)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from core.engine import Run, RunOptions, create_run
from core.errors import ControlError, ProtocolError, TekError
from core.events import (
    PROTOCOL_VERSION,
    CancelRun,
    CancelTask,
    Event,
    RunFinished,
    RunStatus,
    TaskChanged,
    TaskState,
)
from core.run_socket import SocketClient, find_served, serving, socket_path, sockets_dir
from tests.core.engine_helpers import noop, plan_of, shell

OPTS = RunOptions(jobs=4, memory_floor_mb=0, grace_s=0.3)


def _sleepy() -> Run:
    """`a` (0.3 s) then `b`; `long` runs until cancelled."""
    return create_run(plan_of(shell("a", "sleep 0.3"), noop("b", deps=("a",)),
                              shell("long", "sleep 60")), OPTS)


async def _read_all(client: SocketClient) -> list[Event]:
    return [event async for event in client.events()]


async def test_a_console_attaches_steers_and_sees_the_run_to_its_end() -> None:
    run = _sleepy()
    path = socket_path(run.run_id)
    seen: list[Event] = []
    async with anyio.create_task_group() as tg, serving(run.client(), run.run_id) as served:
        assert served and path.exists()

        async def console() -> None:
            client = await SocketClient.connect(path)
            assert [t.id for t in client.snapshot().tasks] == ["a", "b", "long"]
            events = client.events()

            async def steer() -> None:
                with pytest.raises(ControlError, match="unknown task 'nope'"):
                    await client.control(CancelTask("nope"))
                await client.control(CancelTask("long"))

            tg.start_soon(steer)
            seen.extend([event async for event in events])

        tg.start_soon(console)
        summary = await run.run()
    assert not path.exists()  # removed once the run is over
    assert summary.tasks["long"].state is TaskState.CANCELLED
    assert summary.tasks["b"].state is TaskState.SUCCEEDED
    assert isinstance(seen[-1], RunFinished) and seen[-1].status is RunStatus.FAILED
    ended = {e.task_id: e.state for e in seen if isinstance(e, TaskChanged) and e.state.is_terminal}
    assert ended == {"a": TaskState.SUCCEEDED, "b": TaskState.SUCCEEDED,
                     "long": TaskState.CANCELLED}


async def test_detaching_leaves_the_run_alone_and_another_console_can_attach() -> None:
    run = create_run(plan_of(shell("a", "sleep 0.5"), noop("b", deps=("a",))), OPTS)
    path = socket_path(run.run_id)
    second_saw: list[Event] = []
    async with anyio.create_task_group() as tg, serving(run.client(), run.run_id):

        async def consoles() -> None:
            first = await SocketClient.connect(path)
            await first.aclose()  # detach at once
            with pytest.raises(ControlError, match="detached"):
                await first.control(CancelTask("a"))
            second_saw.extend(await _read_all(await SocketClient.connect(path)))

        tg.start_soon(consoles)
        summary = await run.run()
    assert summary.status is RunStatus.SUCCEEDED
    assert isinstance(second_saw[-1], RunFinished)


async def test_a_console_whose_run_process_goes_is_told_so() -> None:
    run = _sleepy()
    path = socket_path(run.run_id)
    async with anyio.create_task_group() as tg:
        done = anyio.Event()

        async def serve() -> None:
            async with serving(run.client(), run.run_id):
                await done.wait()  # then the "process" stops serving mid-run

        tg.start_soon(serve)
        await anyio.wait_all_tasks_blocked()
        client = await SocketClient.connect(path)
        done.set()
        with pytest.raises(ProtocolError, match="closed the connection"):
            await _read_all(client)
        tg.cancel_scope.cancel()


def test_find_served_skips_and_removes_dead_sockets() -> None:
    with pytest.raises(TekError, match="no run is being served"):
        find_served("last")
    folder = sockets_dir()
    assert folder.stat().st_mode & 0o777 == 0o700
    dead = folder / "20260101-000000-dead.sock"
    listeners = []
    for name in ("20260101-000000-aaaa", "20260102-000000-bbbb", "20260101-000000-dead"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(folder / f"{name}.sock"))
        listeners.append(s)
    for s in listeners[:2]:
        s.listen()
    listeners[2].close()  # bound, never listening: its run's process died...
    os.utime(dead, (time.time() - 60, time.time() - 60))  # ...a minute ago (a fresh one may be starting)
    try:
        assert find_served("last").stem == "20260102-000000-bbbb"  # the newest live one
        assert find_served("20260101").stem == "20260101-000000-aaaa"
        assert not dead.exists()
        with pytest.raises(TekError, match="ambiguous"):
            find_served("2026")
        with pytest.raises(TekError, match="no live run 'zzz'"):
            find_served("zzz")
    finally:
        for s in listeners[:2]:
            s.close()


async def test_nothing_served_is_one_clear_error(tmp_path: Path) -> None:
    """The run ended between finding its socket and connecting (a `tek ctl` racing its end)."""
    with pytest.raises(TekError, match=r"^run gone is not running any more \(`tek show gone`"):
        await SocketClient.connect(tmp_path / "gone.sock")


async def test_checks_and_vanishing_consoles_leave_no_subscription_behind() -> None:
    """A connection that only checks the run is served costs nothing; one that goes
    before reading its snapshot leaves no subscription for the run to feed."""
    from core.run_socket import _listening

    run = _sleepy()
    path = socket_path(run.run_id)
    async with anyio.create_task_group() as tg, serving(run.client(), run.run_id):
        tg.start_soon(run.run)
        assert await anyio.to_thread.run_sync(_listening, path)  # connect, close: a check
        stream = await anyio.connect_unix(path)
        await stream.send(b'{"attach": 1}\n')
        await stream.aclose()  # gone before reading the snapshot
        for _ in range(1000):  # polling the server's cleanup, for up to 10 s
            if not run.broadcaster.count:
                break
            await anyio.sleep(0.01)
        assert run.broadcaster.count == 0
        client = await SocketClient.connect(path)  # and a real console still attaches
        assert run.broadcaster.count == 1
        await client.aclose()
        await run.client().control(CancelRun())


async def test_garbage_from_a_connection_never_reaches_the_run() -> None:
    """A 2000-byte hello without a newline, or a control nested past Python's
    recursion limit, ended the whole run."""
    run = create_run(plan_of(shell("a", "sleep 0.5"), noop("b", deps=("a",))), OPTS)
    path = socket_path(run.run_id)
    async with anyio.create_task_group() as tg, serving(run.client(), run.run_id):

        async def vandal() -> None:
            rude = await anyio.connect_unix(path)
            await rude.send(b"x" * 2000)
            deep = await anyio.connect_unix(path)
            await deep.send(b'{"attach": 1}\n' + b"[" * 100_000 + b"\n")
            newer = await anyio.connect_unix(path)
            await newer.send(b'{"attach": 99}\n')
            reply = await BufferedByteReceiveStream(newer).receive_until(b"\n", 4096)
            assert f"this run speaks protocol {PROTOCOL_VERSION}, the console 99".encode() in reply
            for stream in (rude, deep, newer):
                await stream.aclose()

        tg.start_soon(vandal)
        summary = await run.run()
    assert summary.status is RunStatus.SUCCEEDED

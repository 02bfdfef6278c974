"""The run protocol over a Unix socket: consoles in other processes attach and detach.

``tek run`` serves its run at ``<TEK_HOME>/sockets/<run id>.sock``
(:func:`serving`); ``tek tui --attach`` connects a :class:`SocketClient`,
which is a :class:`~core.client.RunClient` like the in-process one, so the
console cannot tell them apart. Detaching (closing the connection) leaves the
run as it is.

Wire format, one JSON object per line (``core.events.to_json``):

- client to server first: ``{"attach": V}`` (V: the client's protocol
  version; a newer one than the run's gets ``{"error": ...}``), so a
  connection that only checks whether a run is served costs the run nothing;
- server to client: the run's snapshot first, then every event of its
  subscription (coalesced and bounded as for any subscriber, so a console
  that stops reading never slows the run), ending after ``RunFinished``;
  and ``{"reply": N, "error": null | "message"}`` for each control;
- client to server: ``{"id": N, "control": {...}}``.

The socket (mode 0600) is in a folder kept private to its user (0700, and
refused when another user owns it): whoever can connect can control the run.
Under a ``$TEK_HOME`` whose path is too long for a Unix socket (longer than
about 70 bytes) the folder is
``/tmp/tek-<uid>-<hash of TEK_HOME>`` instead (not ``$TMPDIR``: cron and a
shell may differ there), the same for every tek that uses that home.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import socket
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream

from core.errors import ControlError, ProtocolError, TekError
from core.events import (
    PROTOCOL_VERSION,
    Control,
    Event,
    RunFinished,
    RunSnapshot,
    from_json,
    to_json,
)
from core.paths import tek_home

if TYPE_CHECKING:
    from core.client import RunClient

#: Longest line either side reads (a snapshot of a 1M-task plan fits).
MAX_LINE = 1 << 30
#: How long a finished run's server waits for attached consoles to read its end.
LINGER_S = 2.0
#: How long a control waits for the server's reply.
REPLY_S = 10.0
#: A socket nobody listens on is removed once it is this old (seconds).
STALE_S = 5.0


#: Longest path a Unix socket may have (sun_path is 108 bytes with its NUL).
MAX_SOCKET_PATH = 107
#: The longest socket name a run gets (``<run id>.sock``, a 4-digit suffix at most).
_LONGEST_NAME = "20260101-000000-ffff-9999.sock"


def sockets_dir() -> Path:
    """The folder of live runs' sockets, private to this user (made so if it is not).

    Raises:
        TekError: the folder belongs to another user.
    """
    home = tek_home().resolve()  # one answer however $TEK_HOME is spelled (a symlink)
    folder = home / "sockets"
    if len(os.fsencode(folder / _LONGEST_NAME)) > MAX_SOCKET_PATH:
        # A Unix socket's path is limited (~107 bytes): a deep $TEK_HOME
        # gets a short folder of its own, the same for every tek using it.
        digest = hashlib.blake2b(os.fsencode(home), digest_size=8).hexdigest()
        folder = Path("/tmp") / f"tek-{os.getuid()}-{digest}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()  # a symlink planted there is refused, never followed
    if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode):
        raise TekError(f"{folder}: belongs to another user (or is not a folder); "
                       "tek will not serve runs there")
    if info.st_mode & 0o077:
        folder.chmod(0o700)
    return folder


def socket_path(run_id: str) -> Path:
    """Where run ``run_id`` is served."""
    return sockets_dir() / f"{run_id}.sock"


def _line(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


# ------------------------------------------------------------------ server


@asynccontextmanager
async def serving(client: RunClient, run_id: str) -> AsyncIterator[bool]:
    """Serve ``client``'s run at :func:`socket_path` for the body's duration.

    Yields False (and serves nothing) when the socket cannot be made: a path
    longer than the system allows, a folder not writable or not this user's.
    The run never depends on it. On exit the socket file is removed;
    consoles still attached get the run's end (for up to :data:`LINGER_S`),
    then their connections close.
    """
    try:
        path = socket_path(run_id)
        listener = await anyio.create_unix_listener(path, mode=0o600)
    except (OSError, TekError):
        yield False
        return
    handlers = _Handlers(client)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_serve, listener, handlers, tg)
            try:
                yield True
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                with anyio.CancelScope(shield=True), anyio.move_on_after(LINGER_S):
                    await handlers.idle()
                tg.cancel_scope.cancel()
    finally:
        with contextlib.suppress(Exception):
            await listener.aclose()


async def _serve(listener: Any, handlers: _Handlers, tg: anyio.abc.TaskGroup) -> None:
    """Accept consoles until closed; a failing accept (no descriptors left) stops serving, not the run."""
    with contextlib.suppress(Exception):
        await listener.serve(handlers.handle, tg)


class _Handlers:
    """One attached console per connection: its events out, its controls in."""

    def __init__(self, client: RunClient) -> None:
        self.client = client
        self.open = 0
        self._idle = anyio.Event()
        self._idle.set()

    async def idle(self) -> None:
        """Return once no connection is open."""
        await self._idle.wait()

    async def handle(self, stream: ByteStream) -> None:
        if self.open == 0:
            self._idle = anyio.Event()
        self.open += 1
        lock = anyio.Lock()
        events: AsyncIterator[Event] | None = None

        async def send(message: Any) -> None:
            async with lock:
                await stream.send(_line(message))

        reader = BufferedByteReceiveStream(stream)
        try:
            with anyio.fail_after(REPLY_S):
                hello = json.loads(await reader.receive_until(b"\n", 1024))
            if not isinstance(hello, dict) or not isinstance(hello.get("attach"), int):
                return  # not a tek console (or only a check that the run is served)
            if hello["attach"] > PROTOCOL_VERSION:
                await send({"error": f"this run speaks protocol {PROTOCOL_VERSION}, "
                                     f"the console {hello['attach']}: use the same tek"})
                return
            events = self.client.events()  # subscribe before the snapshot: nothing falls between
            snapshot = self.client.snapshot()
            # A big run's snapshot is megabytes of JSON: made off the event loop.
            data = await anyio.to_thread.run_sync(lambda: _line(to_json(snapshot)))
            async with lock:
                await stream.send(data)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._controls, reader, send, tg.cancel_scope)
                async for event in events:
                    await send(to_json(event))
                tg.cancel_scope.cancel()
        except Exception:  # one console's trouble must never reach the run
            pass  # it went away (detached), sent garbage, or was only a check
        finally:
            if events is not None:
                await _unsubscribe(events)
            with contextlib.suppress(Exception):
                await stream.aclose()
            self.open -= 1
            if self.open == 0:
                self._idle.set()

    async def _controls(self, reader: BufferedByteReceiveStream, send: Any,
                        scope: anyio.CancelScope) -> None:
        try:
            while True:
                raw = await reader.receive_until(b"\n", MAX_LINE)
                error: str | None = None
                number = None
                try:
                    message = json.loads(raw)
                    number = message["id"]
                    command = from_json(message["control"])
                    if not isinstance(command, Control):
                        raise ProtocolError(f"not a control: {type(command).__name__}")
                    await self.client.control(command)
                except (ControlError, ProtocolError) as exc:
                    error = str(exc)
                except Exception as exc:  # garbage from one console
                    error = f"bad control message: {type(exc).__name__}"
                await send({"reply": number, "error": error})
        except Exception:  # detached, or beyond repair: that connection ends
            scope.cancel()


async def _unsubscribe(events: AsyncIterator[Event]) -> None:
    """End a subscription, even one never iterated (whose generator never started).

    Closing a generator that never started skips its ``finally``, which is
    where a subscription leaves the broadcaster: step into it under a
    cancelled scope first, so it runs up to its first wait and unwinds.
    """
    with anyio.CancelScope() as scope:
        scope.cancel()
        with contextlib.suppress(StopAsyncIteration):
            await events.__anext__()
    with contextlib.suppress(Exception):
        await events.aclose()  # type: ignore[attr-defined]


# ------------------------------------------------------------------ client


class SocketClient:
    """A :class:`~core.client.RunClient` over a run served by another process.

    Make one with :meth:`connect`. Its event stream is the connection's one
    subscription (``events()`` may be iterated once); control replies arrive
    on it, so a control waits for a reader to be iterating it, as the
    console's always is.
    """

    def __init__(self, stream: ByteStream, reader: BufferedByteReceiveStream,
                 snapshot: RunSnapshot) -> None:
        self._stream = stream
        self._reader = reader
        self._snapshot = snapshot
        self._lock = anyio.Lock()
        self._numbers = itertools.count(1)
        self._replies: dict[int, tuple[anyio.Event, list[str | None]]] = {}
        self._closed = False

    @classmethod
    async def connect(cls, path: Path) -> SocketClient:
        """Attach to the run served at ``path``.

        Raises:
            TekError: nothing serves there (the run ended, or its process died).
        """
        try:
            stream = await anyio.connect_unix(path)
        except (FileNotFoundError, ConnectionRefusedError):  # it ended (or died) just now
            raise TekError(f"run {path.stem} is not running any more "
                           f"(`tek show {path.stem}` says how it ended)") from None
        except OSError as exc:
            raise TekError(f"cannot attach to {path.stem}: {exc.strerror or exc}") from None
        reader = BufferedByteReceiveStream(stream)
        try:
            await stream.send(_line({"attach": PROTOCOL_VERSION}))
            # The server encodes a big run's snapshot first (seconds at 100k
            # tasks): the time limit is on its first bytes, not on all of it.
            with anyio.fail_after(REPLY_S * 6):
                reader.feed_data(await stream.receive())
            first = await reader.receive_until(b"\n", MAX_LINE)
            message = await anyio.to_thread.run_sync(json.loads, first)
            if "error" in message:
                raise ProtocolError(message["error"])
            snapshot = await anyio.to_thread.run_sync(from_json, message)
        except (TimeoutError, anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError,
                ValueError, ProtocolError) as exc:
            await stream.aclose()
            why = str(exc) if isinstance(exc, ProtocolError) else f"no snapshot ({exc!r})"
            raise TekError(f"cannot attach to {path.stem}: {why}") from None
        return cls(stream, reader, snapshot)

    def snapshot(self) -> RunSnapshot:
        """The run as it was when this client attached (events() carries it on)."""
        return self._snapshot

    def events(self) -> AsyncIterator[Event]:
        """The run's events from the attach on; ends after RunFinished or when the run's process goes."""
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        try:
            while True:
                try:
                    raw = await self._reader.receive_until(b"\n", MAX_LINE)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError,
                        anyio.ClosedResourceError) as exc:
                    if self._closed:
                        return  # this client detached
                    raise ProtocolError("the run's process closed the connection") from exc
                message = json.loads(raw)
                if "reply" in message:
                    waiter = self._replies.get(message["reply"])
                    if waiter is not None:
                        waiter[1].append(message.get("error"))
                        waiter[0].set()
                    continue
                event = from_json(message)
                yield event
                if isinstance(event, RunFinished):
                    return
        finally:
            await self.aclose()

    async def control(self, command: Control) -> None:
        """Send one control and wait for the run's answer.

        Raises:
            ControlError: the run refused it, or the connection is gone.
        """
        if self._closed:
            raise ControlError("detached: the run's connection is closed")
        number = next(self._numbers)
        done: tuple[anyio.Event, list[str | None]] = (anyio.Event(), [])
        self._replies[number] = done
        try:
            async with self._lock:
                await self._stream.send(_line({"id": number, "control": to_json(command)}))
            with anyio.fail_after(REPLY_S):
                await done[0].wait()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise ControlError(f"the run's connection is gone ({exc!r})") from None
        except TimeoutError:
            raise ControlError("the run did not answer") from None
        finally:
            self._replies.pop(number, None)
        if done[1] and done[1][0] is not None:
            raise ControlError(done[1][0])

    async def aclose(self) -> None:
        """Detach (the run goes on)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                await self._stream.aclose()


# ------------------------------------------------------------------ finding runs


def served_runs() -> list[Path]:
    """Sockets of the runs being served now, newest first (dead ones are removed)."""
    return [p for p in sorted(sockets_dir().glob("*.sock"), reverse=True) if _listening(p)]


def find_served(ref: str) -> Path:
    """The socket of a live run: ``ref`` is a run id, a unique prefix, or ``last``.

    Sockets whose run is gone (nothing listens: its process was killed) are
    removed on the way.

    Raises:
        TekError: no live run matches, or the prefix matches several.
    """
    live = served_runs()
    if not live:
        which = "no run" if ref == "last" else f"no live run {ref!r}"
        raise TekError(f"{which} is being served: nothing is running now (`tek runs` lists "
                       "finished runs; start one with `tek run PLAN`)")
    if ref == "last":
        return live[0]
    matches = [p for p in live if p.stem == ref] or [p for p in live if p.stem.startswith(ref)]
    if not matches:
        names = ", ".join(p.stem for p in live[:5])
        raise TekError(f"no live run {ref!r} to attach to (live: {names})")
    if len(matches) > 1:
        raise TekError(f"run {ref!r} is ambiguous: {', '.join(p.stem for p in matches[:5])}")
    return matches[0]


def _listening(path: Path) -> bool:
    """True when a server accepts at ``path``; a socket nobody listens on is removed."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except ConnectionRefusedError:
        with contextlib.suppress(OSError):  # a socket made this instant may not listen yet
            if time.time() - path.stat().st_mtime > STALE_S:
                path.unlink()
        return False
    except OSError:
        return False
    finally:
        probe.close()
    return True

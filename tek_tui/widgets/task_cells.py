"""What the task table's cells say: the filter language, progress, and why a task ended.

Plain functions of a :class:`~core.events.TaskInfo`, shared by the table and
the log pane's header, tested without an app.

Filter syntax (``/``): words are ANDed; ``state:failed`` (prefix, ``,`` for
any of), ``tag:gpu``, ``agent:ml``, ``pool:shell``; any other word matches the
id or name, case-insensitively. :func:`filter_problems` names what cannot
match: a state that is none of :class:`~core.events.TaskState`'s, and a
``key:value`` word with an unknown key that no id or name contains either
(ids may hold ``:``, so such a word is text first).

Sorts (``o``): the orders, their names and the header's mark of each.

Why a task ended: the engine's ``reason`` (``"exit code 3"``, ``"timed out
after 3s"``, ``"upstream build cancelled"``, ``"cancelled by user"``), with
the exit code added when the reason does not say it, as ``tek show`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from core.events import TaskInfo, TaskState
from tek_tui.widgets.states import STATE_SYMBOLS

#: Sort orders cycled by the task table's sort key (``o``), with the column they sort on.
SORTS: tuple[str, ...] = ("plan", "state", "duration", "id")
#: How each sort is named to the user (the column says "time", as does the README).
SORT_LABELS = {"plan": "plan order", "state": "state", "duration": "time", "id": "id"}
#: The sorted column's mark: ``▼`` most first (the longest time, the most urgent
#: state: failed, running, ... succeeded), ``▲`` from the start (ids A to Z).
SORT_MARKS = {"state": " ▼", "duration": " ▼", "id": " ▲"}
#: Each state's place in the state sort, the most urgent first.
STATE_RANK = {state: i for i, state in enumerate(
    (TaskState.FAILED, TaskState.RUNNING, TaskState.RETRYING, TaskState.READY,
     TaskState.PENDING, TaskState.CANCELLED, TaskState.SKIPPED, TaskState.SUCCEEDED)
)}


def parse_filter(text: str) -> Callable[[TaskInfo], bool] | None:
    """Build a predicate from filter text; None when the text is blank.

    Args:
        text: e.g. ``"train state:run,fail tag:gpu"``.
    """
    words = text.split()
    if not words:
        return None
    tests: list[Callable[[TaskInfo], bool]] = []
    for word in words:
        field, _, value = word.partition(":")
        field, value = field.lower(), value.lower()  # STATE:FAILED is state:failed
        if field == "state" and value:
            tests.append(_state_test(tuple(v for v in value.split(",") if v)))
        elif field == "tag" and value:
            tests.append(_field_test(lambda t: [tag.lower() for tag in t.tags], value))
        elif field == "agent" and value:
            tests.append(_field_test(lambda t: [t.agent.lower()], value))
        elif field == "pool" and value:
            tests.append(_field_test(lambda t: [t.pool.lower()], value))
        else:
            tests.append(_text_test(word.lower()))
    return lambda task: all(test(task) for test in tests)


#: The filter's ``key:`` words.
FILTER_KEYS: tuple[str, ...] = ("state", "tag", "agent", "pool")


def filter_problems(text: str, tasks: Iterable[TaskInfo] = ()) -> list[str]:
    """What in filter ``text`` cannot mean anything, one message each (empty: fine).

    Args:
        text: the filter as typed.
        tasks: the tasks it filters (a ``key:value`` word with an unknown key
            is fine when it is text found in an id or name).
    """
    states = ", ".join(s.value for s in TaskState)
    problems: list[str] = []
    texts: list[str] | None = None
    for word in text.split():
        field, colon, value = word.partition(":")
        field = field.lower()
        if field == "state":
            bad = [v for v in value.lower().split(",") if v
                   and not any(s.value.startswith(v) for s in TaskState)]
            if bad or not value.strip(","):
                what = f"unknown state {', '.join(repr(v) for v in bad)}" if bad else \
                    "state: needs a value"
                problems.append(f"{what} (states: {states})")
        elif colon and field and value and field not in FILTER_KEYS:
            if texts is None:
                texts = [f"{t.id.lower()} {t.name.lower()}" for t in tasks]
            if not any(word.lower() in t for t in texts):
                problems.append(f"unknown filter key {field!r} (keys: "
                                f"{', '.join(k + ':' for k in FILTER_KEYS)}; "
                                "other words match an id or name)")
    return problems


def _state_test(prefixes: tuple[str, ...]) -> Callable[[TaskInfo], bool]:
    return lambda task: task.state.value.startswith(prefixes)


def _field_test(values: Callable[[TaskInfo], list[str]], wanted: str) -> Callable[[TaskInfo], bool]:
    return lambda task: wanted in values(task)


def _text_test(needle: str) -> Callable[[TaskInfo], bool]:
    return lambda task: needle in task.id.lower() or needle in task.name.lower()


def progress_text(task: TaskInfo) -> str:
    """Short progress: ``42%``, ``ep 3/10``, ``loss 0.123``, as known."""
    parts: list[str] = []
    if task.fraction is not None:
        parts.append(f"{task.fraction:4.0%}")
    p = task.progress
    if "epochs" in p and parts:
        # "ep 20/20" already says how far; the percentage would push the
        # loss past the column's edge ("loss 0.3" for 0.3123).
        parts = []
    if "epoch" in p:
        parts.append(f"ep {p['epoch']}/{p['epochs']}" if "epochs" in p else f"ep {p['epoch']}")
    loss = p.get("loss")
    if isinstance(loss, int | float):
        parts.append(f"loss {loss:.4g}")
    return " ".join(parts)


def reason_text(task: TaskInfo) -> str:
    """Why ``task`` failed, timed out, was cancelled or skipped (or is retrying); else ``""``.

    Args:
        task: the task as last reported.

    Returns:
        e.g. ``"exit code 3"``, ``"timed out after 3s (exit -15)"``,
        ``"upstream compile_04 cancelled"``; empty for a task that has not
        ended, or succeeded.
    """
    if task.state is TaskState.SUCCEEDED or not (
        task.state.is_terminal or task.state is TaskState.RETRYING
    ):
        return ""
    reason, code = task.reason, task.exit_code
    if code is None or code == 0 or str(code) in reason:
        return reason
    return f"{reason} (exit {code})" if reason else f"exit code {code}"


def outcome_text(task: TaskInfo) -> str:
    """``✗ failed: exit code 3``, ``⤼ skipped: upstream build failed``: the state and why.

    Empty for a task that has not ended (nor waits to retry): the header
    then says the attempt and whether the log follows.
    """
    if not (task.state.is_terminal or task.state is TaskState.RETRYING):
        return ""
    head = f"{STATE_SYMBOLS[task.state]} {task.state.value}"
    why = reason_text(task)
    return f"{head}: {why}" if why else head

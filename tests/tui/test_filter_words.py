"""The task filter's words: keys and values in any case."""

from __future__ import annotations

import dataclasses

from core.events import TaskState
from tek_tui.widgets.task_cells import filter_problems, parse_filter
from tests.tui.fakes import DEMO_TASKS

TASKS = [dataclasses.replace(t, state=TaskState.FAILED) if t.id == "lint" else t for t in DEMO_TASKS]


def test_keys_and_values_match_in_any_case() -> None:
    for text in ("state:failed", "STATE:FAILED", "State:Fail", "TAG:CI state:fail"):
        keep = parse_filter(text)
        assert keep is not None
        assert [t.id for t in TASKS if keep(t)] == ["lint"], text
        assert filter_problems(text, TASKS) == [], text


def test_an_unknown_key_is_still_named_whatever_its_case() -> None:
    (problem,) = filter_problems("OWNER:bob", DEMO_TASKS)
    assert problem.startswith("unknown filter key 'owner'")
    (problem,) = filter_problems("STATE:nope", DEMO_TASKS)
    assert problem.startswith("unknown state 'nope'")

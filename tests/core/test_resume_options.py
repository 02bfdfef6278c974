"""A resume's options: flags given now, then the run's recorded options, then config and defaults."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.errors import TekError
from core.run_options import RECORDED, RunOptions, resumed_options

#: What `tek run -j 1 --fail-fast --grace 0.5 --pool io=2` records.
RECORDED_RUN = json.loads(json.dumps(dataclasses.asdict(
    RunOptions(jobs=1, fail_fast=True, grace_s=0.5, pool_sizes={"io": 2}))))


def test_every_option_not_given_comes_from_the_recorded_run() -> None:
    now = RunOptions(grace_s=3.0, memory_floor_mb=0)  # from config and defaults
    opts = resumed_options(RECORDED_RUN, now)
    assert (opts.jobs, opts.fail_fast, opts.grace_s, opts.pool_sizes) == (1, True, 0.5, {"io": 2})
    assert opts.memory_floor_mb == 256  # recorded (the default then), not today's config
    assert (opts.cpus, opts.gpus, opts.memory_mb) == (None, None, None)  # the machine's, still


def test_an_option_given_wins_and_pool_sizes_merge() -> None:
    now = RunOptions(jobs=4, fail_fast=False, grace_s=2.0, pool_sizes={"shell": 3})
    opts = resumed_options(RECORDED_RUN, now, {"jobs", "fail_fast", "pool_sizes"})
    assert (opts.jobs, opts.fail_fast, opts.grace_s) == (4, False, 0.5)
    assert opts.pool_sizes == {"io": 2, "shell": 3}
    again = resumed_options(RECORDED_RUN, RunOptions(pool_sizes={"io": 5}), {"pool_sizes"})
    assert again.pool_sizes == {"io": 5}


def test_a_recorded_none_stays_none_whatever_the_config_says() -> None:
    """jobs None is "the machine's CPUs": never the config's, never a count."""
    opts = resumed_options({"jobs": None, "gpus": None}, RunOptions(jobs=8, gpus=2))
    assert (opts.jobs, opts.gpus) == (None, None)


def test_what_the_run_did_not_record_comes_from_config_and_defaults() -> None:
    """A console run records its jobs only; an older tek may have recorded less."""
    now = RunOptions(grace_s=7.0, memory_floor_mb=100, wait_for_start=True, stay_open=True)
    opts = resumed_options({"jobs": 2, "console": True}, now)
    assert opts == dataclasses.replace(now, jobs=2)
    assert resumed_options({}, now) == now


def test_how_a_front_end_drives_the_run_is_never_taken_from_the_journal() -> None:
    assert "wait_for_start" not in RECORDED and "stay_open" not in RECORDED
    opts = resumed_options({"wait_for_start": True, "stay_open": True}, RunOptions())
    assert not opts.wait_for_start and not opts.stay_open


@pytest.mark.parametrize(
    ("name", "value"),
    [("jobs", 0), ("jobs", "4"), ("jobs", True), ("cpus", 0), ("gpus", 2000), ("memory_mb", -1),
     ("grace_s", None), ("grace_s", float("nan")), ("fail_fast", 1), ("pool_sizes", {"io": 0}),
     ("pool_sizes", [1])],
)
def test_a_recorded_value_that_is_not_valid_is_refused_unless_given_again(name: str, value: object) -> None:
    with pytest.raises(TekError, match=rf"run R1's recorded option {name} = .* is not valid"):
        resumed_options({name: value}, RunOptions(), run_id="R1")
    given = RunOptions(pool_sizes={"io": 1}) if name == "pool_sizes" else RunOptions()
    assert resumed_options({name: value}, given, {name}) == given  # given again: not looked at

"""Properties of plan import/export, checked on generated input (hypothesis).

- Any valid plan survives export -> import unchanged.
- Random bytes, and random text shaped like CSV, either read as a plan or raise
  tek's ``PlanError``: never another exception.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import PlanError
from core.plan import Plan, Task
from core.plan_io import read_plan_bytes, read_plan_text
from core.plan_write import plan_to_csv

# Values come back stripped of surrounding whitespace, and "\r\n" inside a
# quoted value becomes "\n": generate what survives that (and no NUL: a plan
# with one is refused).
_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\r\x00")
text = st.text(_chars, max_size=15).map(str.strip)
word = st.text(_chars.filter(lambda c: c != ";"), min_size=1, max_size=8).map(str.strip).filter(bool)
ident = st.from_regex(r"[A-Za-z0-9_.:-]{1,10}", fullmatch=True)
env_key = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
env_value = st.text(_chars.filter(lambda c: c != ";"), max_size=8).map(str.strip)
finite = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    """A valid plan: unique ids, deps on earlier tasks only, rows then shuffled."""
    ids = draw(st.lists(ident, min_size=1, max_size=8, unique=True))
    meta_columns = draw(st.lists(st.sampled_from(["x_owner", "x_ticket", "x_"]), unique=True))
    tasks = []
    for i, task_id in enumerate(ids):
        agent = draw(st.sampled_from(["shell", "noop"]))
        if agent == "shell":
            command = draw(text.filter(bool))
        else:
            command = draw(st.sampled_from(["", "0", "0.5", "2"]))
        meta = tuple((c, v) for c in meta_columns if (v := draw(text)))
        tasks.append(
            Task(
                id=task_id,
                agent=agent,
                command=command,
                deps=tuple(draw(st.lists(st.sampled_from(ids[:i]), max_size=3))) if i else (),
                name=draw(text),
                pool=draw(st.one_of(st.just(""), ident)),
                cpus=draw(finite),
                gpus=draw(st.integers(0, 8)),
                memory_mb=draw(st.integers(0, 2**40)),
                priority=draw(st.integers(-(2**40), 2**40)),
                retries=draw(st.integers(0, 10)),
                retry_backoff_s=draw(finite),
                timeout_s=draw(st.one_of(st.none(), finite.filter(lambda f: f > 0))),
                env=tuple(draw(st.lists(st.tuples(env_key, env_value), max_size=3,
                                         unique_by=lambda kv: kv[0]))),  # a key once
                cwd=draw(text),
                tags=tuple(draw(st.lists(word, max_size=3))),
                meta=meta,
            )
        )
    order = draw(st.permutations(tasks))
    return Plan(tuple(order), meta_columns=tuple(meta_columns))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans())
def test_export_then_import_gives_the_same_plan(plan: Plan) -> None:
    again = read_plan_text(plan_to_csv(plan))
    assert again == plan
    assert plan_to_csv(again) == plan_to_csv(plan)


_pieces = st.sampled_from(
    ["id", "agent", "command", "deps", "cpus", "env", "x_m", "noop", "shell", "a", "b", "1",
     "-1", "nan", "K=V", ",", ",", '"', '"', "\n", "\n", "\r\n", "\r", ";", " ", "\t", "\ufeff",
     "é", "\x00", "\u2028", "\x1f"]
)
csv_like = st.one_of(
    st.lists(_pieces, max_size=40).map("".join),
    st.lists(_pieces, max_size=40).map(lambda p: "id,agent,command,deps\n" + "".join(p)),
)


@settings(max_examples=300, deadline=None)
@given(csv_like)
def test_csv_shaped_text_reads_or_raises_plan_error(text: str) -> None:
    try:
        plan = read_plan_text(text)
    except PlanError as exc:
        assert exc.problems and all("\n" not in p for p in exc.problems)
    else:
        assert isinstance(plan, Plan)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), csv_like.map(lambda t: t.encode("utf-8") + b"\xff")))
def test_random_bytes_read_or_raise_plan_error(data: bytes) -> None:
    try:
        read_plan_bytes(data)
    except PlanError as exc:
        assert exc.problems and all("\n" not in p for p in exc.problems)

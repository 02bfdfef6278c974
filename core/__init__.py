"""tek's engine: plans, DAG analysis, the run, agents, journal and telemetry.

Nothing here imports textual, and nothing imports torch at module level: the
console and the CLI load these modules and must start fast. Submodules are
imported explicitly (``from core.plan import Plan``); this file stays empty of
re-exports so that ``import core`` costs nothing.
"""

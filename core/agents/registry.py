"""Which agents exist: the built-ins and plug-ins from ``tek.agents`` entry points.

Built-ins are imported lazily (the ML agent's module must not pull torch into
the engine, and ``tek validate`` should not pay for agents it does not use).
A plug-in that fails to load is reported once as a warning and left out,
never a crash: the plan then fails validation with "unknown agent".
"""

from __future__ import annotations

import importlib
import warnings

from core.agents.base import Agent

ENTRY_POINT_GROUP = "tek.agents"

_BUILTINS: dict[str, str] = {
    "shell": "core.agents.shell:ShellAgent",
    "noop": "core.agents.noop:NoopAgent",
    "ml": "core.agents.ml:MlAgent",
    "plan": "core.agents.plan:PlanAgent",
}

_plugins: dict[str, str] | None = None
_instances: dict[str, Agent] = {}


def _plugin_targets() -> dict[str, str]:
    global _plugins
    if _plugins is None:
        # Only when a name is not a built-in: listing entry points reads every
        # installed distribution's metadata (~15 ms at each start otherwise).
        from importlib.metadata import entry_points

        _plugins = {}
        try:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if ep.name not in _BUILTINS:
                    _plugins[ep.name] = ep.value
        except Exception as exc:  # a broken distribution must not stop tek
            warnings.warn(f"tek: could not list agent plug-ins: {exc}", stacklevel=2)
    return _plugins


def known_agents() -> list[str]:
    """Names of every agent: built-ins first, then plug-ins, sorted."""
    return list(_BUILTINS) + sorted(_plugin_targets())


def is_known_agent(name: str) -> bool:
    """True for a built-in or plug-in agent name (plug-ins are listed only if needed)."""
    return name in _BUILTINS or name in _plugin_targets()


def register_agent(name: str, target: str) -> None:
    """Register an agent class by ``module:Class`` (used by tests and embedders)."""
    _plugin_targets()[name] = target
    _instances.pop(name, None)


def get_agent(name: str) -> Agent | None:
    """The agent called ``name``, or None when unknown or broken (warns once)."""
    agent = _instances.get(name)
    if agent is not None:
        return agent
    target = _BUILTINS.get(name) or _plugin_targets().get(name)
    if target is None:
        return None
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
        agent = cls()
        if not isinstance(agent, Agent):
            raise TypeError(f"{target} is not a tek Agent")
    except Exception as exc:
        warnings.warn(f"tek: agent {name!r} ({target}) failed to load: {exc}", stacklevel=2)
        _plugin_targets().pop(name, None)
        return None
    _instances[name] = agent
    return agent

"""Agents: what runs one attempt of a task. See ``base`` and ``registry``."""

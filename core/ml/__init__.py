"""tek's machine-learning side: op language, data, models, training, registry, workers.

This package's ``__init__`` imports nothing. Torch-free modules, safe in the
engine and the CLI: ``ops`` and ``op_values`` (the ``OP key=value``
language, checked at plan import), ``registry`` (models on disk),
``selection`` (the ``select`` op), ``device`` (device choice as pure logic),
``context`` (what an op sees of its attempt) and ``pool`` (warm worker
processes, parent side). Modules that import torch (``data``,
``models``, ``train``, ``evaluate``, ``convert``) run only inside an ML
worker (``python -m core.ml.worker``) or lazily in ``tek models export``.
"""

from __future__ import annotations

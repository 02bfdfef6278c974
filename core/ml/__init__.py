"""tek's machine-learning side: op language, data, models, training, registry, workers.

This package's ``__init__`` imports nothing: ``core.ml.ops`` and
``core.ml.registry`` are torch-free and load in the engine and CLI; every
module that imports torch (``models``, ``data``, ``train``, ``evaluate``,
``convert``) is only imported inside an ML worker process
(``core.ml.worker``) or lazily by ``tek models export``.
"""

from __future__ import annotations

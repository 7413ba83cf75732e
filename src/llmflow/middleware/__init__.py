"""Ready-made middleware (SPEC §14), each registered with the §5 registries.

Cost and budgets: :class:`CostRecorder` (``cost.usd``/``cost.source`` on every
LLM end event), :func:`price`, :class:`Budget`. Caching and record/replay:
:class:`ResponseCache`, :func:`replay`. See ``docs/middleware.md``.
"""

from llmflow.middleware._budget import Budget
from llmflow.middleware._cache import ResponseCache
from llmflow.middleware._cost import Cost, CostRecorder, UnknownModelPrice, price
from llmflow.middleware._replay import Replay, ReplayError, ReplayMissError, replay

__all__ = [
    "Budget",
    "Cost",
    "CostRecorder",
    "Replay",
    "ReplayError",
    "ReplayMissError",
    "ResponseCache",
    "UnknownModelPrice",
    "price",
    "replay",
]

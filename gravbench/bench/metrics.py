"""The metrics and the one success rule, under their older name.

They live in :mod:`gravbench.metrics` (a low layer: providers and refiners
stop on the success rule, so it cannot sit in the harness above them). This
module only re-exports them, so ``gravbench.bench.metrics.is_success`` keeps
working for code written against it.
"""

from ..metrics import *  # noqa: F401,F403
from ..metrics import DEPTH_BANDS, __all__  # noqa: F401

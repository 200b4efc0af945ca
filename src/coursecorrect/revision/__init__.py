"""Agent-R stage 2: revision trajectories (and the baselines' data) from MCTS trees.

- :class:`PairConfig`, :func:`find_pairs` — (bad, good) leaf pairs of a tree (paper or released rule).
- :mod:`.critics` — transition points: ``direct``, ``value`` and ``model`` (the actor as verifier).
- :func:`splice` — bad prefix + revision turn + good continuation, with per-message loss flags.
- :class:`BuildConfig`, :func:`build_data`, :func:`gold_conversations`, :func:`write_data` — datasets.
"""

from coursecorrect.revision.build import (
    BuildConfig,
    BuildResult,
    build_data,
    build_gold,
    gold_conversations,
    write_data,
)
from coursecorrect.revision.critics import DirectCritic, ModelCritic, Transition, ValueCritic, parse_judgement
from coursecorrect.revision.pairs import Pair, PairConfig, find_pairs
from coursecorrect.revision.splice import REVISION_THOUGHTS, splice

__all__ = [
    "REVISION_THOUGHTS", "BuildConfig", "BuildResult", "DirectCritic", "ModelCritic", "Pair", "PairConfig",
    "Transition", "ValueCritic", "build_data", "build_gold", "find_pairs", "gold_conversations", "parse_judgement",
    "splice", "write_data",
]

"""Agent-R stage 1: Monte Carlo tree search over agent trajectories, batched across trees.

- :class:`MCTSConfig`, :class:`TreeSearch` — the search of one tree (paper or released variant), as a
  generator of LLM requests.
- :func:`search_trees` (:mod:`.batch`) — many trees at once, one backend call per step; on Ray workers with
  :class:`RayConfig` (:mod:`.distributed`).
- :class:`CollectConfig`, :func:`collect` (:mod:`.collect`) — a collection run: tree files written atomically,
  resumable, searched here or on Ray.
- :class:`Tree`, :class:`Node` — the tree and its JSON file (defined in :mod:`coursecorrect.data.tree`, re-exported
  here); :func:`tree_stats`; :mod:`.viewer`.
"""

from coursecorrect.data.tree import Node, Tree, TreeFileError, load_trees, tree_path
from coursecorrect.search.batch import Counters, search_trees
from coursecorrect.search.collect import CollectConfig, collect
from coursecorrect.search.distributed import RayConfig
from coursecorrect.search.mcts import MCTSConfig, Request, TreeSearch, uct
from coursecorrect.search.stats import tree_stats

__all__ = [
    "CollectConfig", "Counters", "MCTSConfig", "Node", "RayConfig", "Request", "Tree", "TreeFileError", "TreeSearch",
    "collect", "load_trees", "search_trees", "tree_path", "tree_stats", "uct",
]

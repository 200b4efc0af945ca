"""Agent-R stage 1: Monte Carlo tree search over agent trajectories, batched across trees.

- :class:`MCTSConfig`, :class:`TreeSearch` — the search of one tree (paper or released variant), as a
  generator of LLM requests.
- :class:`CollectConfig`, :func:`collect`, :func:`search_trees` — many trees at once, one backend call per
  step, tree files written atomically, resumable; on Ray workers with :class:`RayConfig`
  (:mod:`.distributed`).
- :class:`Tree`, :class:`Node` — the tree and its JSON file; :func:`tree_stats`; :mod:`.viewer`.
"""

from coursecorrect.search.collect import CollectConfig, Counters, RayConfig, collect, search_trees
from coursecorrect.search.mcts import MCTSConfig, Request, TreeSearch, uct
from coursecorrect.search.stats import tree_stats
from coursecorrect.search.tree import Node, Tree, TreeFileError, load_trees, tree_path

__all__ = [
    "CollectConfig", "Counters", "MCTSConfig", "Node", "RayConfig", "Request", "Tree", "TreeFileError", "TreeSearch",
    "collect", "load_trees", "search_trees", "tree_path", "tree_stats", "uct",
]

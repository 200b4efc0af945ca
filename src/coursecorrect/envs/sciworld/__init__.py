"""SciWorld: ScienceWorld's science tasks through the ``scienceworld`` package (Java), AgentGym's task numbering."""

from coursecorrect.envs.sciworld.env import SciWorldEnv
from coursecorrect.envs.sciworld.tasks import TASKS, SciWorldTask, locate, task_id_of

__all__ = ["TASKS", "SciWorldEnv", "SciWorldTask", "locate", "task_id_of"]

"""The agent: ReAct prompting, action parsing, context truncation and the lock-step episode runner."""

from coursecorrect.agent.parsing import NO_ACTION_OBSERVATION, parse_action
from coursecorrect.agent.prompt import episode_start, truncate_context
from coursecorrect.agent.runner import AgentConfig, Episode, EpisodeStart, run_episodes

__all__ = [
    "NO_ACTION_OBSERVATION", "AgentConfig", "Episode", "EpisodeStart", "episode_start", "parse_action", "run_episodes",
    "truncate_context",
]

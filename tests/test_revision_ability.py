"""Revision ability: failed episodes are cut at a random step, replayed, and continued by a model."""

from __future__ import annotations

import pytest

from coursecorrect.agent.prompt import episode_start
from coursecorrect.data.conversation import Conversation, Message, write_conversations
from coursecorrect.envs import EnvConfig, make_env
from coursecorrect.errors import CourseCorrectError
from coursecorrect.eval.revision_ability import RevisionAbilityConfig, cut_points, failed_episodes, revision_ability
from doubles import ScriptedLLM

BREAD = 12  # TextCraft task 12: get 3 wheat, craft bread


def _failed_episode(task_id: int, actions: list[str]) -> Conversation:
    """A recorded failure: ``actions`` played in the env, the goal never reached."""
    env = make_env("textcraft")
    messages = episode_start(env.instruction, env.reset(task_id))
    for action in actions:
        messages += [Message(role="assistant", content=f"Action: {action}", loss=True),
                     Message(role="user", content=env.step(action).observation)]
    meta = {"task_id": task_id, "success": False, "reward": 0.0, "steps": len(actions), "actions": actions}
    return Conversation(messages=messages, meta=meta)


def _expert_from_history(conversation) -> str:
    """Play the expert plan for bread, skipping the steps the conversation shows as already done."""
    said = [m["content"] for m in conversation if m["role"] == "assistant"]
    if "Action: get 3 wheat" not in said:
        return "Action: get 3 wheat"
    return "Action: craft 1 bread using 3 wheat"


def test_cut_points_are_seeded_and_within_the_episode():
    episodes = [_failed_episode(BREAD, ["inventory"] * n) for n in (1, 3, 5)]
    starts = cut_points(episodes, seed=3)
    assert starts == cut_points(episodes, seed=3)
    for start, episode in zip(starts, episodes, strict=True):
        assert 1 <= len(start.actions) <= episode.meta["steps"]
        assert len(start.messages) == 3 + 2 * len(start.actions)
        assert start.messages[-1].role == "user"


def test_continuations_replay_the_prefix_and_count_successes(tmp_path):
    failed = tmp_path / "eval"
    episodes = [
        _failed_episode(BREAD, ["get 3 wheat", "inventory", "inventory"]),  # wheat already fetched in the prefix
        _failed_episode(BREAD, ["inventory", "get 1 jump"]),
        _failed_episode(0, ["inventory"]),  # the scripted model cannot solve task 0
    ]
    write_conversations(failed / "episodes.jsonl", episodes)
    config = RevisionAbilityConfig(failed=failed, env=EnvConfig(), max_rounds=3)
    summary = revision_ability(config, tmp_path / "out", llm=ScriptedLLM(_expert_from_history), progress=False)
    assert summary["failed_episodes"] == 3
    assert summary["revision_success_rate"] == pytest.approx(2 / 3)
    # A finished folder is read back, not played again.
    assert revision_ability(config, tmp_path / "out", llm=ScriptedLLM(lambda c: 1 / 0), progress=False) == summary


def test_rounds_after_the_cut_are_capped(tmp_path):
    write_conversations(tmp_path / "eval" / "episodes.jsonl", [_failed_episode(0, ["inventory"] * 4)])
    config = RevisionAbilityConfig(failed=tmp_path / "eval", env=EnvConfig(max_steps=4), max_rounds=2)
    summary = revision_ability(config, tmp_path / "out", llm=ScriptedLLM(lambda c: "Action: inventory"),
                               progress=False)
    assert summary["average_rounds_after_cut"] == 2


def test_a_folder_without_episodes_is_a_clear_error(tmp_path):
    with pytest.raises(CourseCorrectError, match="no episodes.jsonl"):
        failed_episodes(tmp_path)

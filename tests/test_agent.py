"""Agent: action parsing, context truncation, and the lock-step runner (with a scripted test double)."""

from __future__ import annotations

import pytest

from coursecorrect.agent import NO_ACTION_OBSERVATION, AgentConfig, episode_start, parse_action, run_episodes
from coursecorrect.agent.prompt import truncate_context
from coursecorrect.data import Message
from coursecorrect.envs.textcraft import TextCraftEnv
from doubles import ScriptedLLM


@pytest.mark.parametrize(
    ("response", "action"),
    [
        ("Thought: I need wheat.\nAction: get 3 wheat", "get 3 wheat"),
        ("Thought:\nx\n\nAction:\nget 3 wheat\n", "get 3 wheat"),
        ("Action: get 1 a\nThought: no wait\nAction: get 2 b", "get 2 b"),
        ("action: inventory", "inventory"),
        ("ACTION :  craft 4 stick   using 2 oak planks.", "craft 4 stick using 2 oak planks"),
        ("Action: `get 1 oak logs`", "get 1 oak logs"),
        ('Action: "inventory"', "inventory"),
        ("Action: **get 1 stone**", "get 1 stone"),
        ("Action: [inventory]", "inventory"),
        ("get 1 oak logs", "get 1 oak logs"),
        ("  inventory  \n", "inventory"),
        ("Action: 获取 1 木头", "获取 1 木头"),
        ("Thought: I should get wood.", None),
        ("I will craft sticks.\nThen planks.", None),
        ("", None),
        ("   \n\n", None),
        ("Action:", None),
        ("Action:   \n  ", None),
        ("Thought: a\nAction: get 1 x\nObservation: Got 1 x", "get 1 x"),
    ],
)
def test_parse_action(response, action):
    assert parse_action(response) == action


def test_parse_huge_response():
    assert parse_action("Thought: " + "blah " * 2000) is None
    action = parse_action("Action: get 1 " + "x" * 10_000)
    assert action is not None and len(action) <= 500


def _messages(turns: int) -> list[Message]:
    messages = episode_start("INSTRUCTION " * 50, "TASK " * 50)
    for i in range(turns):
        messages += [Message(role="assistant", content=f"Action: step {i} " + "x" * 200),
                     Message(role="user", content=f"obs {i} " + "y" * 200)]
    return messages


def test_truncation_keeps_instruction_and_task():
    messages = _messages(20)
    kept = truncate_context(messages, max_tokens=600)
    assert kept[:3] == messages[:3]
    assert kept[-2:] == messages[-2:], "the newest turn stays"
    assert len(kept) < len(messages) and (len(kept) - 3) % 2 == 0
    assert kept[3].role == "assistant", "whole (assistant, observation) pairs are dropped"
    assert truncate_context(messages, max_tokens=10**6) == messages


def test_truncation_never_drops_the_last_turn():
    messages = _messages(3)
    assert truncate_context(messages, max_tokens=1) == messages[:3] + messages[-2:]


def _expert_llm():
    """Plays the expert's plan, read from the task in the prompt (a scripted policy for exact tests)."""
    env = TextCraftEnv()
    plans: dict[str, list[str]] = {}

    def respond(conversation):
        task = conversation[2]["content"]
        if task not in plans:
            for task_id in range(env.num_tasks):
                if env.reset(task_id) == task:
                    break
            plans[task] = env.expert_actions()
        done = sum(1 for m in conversation[3:] if m["role"] == "assistant")
        return f"Thought: next.\nAction: {plans[task][done]}"

    return respond


def test_runner_batches_lock_step_and_solves_with_expert():
    llm = ScriptedLLM(_expert_llm())
    tasks = [0, 12, 140, 300, 420, 530]
    episodes = list(run_episodes(lambda: TextCraftEnv(max_steps=100), llm, tasks, AgentConfig(batch_size=4)))
    assert sorted(e.task_id for e in episodes) == sorted(tasks)
    assert all(e.success and e.terminated for e in episodes)
    assert max(llm.batch_sizes) == 4 and llm.batch_sizes[0] == 4, "one backend call per step for the batch"
    assert sum(llm.batch_sizes) == sum(len(e.actions) for e in episodes)
    conversation = episodes[0].to_conversation()
    roles = [m.role for m in conversation.messages]
    assert roles[:3] == ["user", "assistant", "user"] and roles[3::2] == ["assistant"] * len(episodes[0].actions)
    assert [m.loss for m in conversation.messages if m.role == "assistant"][0] is False, "the 'Ok.' is not trained"
    assert all(m.loss for m in conversation.messages[3:] if m.role == "assistant")


def test_runner_gives_no_action_an_observation_and_truncates():
    llm = ScriptedLLM(lambda conversation: "I am not sure what to do.\nMaybe craft?")
    (episode,) = run_episodes(lambda: TextCraftEnv(max_steps=3), llm, [5], AgentConfig())
    assert episode.truncated and not episode.success and episode.actions == [None, None, None]
    assert episode.messages[-1].content == NO_ACTION_OBSERVATION


def test_runner_reuses_envs():
    made = []

    def make():
        made.append(TextCraftEnv(max_steps=2))
        return made[-1]

    llm = ScriptedLLM(lambda conversation: "Action: inventory")
    assert len(list(run_episodes(make, llm, list(range(10)), AgentConfig(batch_size=3)))) == 10
    assert len(made) == 3

"""Transition points: where on a bad path the first error happened (Agent-R's model-guided critique).

A critic maps a batch of pairs to a :class:`Transition` each. ``t_prime`` is the 1-based depth of the first
wrong step of the bad path; that step is *included* in the bad prefix of the revision trajectory.

- ``direct``: the bad leaf itself (the Direct-Revision baseline).
- ``value`` (not in the paper): the first step whose MCTS value Q is at most ``threshold``; with the default
  0.0, the first step from which the search never saw a success. None → the bad leaf.
- ``model``: the actor as verifier. Every step of every bad path is judged Good / Bad / Uncertain in one
  batched ``generate`` call; the first step judged neither good nor uncertain is the error. None → the leaf.

Whatever a critic says, ``t_prime`` is clamped to the bad path's own steps (:meth:`Pair.clamp`): a step the
successful path shares cannot be the first error. ``flagged`` keeps the critic's unclamped answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from coursecorrect.data.tree import Node, Tree
from coursecorrect.llm.base import LLM, SamplingParams
from coursecorrect.revision.pairs import Pair

Verdict = Literal["good", "bad", "uncertain", "unparsed"]
CONTINUE: tuple[Verdict, ...] = ("good", "uncertain")


@dataclass(frozen=True)
class Transition:
    """A critic's answer for one pair. ``flagged``: the step the critic named (None: no step), before the
    clamp. ``verdicts`` / ``texts``: the model critic's verdict and raw reply for each bad-path step."""

    t_prime: int
    critic: str
    flagged: int | None
    verdicts: tuple[Verdict, ...] = ()
    texts: tuple[str, ...] = ()


class Critic(Protocol):
    """Finds the first wrong step of each pair's bad path: ``direct``, ``value`` or ``model`` (see the module).

    ``name`` is recorded in each :class:`Transition` and in the revision data's metadata.
    """

    name: str

    def __call__(self, pairs: Sequence[Pair]) -> list[Transition]:
        """One :class:`Transition` per pair, in order, its ``t_prime`` clamped with :meth:`Pair.clamp`."""


class DirectCritic:
    """t' = the bad leaf: the whole bad path is kept (Direct-Revision)."""

    name = "direct"

    def __call__(self, pairs: Sequence[Pair]) -> list[Transition]:
        return [Transition(p.clamp(p.bad.depth), self.name, p.bad.depth) for p in pairs]


class ValueCritic:
    """t' = the first bad-path step whose MCTS Q is at most ``threshold`` (else the bad leaf)."""

    name = "value"

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = threshold

    def __call__(self, pairs: Sequence[Pair]) -> list[Transition]:
        out = []
        for pair in pairs:
            flagged = next((n.depth for n in pair.bad.path()[1:] if n.q <= self.threshold), None)
            out.append(Transition(pair.clamp(flagged or pair.bad.depth), self.name, flagged))
        return out


CRITIC_PROMPT = """You are reviewing the work of an agent that solves a task step by step. Judge one of its steps.

# The agent's instructions
{instruction}

# The task
{task}

# Earlier steps
{history}

# The step to judge: step {step}
Action: {action}
Observation: {observation}

# Your answer
Was step {step} good or bad for completing the task, given the steps before it?
- Good: the step is greatly helpful toward completing the task.
- Bad: the step is greatly harmful to completing the task, for example it fails, undoes progress or leads away \
from the goal.
- Uncertain: the step is neither greatly helpful nor greatly harmful, or you cannot judge it.

First give your reasons in a few sentences. Then end with one last line that is exactly "Judgement: Good", \
"Judgement: Bad" or "Judgement: Uncertain"."""

MAX_REPLY_CHARS = 300


def _action_text(node: Node) -> str:
    if node.action is not None:
        return node.action
    reply = " ".join((node.response or "").split())[:MAX_REPLY_CHARS]
    return f'(no valid action; the agent replied: "{reply}")'


def critic_prompt(tree: Tree, node: Node) -> list[dict[str, str]]:
    """The chat that asks the actor to judge ``node``'s step: the task (the env's instruction and first
    observation), the earlier actions and observations, and this step's action and observation."""
    steps = node.path()[1:]
    history = "\n\n".join(
        f"Step {s.depth}\nAction: {_action_text(s)}\nObservation: {s.observation}" for s in steps[:-1]
    )
    prompt = CRITIC_PROMPT.format(
        instruction=tree.root_messages[0].content, task=tree.root_messages[-1].content,
        history=history or "None: this is the agent's first step.", step=node.depth,
        action=_action_text(node), observation=node.observation,
    )
    return [{"role": "user", "content": prompt}]


JUDGEMENT = re.compile(r"judge?ment\s*:", re.IGNORECASE)
VERDICT_WORDS = ("good", "bad", "uncertain")


def parse_judgement(text: str) -> Verdict:
    """The verdict after the last "Judgement:" (any case; "Judgment:" too): the first non-empty line after
    it, with punctuation and markup ignored, must start with good, bad or uncertain and name no other
    verdict ("Good | Bad | Uncertain", an echo of the question, is unparsed)."""
    markers = list(JUDGEMENT.finditer(text))
    if not markers:
        return "unparsed"
    rest = text[markers[-1].end():]
    line = next((line for line in rest.splitlines() if line.strip()), "")
    words = re.findall(r"[a-z]+", line.lower())
    named = [w for w in words if w in VERDICT_WORDS]
    if words and words[0] in VERDICT_WORDS and len(set(named)) == 1:
        return words[0]  # type: ignore[return-value]
    return "unparsed"


class ModelCritic:
    """The actor as verifier: all steps of all bad paths (each distinct node once) in one greedy
    ``generate`` call; a pair's t' is its first step judged neither good nor uncertain."""

    name = "model"

    def __init__(self, llm: LLM, max_new_tokens: int = 128) -> None:
        self.llm = llm
        self.params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens)

    def __call__(self, pairs: Sequence[Pair]) -> list[Transition]:
        index: dict[int, int] = {}  # id(node) -> prompt number
        prompts = []
        for pair in pairs:
            for node in pair.bad.path()[1:]:
                if id(node) not in index:
                    index[id(node)] = len(prompts)
                    prompts.append(critic_prompt(pair.tree, node))
        replies = [samples[0].text for samples in self.llm.generate(prompts, self.params)] if prompts else []
        verdicts = [parse_judgement(text) for text in replies]
        out = []
        for pair in pairs:
            steps = [index[id(node)] for node in pair.bad.path()[1:]]
            said = tuple(verdicts[i] for i in steps)
            flagged = next((depth for depth, v in enumerate(said, start=1) if v not in CONTINUE), None)
            texts = tuple(replies[i] for i in steps)
            out.append(Transition(pair.clamp(flagged or pair.bad.depth), self.name, flagged, said, texts))
        return out

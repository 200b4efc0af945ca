"""Lock-step multi-turn rollouts over a batch of problems: one backend call per turn for all of them.

Shared by collection (best-of-N per turn, stop at the first correct turn, drop degenerate samples) and
evaluation (every turn told "incorrect", all samples kept for majority votes).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from coursecorrect.envs.math import MathEnv
from coursecorrect.llm import LLM, SamplingParams
from coursecorrect.rise.prompt import is_degenerate, rise_messages
from coursecorrect.rise.records import Rollout, Sample, Turn


@dataclass(frozen=True)
class TurnPlan:
    """Who answers a turn and how: ``params.n`` samples from ``llm``, named ``model`` in the records."""

    llm: LLM
    model: str
    params: SamplingParams


def problem_seed(seed: int, task_id: int, turn: int) -> int:
    """The sampling seed of one problem's turn (below 2**30, so any server accepts it)."""
    return zlib.crc32(f"rise:{seed}:{task_id}:{turn}".encode()) & (2**30 - 1)


def roll_out(
    env: MathEnv,
    task_ids: Sequence[int],
    plans: Sequence[TurnPlan],
    *,
    seed: int,
    stop_on_success: bool,
    window: int | None = None,
    drop_degenerate: bool = False,
    keep_samples: bool = False,
) -> list[Rollout]:
    """Roll out ``task_ids`` for ``len(plans)`` turns; return one record per problem.

    Each turn keeps the best sample (highest grade, ties to the first); with ``drop_degenerate`` samples
    that loop on a phrase are not candidates, and a problem whose samples all loop ends there. Each problem's
    turn samples with a seed of its own (from ``seed``, its task id and the turn), so a record does not depend on
    which problems share its backend calls.
    """
    demo = tuple(env.demo)  # reasoning-gym builds its demo on each access
    records: list[Rollout] = []
    for task_id in task_ids:
        question = env.reset(task_id)
        records.append(Rollout(
            task_id=task_id, question=question, answer=env.problem.answer, env=env.name,
            instruction=env.instruction, demo=list(demo), turns=[],
        ))
    active = list(range(len(records)))
    for turn, plan in enumerate(plans):
        if not active:
            break
        conversations = [
            rise_messages(env.instruction, demo, records[i].question, [t.response for t in records[i].turns], window)
            for i in active
        ]
        seeds = tuple(problem_seed(seed, records[i].task_id, turn) for i in active)
        outputs = plan.llm.generate(conversations, replace(plan.params, seed=None, seeds=seeds))
        still = []
        for i, samples in zip(active, outputs, strict=True):
            record = records[i]
            env.reset(record.task_id)
            graded = [(s, env.grade(s.text), is_degenerate(s.text)) for s in samples]
            candidates = [g for g in graded if not (drop_degenerate and g[2])]
            if not candidates:
                record.stop = "degenerate"
                continue
            best, grade, _ = max(candidates, key=lambda g: g[1])  # max keeps the first of equal grades
            record.turns.append(Turn(
                response=best.text, grade=grade, key=env.answer_key(best.text), model=plan.model,
                samples=len(samples), correct_samples=sum(g[1] == 1 for g in graded),
                degenerate_samples=sum(g[2] for g in graded), finish_reason=best.finish_reason,
                all=[Sample(response=s.text, grade=g, key=env.answer_key(s.text)) for s, g, _ in graded]
                if keep_samples else [],
            ))
            record.solved = record.solved or grade == 1
            if stop_on_success and grade == 1:
                record.stop = "solved"
            else:
                still.append(i)
        active = still
    return records

"""reasoning-gym's procedural tasks (offline, any size) as multi-turn math envs: RISE's CPU default.

Problems come from ``reasoning_gym.create_dataset(task, seed=seed, **task_config)``; repeated questions are
dropped, the first ``train_size`` distinct ones are the train split and the next ``test_size`` the test split,
so the two never share a question. Answers are graded by the task's own ``score_answer`` on the response's
last ``\\boxed{}`` (score 1 = correct; no boxed answer = -1).
"""

from __future__ import annotations

from typing import Any

from coursecorrect.envs.math.env import MathEnv
from coursecorrect.envs.math.grading import last_boxed
from coursecorrect.envs.math.problems import Problem
from coursecorrect.errors import EnvError

DEFAULT_TASK = "chain_sum"
DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    "chain_sum": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2},
    "basic_arithmetic": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2},
}
DEMO_SEED_OFFSET = 10**6  # the demo comes from a stream of its own, never from train or test


class ReasoningGymEnv(MathEnv):
    """reasoning-gym's procedural tasks (default chain_sum, 2 terms); options task, task_config, sizes, seed."""

    name = "reasoning-gym"
    splits = ("train", "test")

    def __init__(
        self,
        max_steps: int = 5,
        task: str = DEFAULT_TASK,
        task_config: dict[str, Any] | None = None,
        train_size: int = 1000,
        test_size: int = 200,
        seed: int = 0,
    ) -> None:
        super().__init__(max_steps)
        if train_size < 0 or test_size < 1:
            raise EnvError(f"{self.name}: need train_size >= 0 and test_size >= 1")
        self.task = task
        self.task_config = dict(DEFAULT_CONFIGS.get(task, {}) if task_config is None else task_config)
        self.train_size, self.test_size, self.seed = train_size, test_size, seed
        self._datasets: dict[int, Any] = {}

    def _dataset(self, seed: int, size: int) -> Any:
        import reasoning_gym

        try:
            return reasoning_gym.create_dataset(self.task, seed=seed, size=size, **self.task_config)
        except Exception as exc:  # noqa: BLE001 - unknown task names and bad options alike
            raise EnvError(f"{self.name}: cannot create task {self.task!r} with {self.task_config}: {exc}") from None

    def _load(self) -> list[Problem]:
        wanted = self.train_size + self.test_size
        dataset = self._dataset(self.seed, 4 * wanted)
        self._grader = dataset
        problems: list[Problem] = []
        seen: set[str] = set()
        for entry in dataset:
            if entry["question"] in seen:
                continue
            seen.add(entry["question"])
            split = "train" if len(problems) < self.train_size else "test"
            problems.append(Problem(entry["question"], str(entry["answer"]), split, {"entry": entry}))
            if len(problems) == wanted:
                return problems
        raise EnvError(
            f"{self.name}: task {self.task!r} with {self.task_config} has only {len(problems)} distinct questions "
            f"in {4 * wanted} draws; ask for fewer than train_size + test_size = {wanted}"
        )

    def _grade(self, response: str, problem: Problem) -> float:
        boxed = last_boxed(response)
        if boxed is None or not boxed.strip():
            return -1.0
        return float(self._grader.score_answer(boxed.strip(), problem.meta["entry"]) >= 1.0)

    @property
    def demo(self) -> tuple[str, str]:
        entry = self._dataset(self.seed + DEMO_SEED_OFFSET, 1)[0]
        meta = entry.get("metadata", {})
        work = meta.get("answer_cot") or (f"{meta['expression']} = {entry['answer']}." if "expression" in meta else "")
        return entry["question"], f"{work}\nThe final answer is \\boxed{{{entry['answer']}}}.".lstrip()

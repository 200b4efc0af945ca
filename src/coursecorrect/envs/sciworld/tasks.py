"""SciWorld's task table (shipped in ``data/tasks.json``): task ids, (task, variation) pairs and splits without Java.

Numbering (AgentGym's): AgentGym's sciworld server lists, for each ScienceWorld task in ScienceWorld's order
(1-1 boil, 1-2 melt, ...) but leaving out 5-1, 5-2, 9-1, 9-2, 9-3, 10-1 and 10-2, every variation 0..n-1;
its data index k is the k-th (task, variation) pair of that list, ids 0..4638 here. The seven left-out tasks
follow in the same way (ids 4639..7206), so every ScienceWorld task has ids.
Splits: ScienceWorld's own variation folds (per task, the first variations are train, the next dev, the rest
test) over AgentGym's 23 tasks, interleaved: variation k of every task comes before variation k + 1 of any,
so any prefix of a split spreads over the tasks. ``all``: every id, in order.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import accumulate, zip_longest

from coursecorrect.errors import EnvError

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class SciWorldTask:
    """One ScienceWorld task: its code (``1-1``), name (``boil``), variation count and folds."""

    code: str
    name: str
    variations: int
    train: int
    dev: int
    agentgym: bool
    first_id: int

    def fold(self, split: str) -> range:
        """The variations of one of ScienceWorld's folds."""
        return {"train": range(self.train), "dev": range(self.train, self.train + self.dev),
                "test": range(self.train + self.dev, self.variations)}[split]


def _load() -> tuple[SciWorldTask, ...]:
    data = json.loads(resources.files(__package__).joinpath("data/tasks.json").read_text(encoding="utf-8"))
    rows = data["tasks"]
    starts = [0, *accumulate(row["variations"] for row in rows)]
    return tuple(
        SciWorldTask(row["id"], row["name"], row["variations"], row["train"], row["dev"], row["agentgym"], start)
        for row, start in zip(rows, starts, strict=False)
    )


TASKS = _load()
NUM_IDS = TASKS[-1].first_id + TASKS[-1].variations
_STARTS = [task.first_id for task in TASKS]


def locate(task_id: int) -> tuple[SciWorldTask, int]:
    """The task and variation of an id."""
    task = TASKS[bisect.bisect_right(_STARTS, task_id) - 1]
    return task, task_id - task.first_id


def task_id_of(name: str, variation: int) -> int:
    """The id of a task (by name, e.g. ``boil``, or code, e.g. ``1-1``) and variation."""
    for task in TASKS:
        if name in (task.name, task.code):
            if not 0 <= variation < task.variations:
                raise EnvError(f"sciworld: {task.name} has variations 0..{task.variations - 1}, not {variation}")
            return task.first_id + variation
    raise EnvError(f"sciworld: unknown task {name!r}; known: {', '.join(t.name for t in TASKS)}")


@cache
def split_ids(split: str) -> tuple[int, ...]:
    """The ids of a split (``train``, ``dev``, ``test``: AgentGym's tasks only, interleaved; ``all``: every id)."""
    if split == "all":
        return tuple(range(NUM_IDS))
    columns = [[task.first_id + v for v in task.fold(split)] for task in TASKS if task.agentgym]
    return tuple(i for row in zip_longest(*columns) for i in row if i is not None)

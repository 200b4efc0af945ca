"""Rebuild the SciWorld task table shipped in the package (tasks, variation counts and folds) from the
installed ``scienceworld`` package, so that task ids and splits are known without starting Java.

    python scripts/build_sciworld_data.py
"""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path

from scienceworld import ScienceWorldEnv
from scienceworld.constants import ID2TASK

from coursecorrect.envs.java import stop_jvm
from coursecorrect.io import atomic_write_json

DATA_DIR = Path(__file__).resolve().parents[1] / "src" / "coursecorrect" / "envs" / "sciworld" / "data"
# The tasks AgentGym's sciworld server leaves out of its data indices.
AGENTGYM_EXCLUDED = ("5-1", "5-2", "9-1", "9-2", "9-3", "10-1", "10-2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    sim = ScienceWorldEnv("")
    tasks = []
    try:
        for task_id, name in ID2TASK.items():
            sim.load(name, 0, "")
            train, dev, test = sim.get_variations_train(), sim.get_variations_dev(), sim.get_variations_test()
            variations = sim.get_max_variations(name)
            if train + dev + test != list(range(variations)):
                raise SystemExit(f"{name}: folds are not consecutive ranges of variations; update the table format")
            tasks.append({"id": task_id, "name": name, "variations": variations, "train": len(train),
                          "dev": len(dev), "agentgym": task_id not in AGENTGYM_EXCLUDED})
    finally:
        stop_jvm(sim)
    tasks.sort(key=lambda task: not task["agentgym"])  # stable: AgentGym's tasks first, in ScienceWorld's order
    data = {"source": f"scienceworld {version('scienceworld')}", "tasks": tasks}
    atomic_write_json(DATA_DIR / "tasks.json", data, indent=1)
    print(f"wrote {DATA_DIR / 'tasks.json'}: {len(tasks)} tasks, {sum(t['variations'] for t in tasks)} variations")


if __name__ == "__main__":
    main()

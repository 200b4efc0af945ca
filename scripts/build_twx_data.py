"""Rebuild the TextWorld-Express seed table shipped in the package (each game's train/dev/test seed ranges)
from the installed ``textworld-express`` package, so that task ids and splits are known without starting Java.

    python scripts/build_twx_data.py
"""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path

from textworld_express import TextWorldExpressEnv

from coursecorrect.envs.java import stop_jvm
from coursecorrect.io import atomic_write_json

DATA_DIR = Path(__file__).resolve().parents[1] / "src" / "coursecorrect" / "envs" / "twx" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    sim = TextWorldExpressEnv()
    games = {}
    try:
        for game in sim.getGameNames():
            sim.load(game, "")
            folds = {"train": sim.getValidSeedsTrain(), "dev": sim.getValidSeedsDev(), "test": sim.getValidSeedsTest()}
            for fold, seeds in folds.items():
                if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
                    raise SystemExit(f"{game} {fold}: seeds are not a consecutive range; update the table format")
            games[game] = {fold: [seeds[0], len(seeds)] for fold, seeds in folds.items()}
    finally:
        stop_jvm(sim)
    data = {"source": f"textworld-express {version('textworld-express')}", "games": games}
    atomic_write_json(DATA_DIR / "seeds.json", data, indent=1)
    print(f"wrote {DATA_DIR / 'seeds.json'}: {', '.join(games)}")


if __name__ == "__main__":
    main()

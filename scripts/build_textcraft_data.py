"""Rebuild the TextCraft recipe data shipped in the package from a folder of Minecraft recipe files.

    python scripts/build_textcraft_data.py ../shared/data/textcraft
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from coursecorrect.envs.textcraft.convert import convert_recipe_dir
from coursecorrect.io import atomic_write_json

DATA_DIR = Path(__file__).resolve().parents[1] / "src" / "coursecorrect" / "envs" / "textcraft" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="folder holding minecraft-recipes/ and splits.json")
    args = parser.parse_args()
    data = convert_recipe_dir(args.source / "minecraft-recipes")
    atomic_write_json(DATA_DIR / "recipes.json", data, indent=None)
    splits = json.loads((args.source / "splits.json").read_text())
    atomic_write_json(DATA_DIR / "splits.json", {"train": splits["train"], "test": splits["test"]}, indent=None)
    print(f"wrote {DATA_DIR}: {data['source']}")


if __name__ == "__main__":
    main()

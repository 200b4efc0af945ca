"""Rebuild the GSM8K and MATH data shipped in the package (gzip JSON) from the JSONL sources.

    python scripts/build_math_data.py ../shared/data/math
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from coursecorrect.envs.math.env import CONVERTERS, data_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="folder holding gsm8k_{train,test}.jsonl and math_test_1000.jsonl")
    args = parser.parse_args()
    for dataset, convert in CONVERTERS.items():
        records = convert(args.source)
        text = json.dumps(records, ensure_ascii=False, separators=(",", ":"))
        path = data_file(dataset)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
        print(f"wrote {path}: {len(records)} problems, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()

"""Run every benchmark in turn (`make bench`). Each script also runs on its own; see docs/benchmarks.md.

.venv/bin/python benchmarks/run_all.py [--only NAME ...]
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Cheapest first, so a short session still sees the quick figures.
ORDER = ["agreement", "annotation_path", "export", "sampling", "reward_training", "active_learning", "rm_quality"]
# Arguments that keep a script's share of `make bench` short; run a script alone for its full figures.
ARGS = {"annotation_path": ["--quick"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=ORDER, help="run just these benchmarks")
    args = parser.parse_args()
    failed = []
    for name in args.only or ORDER:
        script = HERE / f"{name}.py"
        if not script.exists():
            continue
        print(f"\n=== {name} ({script.relative_to(HERE.parent)}) ===", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script), *ARGS.get(name, [])], cwd=HERE.parent)
        print(f"--- {name}: exit {code}, {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run every benchmark, then rebuild docs/BENCHMARKS.md from the sections they wrote.

Each benchmark script prints its table and writes docs/benchmarks/<name>.json (flat keys with units, plus machine,
command and date) and docs/benchmarks/<name>.md (its section). Usage:

    python benchmarks/run_all.py               # all of them (several minutes on 2 cores)
    python benchmarks/run_all.py renderer      # only some, then rebuild the page
    python benchmarks/run_all.py --page-only   # only rebuild docs/BENCHMARKS.md
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["pipeline", "pointcloud", "stack_assembler", "renderer", "eval_classical", "model_speed", "eval_model",
         "middlebury_headroom"]


def build_page() -> Path:
    """Concatenate the benchmark sections in a fixed order into docs/BENCHMARKS.md."""
    sections = {p.stem: p.read_text().strip() for p in (ROOT / "docs" / "benchmarks").glob("*.md")}
    names = [n for n in ORDER if n in sections] + sorted(set(sections) - set(ORDER))
    header = [
        "# Benchmarks",
        "",
        "Written by `python benchmarks/run_all.py` (or `make bench`) from the sections each benchmark in",
        "`benchmarks/` writes to `docs/benchmarks/<name>.md`; the same figures, machine-readable, are in",
        "`docs/benchmarks/<name>.json`. Speed is measured here, never asserted in tests. Each section names the",
        "machine, the command and the date it was measured.",
        "",
    ]
    page = ROOT / "docs" / "BENCHMARKS.md"
    page.write_text("\n".join(header) + "\n" + "\n\n".join(sections[n] for n in names) + "\n")
    return page


def main(argv: list[str]) -> int:
    if "--page-only" not in argv:
        wanted = [a for a in argv if not a.startswith("-")] or ORDER
        for name in wanted:
            script = ROOT / "benchmarks" / f"{name}.py"
            if not script.exists():
                continue
            print(f"== {name}", flush=True)
            result = subprocess.run([sys.executable, str(script)], cwd=ROOT)
            if result.returncode != 0:
                print(f"benchmark {name} failed with exit code {result.returncode}", file=sys.stderr)
                return result.returncode
    print(f"wrote {build_page()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A long fuzz campaign: the generated-input tests of tests/unit/test_fuzz.py with many
more examples than `make test` runs (PORTIERIS_FUZZ_SCALE times as many).

Run: .venv/bin/python bench/fuzz.py [--scale N]   (default 25: 5,000 generated reviews
and 2,500 arbitrary bodies over HTTPS, 12,500 texts and 12,500 valid image references)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=25, help="multiplier of make test's examples")
    args = parser.parse_args()
    env = {**os.environ, "PORTIERIS_FUZZ_SCALE": str(args.scale)}
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--show-capture=no",
            "--hypothesis-show-statistics",
            "tests/unit/test_fuzz.py",
        ],
        cwd=ROOT,
        env=env,
        check=False,
    )
    print(f"fuzz campaign at scale {args.scale}: {time.monotonic() - started:.0f} s")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())

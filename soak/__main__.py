"""`python -m soak [--minutes N] [--kills K] [--people P] [--seed S]`: exits 1 on any
violation (the table lists them), 0 otherwise."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from soak.report import table
from soak.run import Options, Soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long people act")
    parser.add_argument("--kills", type=int, default=None, help="kill -9s (default 2.2 a minute)")
    parser.add_argument("--people", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clock-scale", type=float, default=600.0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the run's files here")
    args = parser.parse_args(argv)
    # The fake's server logs each connection the killed guide left half-sent.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    options = Options(
        minutes=args.minutes,
        kills=args.kills,
        people=args.people,
        seed=args.seed,
        clock_scale=args.clock_scale,
        workdir=args.workdir,
    )
    options.chaos.seed = args.seed
    result = asyncio.run(Soak(options).run())
    print(table(result, options))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`python -m soak [--minutes N] [--kills K] [--people P] [--seed S] [--postgres [URL]
--workers N] [--wave W [--wave-at S] [--wave-over S]] [--drain-seconds S]`: exits 1
on any violation (the table lists them), 0 otherwise."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from soak.postgres import server_url
from soak.report import table
from soak.run import Options, Soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long people act")
    parser.add_argument("--kills", type=int, default=None, help="kill -9s (default 2.2 a minute)")
    parser.add_argument("--people", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clock-scale", type=float, default=600.0)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the run's files here (and its PostgreSQL schema, named in schema.txt)",
    )
    parser.add_argument(
        "--postgres",
        nargs="?",
        const="",
        default=None,
        metavar="URL",
        help="webhook workers on a fresh schema of this PostgreSQL server "
        "(default PAUSECHECK_TEST_POSTGRES_URL or 127.0.0.1:5432/test)",
    )
    parser.add_argument("--workers", type=int, default=3, help="with --postgres")
    parser.add_argument(
        "--wave", type=int, default=None, help="follow-ups due at once mid-run (300 with workers)"
    )
    parser.add_argument(
        "--wave-at", type=float, default=None, help="seconds from the start to the wave's first"
    )
    parser.add_argument(
        "--wave-over", type=float, default=0.0, help="seconds the wave's due times spread over"
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=Options.drain_seconds,
        help="after the people stop, how long the guide may take to send what it owes",
    )
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
        postgres=None if args.postgres is None else (args.postgres or server_url()),
        workers=args.workers,
        wave=args.wave,
        wave_at=args.wave_at,
        wave_over=args.wave_over,
        keep_schema=args.workdir is not None,
        drain_seconds=args.drain_seconds,
    )
    options.chaos.seed = args.seed
    result = asyncio.run(Soak(options).run())
    print(table(result, options))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

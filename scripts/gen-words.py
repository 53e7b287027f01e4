#!/usr/bin/env python3
"""Writes a text of whitespace-separated words `w<7 hex digits>` drawn uniformly from
`--distinct` values, 10 words a line, until `--bytes` bytes: the input of the BATCH
wordcount measurements in docs/benchmarks.md (2 GB with 50 M values gives ~49.4 M
distinct words).

    python3 scripts/gen-words.py --bytes 2000000000 --distinct 50000000 > words.txt
"""
import argparse
import random
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bytes", type=int, required=True)
    parser.add_argument("--distinct", type=int, default=50_000_000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = sys.stdout.buffer
    written = 0
    draw = rng.randrange
    n = args.distinct
    while written < args.bytes:
        # 10 000 lines per chunk, 10 words each.
        lines = [
            " ".join(["w%07x" % draw(n) for _ in range(10)]) for _ in range(10_000)
        ]
        chunk = ("\n".join(lines) + "\n").encode()
        out.write(chunk)
        written += len(chunk)


if __name__ == "__main__":
    main()

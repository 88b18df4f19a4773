"""Quality figures of the variants two results folders share, side by side, with the difference and
whether it is inside the noise (quantbench/report/devices.py says how the noise is combined).

    python tools/compare_devices.py results/reference/cpu/smollm2-135m \
        results/reference/h200/smollm2-135m-cuda-quality --names CPU GPU --out docs/cpu-vs-gpu.md \
        --csv results/reference/h200/smollm2-135m-cuda-quality/cpu_vs_gpu.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantbench.report.devices import beyond_noise, comparison, markdown  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("--names", nargs=2, default=("first", "second"), metavar=("FIRST", "SECOND"))
    ap.add_argument("--out", help="write the Markdown table here (else print it)")
    ap.add_argument("--csv", help="write the table as CSV here too")
    args = ap.parse_args(argv)
    for folder in (args.first, args.second):
        if not Path(folder, "records", "evaluate").is_dir():
            print(f"compare_devices: {folder} has no records/evaluate folder (a results folder of one setup)",
                  file=sys.stderr)
            return 2
    table = comparison(args.first, args.second)
    if table.empty:
        print("compare_devices: the two folders share no evaluated variant", file=sys.stderr)
        return 1
    text = markdown(table, *args.names)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    if args.csv:
        table.to_csv(args.csv, index=False)
    beyond = beyond_noise(table)
    print(f"{table['variant'].nunique()} variants, {len(table)} figures, {len(beyond)} beyond the noise",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

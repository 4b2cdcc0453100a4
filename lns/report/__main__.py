"""Write table.md, table.csv, claims.md and sensitivity plots from segmentation summary.json files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lns.errors import LNSError
from lns.report import write_report
from lns.runs.user_errors import explain


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lns.report", description=__doc__)
    parser.add_argument("dirs", nargs="+", help="directories searched recursively for summary.json")
    parser.add_argument("--reference", help="CSV with columns dataset,model,ari_mean,ari_std,source")
    parser.add_argument(
        "--out", help="output directory (default: DIR when there is one, else a new outputs/report/<date-time>)"
    )
    parser.add_argument("--std", type=float, help="table uses only noise runs with this noise std")
    parser.add_argument("--perturb-num", type=int, help="table uses only noise runs with this perturb_num")
    parser.add_argument("--data-dir", help="datasets folder: input images and ground truth in methods_<dataset>.png")
    args = parser.parse_args(argv)
    try:
        report = write_report(
            args.dirs,
            out=args.out,
            reference=args.reference,
            std=args.std,
            perturb_num=args.perturb_num,
            data_dir=args.data_dir,
        )
    except LNSError as err:
        explain(str(err))
        return 1
    print(report.markdown, end="")
    print("wrote " + ", ".join(str(path) for path in report.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Batch throughput, side by side in one run: seconds to grade --n copies of the answer key (default
40, every unit, training included) with 1 and 2 local workers and on a 2-worker Dask LocalCluster
(127.0.0.1, processes), and the speed-ups over 1 local worker. The cluster's start-up is timed apart.

Usage: .venv/bin/python -m bench.batch_scale [--n 40] [--units all|a,b,...]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: many small matrices, 2 cores

from autograder.course import PACKAGE, SOLUTIONS_DIR
from autograder.front.batch import run_batch
from autograder.results import GradingOptions


def answer_keys(subs, n):
    """subs/s000 ... with a copy of the answer key's package each; subs."""
    for i in range(n):
        shutil.copytree(SOLUTIONS_DIR / PACKAGE, subs / ("s%03d" % i) / PACKAGE,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return subs


def timed_batch(subs, out, options, **kwargs):
    """(seconds, {student: results}) of run_batch on subs, without its progress bar."""
    started = time.monotonic()
    documents = run_batch(subs, out, options, progress=False, **kwargs)
    return time.monotonic() - started, documents


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="submissions (copies of the answer key)")
    parser.add_argument("--units", default="all", help="'all' or comma-separated unit names")
    args = parser.parse_args(argv)
    options = GradingOptions(units=None if args.units == "all" else [u.strip() for u in args.units.split(",")])
    from distributed import LocalCluster
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        subs = answer_keys(Path(tmp) / "subs", args.n)
        rows = []
        for workers in (1, 2):
            seconds, documents = timed_batch(subs, Path(tmp) / ("local%d" % workers), options, workers=workers)
            rows.append(("local pool, %d worker%s" % (workers, "s" if workers > 1 else ""), seconds, documents))
        started = time.monotonic()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0") as cluster:
            startup = time.monotonic() - started
            seconds, documents = timed_batch(subs, Path(tmp) / "dask", options, scheduler=cluster.scheduler_address)
            rows.append(("Dask LocalCluster, 2 workers", seconds, documents))
    base = rows[0][1]
    print("%d submissions (answer key), units: %s" % (args.n, args.units))
    print("%-30s %10s %9s %12s" % ("", "seconds", "speed-up", "mean score"))
    for name, seconds, documents in rows:
        mean = sum(d.total for d in documents.values()) / max(1, len(documents))
        print("%-30s %10.1f %8.2fx %12.2f" % (name, seconds, base / seconds, mean))
    print("(the LocalCluster's start-up, not counted above: %.1f s)" % startup)
    return 0


if __name__ == "__main__":
    sys.exit(main())

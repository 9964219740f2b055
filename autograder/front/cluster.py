"""Grade a class on a Dask cluster: python -m autograder batch SUBMISSIONS --out GRADES --scheduler ADDRESS

One task per submission. The client reads each submission exactly as grade() would (intake.pack:
only the files students edit, no link followed, a refused file packed as the module grading would
put in its place) and sends those bytes; the worker writes them to a private temporary folder and
calls batch.grade_student on them, in its own sandbox, exactly as the local pool does. Workers need
the kit installed, not a shared filesystem. Results stream back as they finish and the client writes
them (batch.run_batch), so resume, results.json, grades.csv and summary.html are those of a local run.

Before anything is sent, every worker reports its kit version (kit_version(): a hash of the .py and
.ipynb files of autograder/ and source/) and its isolation layers; a worker with another version, or
without a working sandbox, stops the run (ClusterError, SandboxError). A task checks the version
again, for workers that join later. A worker that dies mid-task loses nothing: the scheduler runs the
task elsewhere (up to distributed.scheduler.allowed-failures deaths, then KilledWorker, recorded as a
grader error: run again); a task that raises is retried once elsewhere (retries=1). The scheduler
unpickles the tasks, so it needs the kit too, and its version is checked first.

`python -m autograder cluster scheduler|worker` (serve()) starts Dask's own scheduler or worker with
the kit importable (PYTHONPATH), without dashboard, listening on 127.0.0.1 unless --host names an
address (a worker: the address it reaches the scheduler from); an address for all interfaces is
refused. Dask's TLS configuration (distributed.comm.tls.*) applies to them as to any Dask process.
"""
import argparse
import asyncio
import functools
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from ..course import ROOT

KIT_TREES = ("autograder", "source")
KIT_SUFFIXES = (".py", ".ipynb")
CONNECT_SECONDS = 30
WORKER_WAIT_SECONDS = 60


class ClusterError(Exception):
    """The cluster cannot grade for this kit (unreachable, no workers, another kit version)."""


def kit_version(root=ROOT):
    """A hash of the kit's code: every .py and .ipynb file of autograder/ and source/, by path and content."""
    digest = hashlib.sha256()
    for tree in KIT_TREES:
        for path in sorted(Path(root, tree).rglob("*")):
            parts = path.relative_to(root).parts
            if (path.suffix in KIT_SUFFIXES and path.is_file()
                    and not any(p == "__pycache__" or p.startswith(".") for p in parts)):
                data = path.read_bytes()
                digest.update(b"%s\0%d\0" % ("/".join(parts).encode(), len(data)) + data)
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def worker_version():
    return kit_version()


def worker_status(limits=None):
    """What client.run() asks each worker: its kit version and isolation layers (or why the sandbox fails)."""
    from ..grade import SandboxError, sandbox_layers
    try:
        layers, problem = "; ".join(sandbox_layers(limits)), None
    except SandboxError as exc:
        layers, problem = None, str(exc)
    return {"version": worker_version(), "isolation": layers, "sandbox_error": problem}


def grade_packed(packed, options, expected_version):
    """The task: grade packed submission bytes (intake.pack) with grade.grade_student, on the worker."""
    from ..grade import grade_student
    if worker_version() != expected_version:
        raise ClusterError("a worker runs kit version %s, the client %s: install the same kit on every worker"
                           % (worker_version(), expected_version))
    with tempfile.TemporaryDirectory(prefix="packed-%d-" % os.getpid()) as tmp:  # 0700
        path = Path(tmp) / "submission.zip"
        path.write_bytes(packed)
        return grade_student(path, options)


def connect(address, limits=None, log=None):
    """A Client of the scheduler at address whose every worker runs this kit with a working sandbox
    (each worker's isolation layers go to log)."""
    from distributed import Client

    from ..sandbox import SandboxError
    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError("cannot reach the Dask scheduler at %s: %s" % (address, exc)) from exc
    try:
        mine = kit_version()
        try:
            version = client.run_on_scheduler(worker_version)
        except Exception as exc:  # it cannot unpickle the kit's functions: nor could it the tasks
            raise ClusterError("the Dask scheduler at %s cannot run the kit's code (%s: %s): start it with `python -m "
                               "autograder cluster scheduler` from the kit's folder"
                               % (address, type(exc).__name__, str(exc)[:200])) from exc
        if version != mine:
            raise ClusterError("the Dask scheduler at %s runs kit version %s, this client %s: install the same kit "
                               "on every machine" % (address, version, mine))
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
        except (TimeoutError, OSError):
            raise ClusterError("no worker joined the Dask scheduler at %s within %d s"
                               % (address, WORKER_WAIT_SECONDS)) from None
        statuses = client.run(worker_status, limits)
        for worker, status in sorted(statuses.items()):
            if status["version"] != mine:
                raise ClusterError("worker %s runs kit version %s, this client %s: install the same kit on every "
                                   "worker" % (worker, status["version"], mine))
        for worker, status in sorted(statuses.items()):
            if status["sandbox_error"]:
                raise SandboxError("on worker %s: %s" % (worker, status["sandbox_error"]))
        for worker, status in sorted(statuses.items()):
            if log:
                log("isolation on %s: %s" % (worker, status["isolation"]))
        return client
    except BaseException:
        client.close()
        raise


def grades_on(client, todo, options):
    """Yield (student, results or None, grader error or None) as the cluster (client, from
    connect()) finishes them.

    A submission with nothing to grade gets its not-gradable results from the client (intake.pack
    raises what grade() would). SandboxError and ClusterError from a worker stop the run."""
    from distributed import as_completed

    from ..grade import GraderError
    from ..intake import SubmissionError, pack
    from ..results import GradingResults
    from ..sandbox import SandboxError

    futures = {}
    try:
        version = kit_version()
        for student, path in todo:
            try:
                packed = pack(path)
            except SubmissionError as exc:
                yield student, GradingResults.not_gradable(str(exc)), None
                continue
            future = client.submit(grade_packed, packed, options, version, pure=False, retries=1)
            futures[future] = student
        for future in as_completed(list(futures), loop=client.loop):
            student = futures.pop(future)
            if future.status == "finished":
                yield student, future.result(), None
                continue
            try:
                exc = future.exception()
            except (Exception, asyncio.CancelledError) as cancelled:  # a cancelled future raises it here
                exc = cancelled
            if isinstance(exc, (SandboxError, ClusterError)):
                raise exc
            if isinstance(exc, GraderError):
                yield student, None, str(exc)
            else:  # KilledWorker (a worker died on it too often), a lost scheduler, ...
                yield student, None, "%s: %s" % (type(exc).__name__, str(exc)[:200])
    finally:
        if futures:  # stopped early: nothing more is started for this run (the client closes in run_batch)
            try:
                client.cancel(list(futures))
            except Exception:
                pass


ALL_INTERFACES = ("", "0.0.0.0", "::", "[::]", "*")


def serve(argv):
    """python -m autograder cluster scheduler|worker: run Dask's scheduler or worker for this kit (exec)."""
    parser = argparse.ArgumentParser(prog="python -m autograder cluster",
                                     description="start a Dask scheduler or worker that can grade with this kit")
    parser.add_argument("role", choices=("scheduler", "worker"))
    parser.add_argument("address", nargs="?", help="worker: the scheduler's address, e.g. tcp://10.0.0.5:8786")
    parser.add_argument("--host", help="address to listen on, e.g. 10.0.0.5 or tls://10.0.0.5 (default: 127.0.0.1; "
                                       "a worker: the address it reaches the scheduler from)")
    parser.add_argument("--port", default="8786", help="scheduler: port to listen on (default 8786)")
    parser.add_argument("--nthreads", default="2", help="worker: submissions graded at once (default 2)")
    args = parser.parse_args(argv)
    if (args.role == "worker") != bool(args.address):
        parser.error("a worker needs the scheduler's address, a scheduler none")
    if args.host is None and args.role == "worker":  # the scheduler's protocol (tcp, tls) on the route to it
        from distributed.comm import get_address_host, parse_address
        from distributed.utils import get_ip
        args.host = "%s://%s" % (parse_address(args.address)[0], get_ip(get_address_host(args.address)))
    host = args.host or "127.0.0.1"
    bare = host.split("://")[-1]
    if bare in ALL_INTERFACES:
        parser.error("--host %s would listen on every interface, and whoever reaches Dask's port runs code here: "
                     "give this machine's address on a private network" % host)
    command = [sys.executable, "-m", "distributed.cli.dask_" + args.role, "--host", host, "--no-dashboard",
               "--dashboard-address", bare + ":0"]  # its HTTP routes listen even without the dashboard
    if args.role == "scheduler":
        command += ["--port", args.port]
    else:
        command += [args.address, "--nthreads", args.nthreads]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    os.execve(sys.executable, command, env)

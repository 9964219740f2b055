"""Container mode's own clean-up (sandbox.Box, kill_uids), attacked as a student would: processes
that fight the sweep, a fork-hopping chain, a process whose main thread has exited, files left in
the shared folders.
Root only (the sweep runs as root; the attackers run as a throwaway uid). Every process started
here ends by itself within a minute even if the sweep failed."""
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder import sandbox

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sweep and the throwaway uids need root")

GUARD = """
import os, signal, time
if os.fork() == 0:  # a guard: signals every process of its uid, over and over, for up to 60 s
    os.setsid()
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            os.kill(-1, signal.%s)
        except OSError:
            pass
    os._exit(0)
time.sleep(60)
"""

HEADLESS = """
import ctypes, os, threading, time
if os.fork() == 0:  # the main thread exits (a zombie in /proc/PID/status), another one runs on
    os.setsid()
    threading.Thread(target=time.sleep, args=(60,)).start()
    ctypes.CDLL(None).pthread_exit(None)
time.sleep(60)
"""


HOPPER = """
import os, resource, sys, time
resource.setrlimit(resource.RLIMIT_NPROC, (8, 8))
end, w = time.monotonic() + 10, int(sys.argv[1])
while time.monotonic() < end:  # fork, the parent exits, over and over: the pid keeps changing
    try:
        if os.fork():
            os._exit(0)
        os.setsid()
        os.write(w, b"x")
    except OSError:  # no process left to fork: wait for one
        time.sleep(0.001)
"""

THREADS = """
import ctypes, os, threading, time
end = time.monotonic() + 60
def hop():  # each thread starts the next and ends: the process's one live thread keeps changing
    if time.monotonic() < end:
        threading.Thread(target=hop).start()
if os.fork() == 0:
    os.setsid()
    threading.Thread(target=hop).start()
    ctypes.CDLL(None).pthread_exit(None)
"""


def start_as(uid, code, *args, pass_fds=()):
    """A python process as uid running code (its own session, no environment)."""
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", code, *args], user=uid, group=uid, extra_groups=[],
                            env={}, cwd="/", start_new_session=True, pass_fds=pass_fds)


def end_of_file(fd, seconds):
    """Whether the pipe fd reaches its end within seconds: no process holds its write end."""
    deadline = time.monotonic() + seconds
    while select.select([fd], [], [], max(0, deadline - time.monotonic()))[0]:
        if os.read(fd, 1 << 16) == b"":
            return True
    return False


@pytest.mark.parametrize("code", [GUARD % "SIGKILL", GUARD % "SIGSTOP", HEADLESS, THREADS],
                         ids=["kills", "stops", "headless", "thread-hopping"])
def test_the_sweep_ends_every_process_of_the_uid(code):
    """Afterwards nothing holds the pipe every process of the attack inherited."""
    uid = sandbox.throwaway_uid()
    r, w = os.pipe()
    started = start_as(uid, code, pass_fds=[w])
    os.close(w)
    try:
        time.sleep(0.5)  # the guard or the headless process is up
        assert not end_of_file(r, 0), "the attack did not start"
        sandbox.kill_uids([uid])
        assert end_of_file(r, 2), "a process of the uid outlived the sweep"
    finally:
        started.kill()
        started.wait()
        os.close(r)


def test_a_box_removes_what_its_processes_left(tmp_path):
    box = sandbox.Box("container")
    uid = sandbox.throwaway_uid()
    box.uids.append(uid)
    left = [Path("/tmp", "left-by-%d" % uid), Path("/dev/shm", "left-by-%d" % uid)]
    script = "; ".join("open(%r, 'w').write('x')" % str(p) for p in left)
    subprocess.run([sys.executable, "-I", "-S", "-c", script], user=uid, group=uid, extra_groups=[], env={},
                   cwd="/", check=True)
    daemon = start_as(uid, "import time; time.sleep(60)")
    try:
        assert all(p.exists() for p in left)
        box.close()
        assert not any(p.exists() for p in left) and not box.folder.exists()
        assert sandbox.uid_processes({uid}) == []
    finally:
        daemon.kill()
        daemon.wait()
        for p in left:
            p.unlink(missing_ok=True)


# A container's init (pid 1 in Docker: a shell, tini) reaps every orphan at once: so does this one.
INIT = """
import ctypes, os, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the orphans below come here
child = os.fork()
if child == 0:
    os.execv(sys.argv[1], sys.argv[1:])
while True:
    pid, status = os.wait()
    if pid == child:
        sys.exit(os.waitstatus_to_exitcode(status))
"""


def hop_in_a_box():
    """A box's grader under INIT: prints how often a HOPPER of the box's uid forked in 1 s, and
    whether, after the box's sweep, nothing holds its pipe (every process of it is gone)."""
    box = sandbox.Box("container")
    uid = sandbox.throwaway_uid()
    box.uids.append(uid)
    r, w = os.pipe()
    started = start_as(uid, HOPPER, str(w), pass_fds=[w])
    os.close(w)
    time.sleep(1)
    os.set_blocking(r, False)
    hops = len(os.read(r, 1 << 16))
    box.close()
    print(hops, end_of_file(r, 2))
    started.wait()


def test_a_fork_hopping_chain_gets_its_process_limit_in_all_and_is_killed():
    """The orphans of a box's processes are its grader's until the sweep (not the container's init's):
    with RLIMIT_NPROC 8, the chain forks at most 8 times in all, and the sweep ends it."""
    code = "from tests.test_container_mode import hop_in_a_box; hop_in_a_box()"
    proc = subprocess.run([sys.executable, "-c", INIT, sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    hops, ended = proc.stdout.split()
    assert 0 < int(hops) <= 8, hops
    assert ended == "True", "a process of the chain outlived the sweep"

"""Container mode's own clean-up (sandbox.Box, kill_uids), attacked as a student would: processes
that fight the sweep, a process whose main thread has exited, files left in the shared folders.
Root only (the sweep runs as root; the attackers run as a throwaway uid). Every process started
here ends by itself within a minute even if the sweep failed."""
import os
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


def start_as(uid, code):
    """A python process as uid running code (its own session, no environment)."""
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", code], user=uid, group=uid, extra_groups=[],
                            env={}, cwd="/", start_new_session=True)


@pytest.mark.parametrize("code", [GUARD % "SIGKILL", GUARD % "SIGSTOP", HEADLESS], ids=["kills", "stops", "headless"])
def test_the_sweep_ends_every_process_of_the_uid(code):
    uid = sandbox.throwaway_uid()
    started = start_as(uid, code)
    try:
        time.sleep(0.5)  # the guard or the headless process is up
        assert sandbox.uid_processes({uid}), "the attack did not start"
        sandbox.kill_uids([uid])
        assert sandbox.uid_processes({uid}) == []
    finally:
        started.kill()
        started.wait()


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

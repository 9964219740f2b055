"""A box shaped like Gradescope's default autograder container, for `make gradescope-try` and the
tests (as root).

Docker runs each submission in a container with 768 MB of memory and half a CPU, its cgroup
filesystem read-only, no CAP_SYS_ADMIN, and a seccomp profile that refuses namespaces and mounts.
`Container()` makes the memory, CPU and freezer cgroups (v1 or v2); `container.command(argv)` runs argv inside:
in a private mount namespace whose cgroup mounts are remounted read-only, then (capsh) without
CAP_SYS_ADMIN, then under tools/docker_seccomp.py (`docker=False`: only in its cgroups);
`freeze()` stops every process in it at once; `close()` kills what is left (at once: see
`kill_all()`) and removes the cgroups; `peak_mb` and `oom_kills` say what the box went through.
`reachable`: folders inside a folder only root may enter (a Python built under /root by pyenv),
which every uid in the box may reach, as on Gradescope's image, where the interpreter is the
system's: inside the box the folder above each is replaced by an open one holding only it.
"""
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

MiB = 1 << 20
CGROUP = Path("/sys/fs/cgroup")
HERE = Path(__file__).resolve().parent
ENTER = r"""
for f in "$@"; do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; done
"""
INNER = ENTER + r"""
for pair in $REACHABLE; do  # FOLDER=OPEN: FOLDER bound into OPEN/, then OPEN over FOLDER's parent
    folder="${pair%%=*}" open="${pair#*=}"
    mount --rbind "$folder" "$open/${folder##*/}" && mount --rbind "$open" "${folder%/*}" || exit 127
done
for m in $(awk '$3=="cgroup"||$3=="cgroup2"{print $2}' /proc/mounts); do
    mount -o remount,bind,ro "$m" "$m" 2>/dev/null || mount -o remount,ro "$m" || exit 126
done
exec capsh --drop="$DROP" -- -c 'exec /usr/bin/python3 "$0" "$@"' "$SECCOMP" "$@"
"""


class Container:
    def __init__(self, memory=768 * MiB, cpus=0.5, drop="cap_sys_admin", docker=True, reachable=()):
        self.drop, self.docker, self.folders = drop, docker, []
        self.veils = {Path(folder): Path(tempfile.mkdtemp(prefix="kit-box-open-")) for folder in reachable}
        for folder, veil in self.veils.items():
            veil.chmod(0o755)
            (veil / folder.name).mkdir()
        name = "kit-test-container-%d-%d" % (os.getpid(), time.monotonic_ns())
        self.v2 = not (CGROUP / "memory").is_dir()
        period = 100000
        if self.v2:
            folder = CGROUP / name
            folder.mkdir()
            self.folders = [folder]
            (folder / "memory.max").write_text(str(memory))
            (folder / "cpu.max").write_text("%d %d" % (cpus * period, period))
        else:
            for controller in ("memory", "cpu", "freezer"):
                (CGROUP / controller / name).mkdir()
                self.folders.append(CGROUP / controller / name)
            memory_folder, cpu_folder, _ = self.folders
            (memory_folder / "memory.limit_in_bytes").write_text(str(memory))
            (cpu_folder / "cpu.cfs_period_us").write_text(str(period))
            (cpu_folder / "cpu.cfs_quota_us").write_text(str(int(cpus * period)))

    def command(self, argv):
        """argv run inside the box (its environment needs DROP and SECCOMP: see env()); without
        docker, only in its cgroups."""
        procs = [str(f / "cgroup.procs") for f in self.folders]
        if not self.docker:
            return ["sh", "-c", ENTER + 'exec "$@"', "sh", *procs, "--", *map(str, argv)]
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", INNER, "sh", *procs, "--", *map(str, argv)]

    def env(self, env):
        return dict(env, DROP=self.drop, SECCOMP=str(HERE / "docker_seccomp.py"),
                    REACHABLE=" ".join("%s=%s" % pair for pair in self.veils.items()))

    @property
    def peak_mb(self):
        memory = self.folders[0]
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        return int((memory / name).read_text()) / MiB

    @property
    def oom_kills(self):
        memory = self.folders[0]
        text = (memory / ("memory.events" if self.v2 else "memory.oom_control")).read_text()
        return int(dict(line.split() for line in text.splitlines()).get("oom_kill", 0))

    def processes(self):
        return [int(pid) for folder in self.folders for pid in (folder / "cgroup.procs").read_text().split()]

    def freeze(self, frozen=True):
        """Freeze every process in the box (none runs, forks or exits), or thaw them."""
        if self.v2:
            folder, setting, state, value = self.folders[0], "cgroup.freeze", "cgroup.events", "01"[frozen]
            wanted = "frozen " + value
        else:
            folder, setting, state = self.folders[2], "freezer.state", "freezer.state"
            value = wanted = "FROZEN" if frozen else "THAWED"
        (folder / setting).write_text(value)
        for _ in range(1000):
            if wanted in (folder / state).read_text():
                return
            time.sleep(0.01)
        raise RuntimeError("the test container could not be %s" % ("frozen" if frozen else "thawed"))

    def kill_all(self):
        """Kill every process in the box, frozen first: nothing forks meanwhile (a fork-hopping chain)."""
        self.freeze()
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.freeze(False)

    def close(self):
        """Kill whatever is left in the box, then remove its cgroups."""
        self.kill_all()
        for _ in range(100):
            pids = self.processes()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                for folder in self.folders:
                    if folder.exists():
                        folder.rmdir()
                for veil in self.veils.values():
                    shutil.rmtree(veil)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the test container's cgroups could not be removed: %s" % self.folders)

"""Run a command as Docker's default seccomp profile lets a container without CAP_SYS_ADMIN run it:
creating namespaces and mounting fail with EPERM, clone3 with ENOSYS (so the C library falls back to
clone, whose flags the filter reads). Written with libseccomp (Debian's python3-seccomp), not the
grader's own filter code, so the emulation is independent of what it tests.

Usage: /usr/bin/python3 tools/docker_seccomp.py CMD ARGS...
"""
import errno
import os
import sys

import seccomp

NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)

f = seccomp.SyscallFilter(seccomp.ALLOW)
for name in ("unshare", "setns", "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsmount"):
    f.add_rule(seccomp.ERRNO(errno.EPERM), name)
f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
for flag in NAMESPACE_FLAGS:
    f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
f.load()
os.execvp(sys.argv[1], sys.argv[1:])

"""Intake: turn what a student handed in (a folder or a zip) into a staged package to grade.

The staged copy holds the trusted given files from the reference package and only the files
students edit (STUDENT_FILES, from course.student_modules) from the submission. Nothing else the
student handed in is ever read, listed in full, copied or extracted:

- Folders: stage() opens each student file with O_NOFOLLOW, folder by folder from the folder
  find_package() chose, so a symbolic link (at the file, or at captioning/ or classifiers/ on the
  way) is refused for that file, as are FIFOs, devices and files over MAX_FILE_BYTES. A refused
  file is treated like a missing one: its module raises ImportError with the reason, so the
  student sees it and only the units that need that file lose points. Junk files next to the
  package cost nothing: find_package() looks for captioning/ directly, and scans the top folder
  (without a stat per entry) only when it is not there.
- Other uploads (Gradescope's students drag files, or upload the submit zip): with no
  captioning/ at the top or one folder down, the student files are found by their (unique) names
  at most two folders down (at most MAX_MEMBERS entries listed, links not followed) and read as
  stage() reads them; failing that, a single zip at the top is unpacked as below. Anything else
  is a SubmissionError saying exactly what to upload (WHAT_TO_UPLOAD).
- Zips: the central directory is size-checked from its end record before it is parsed (at most
  MAX_MEMBERS members, a directory of at most MAX_DIRECTORY_BYTES), then only the members named
  captioning/<student file>, at the zip root or one folder down (else the student files found by
  their names, as in a folder), are read, at most
  MAX_FILE_BYTES + 1 bytes each, into a layout of our own (workdir/captioning/...); no member
  name is ever used as a path. Every problem of the archive (not a zip, too many members, a name
  longer than MAX_NAME_CHARS, a student file twice or as both a file and a folder, an encrypted
  or corrupt member, an unsupported compression) is a SubmissionError with the reason. A symlink
  member or an oversized one is staged as such and refused by stage() like in a folder. Members
  that are not student files are never decompressed, so a zip bomb beside them costs nothing.
"""
import errno
import os
import shutil
import stat
import struct
import zipfile
from pathlib import Path

from .course import PACKAGE, REFERENCE_PACKAGE, student_modules

STUDENT_FILES = student_modules()
MAX_FILE_BYTES = 2 << 20          # a student file larger than this is refused (the reference is ~30 kB)
MAX_MEMBERS = 10_000              # members a zip may list
MAX_DIRECTORY_BYTES = 4 << 20     # size of a zip's central directory (names included)
MAX_NAME_CHARS = 1024             # length of one member name
IGNORED_TOP_FOLDERS = {"__MACOSX"}
STUDENT_NAMES_OF = {rel: rel.rsplit("/", 1)[-1] for rel in STUDENT_FILES}
STUDENT_NAMES = {name: rel for rel, name in STUDENT_NAMES_OF.items()}  # the names are unique
assert len(STUDENT_NAMES) == len(STUDENT_FILES), "student files need unique names: %s" % STUDENT_FILES
WHAT_TO_UPLOAD = ("upload the zip that `python -m captioning.submit` writes (as it is or unzipped), your "
                  "assignment folder, or just the files you edited: %s" % ", ".join(STUDENT_NAMES))


class SubmissionError(Exception):
    """The submission cannot be graded at all (nothing to grade, unreadable archive)."""


def shown(name, limit=80):
    """A name as quoted in a message: repr-escaped, long names shortened."""
    text = repr(str(name))
    return text if len(text) <= limit else text[:limit - 5] + "...'"


def _top_entries(root):
    """(folders, links) directly in root, sorted, without a stat per entry."""
    folders, links = [], []
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.name)
                elif entry.is_symlink():
                    links.append(entry.name)
    except OSError as exc:
        raise SubmissionError("the submission folder cannot be read: %s" % exc.strerror) from exc
    return sorted(folders), sorted(links)


def _package_folder(root):
    """root or the first folder one level down holding captioning/ (maybe a link), else None."""
    if os.path.lexists(root / PACKAGE):
        return root
    for name in _top_entries(root)[0]:
        if os.path.lexists(root / name / PACKAGE):
            return root / name
    return None


def find_package(root):
    """The folder holding the submission's captioning/ package (possibly one level down).

    captioning/ itself may be a symbolic link (stage() then tells the student it is refused); a
    top folder that is a symbolic link is never entered.
    """
    root = Path(root)
    folder = _package_folder(root) if root.is_dir() else None
    if folder is None:
        links = _top_entries(root)[1] if root.is_dir() else []
        hint = " (symbolic links are not followed: %s)" % ", ".join(map(shown, links[:3])) if links else ""
        raise SubmissionError("no %s/ package or edited files found in the submission%s: %s"
                              % (PACKAGE, hint, WHAT_TO_UPLOAD))
    return folder


def _flat_files(entries):
    """{student file: parts} of the student files found by their names, at most two folders down
    (the edited files uploaded on their own); a SubmissionError when one is there twice."""
    found = {}
    for parts, is_dir in entries:
        rel = STUDENT_NAMES.get(parts[-1])
        if rel and not is_dir and len(parts) <= 3 and parts[0] not in IGNORED_TOP_FOLDERS:
            found.setdefault(rel, []).append(parts)
    for rel, places in sorted(found.items()):
        places.sort()
        if len(places) > 1:
            raise SubmissionError("the submission holds %s more than once (%s): upload each file once"
                                  % (shown(STUDENT_NAMES_OF[rel]), ", ".join(shown("/".join(p)) for p in places[:3])))
    return {rel: places[0] for rel, places in found.items()}


def _scan(root, depth=3):
    """[(parts, is a folder)] of everything at most depth levels down, links not followed; a
    SubmissionError past MAX_MEMBERS entries."""
    entries, todo = [], [()]
    while todo:
        here = todo.pop()
        try:
            with os.scandir(root.joinpath(*here)) as listing:
                for entry in listing:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    entries.append((here + (entry.name,), is_dir))
                    if is_dir and len(here) + 1 < depth:
                        todo.append(here + (entry.name,))
                    if len(entries) > MAX_MEMBERS:
                        raise SubmissionError("the submission holds more than %d files: %s"
                                              % (MAX_MEMBERS, WHAT_TO_UPLOAD))
        except OSError as exc:
            raise SubmissionError("the submission folder cannot be read: %s" % exc.strerror) from exc
    return entries


def _unpack_folder(root, workdir):
    """root if it holds a package; else its flat student files copied into workdir/captioning/
    (read as stage() reads them); else the zip it holds, unpacked; else root."""
    if _package_folder(root):
        return root
    entries = _scan(root)
    flat = _flat_files(entries)
    if flat:
        for rel, parts in flat.items():
            data, problem = _read(root, parts)
            target = workdir / PACKAGE / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(refused_module(problem) if problem else data)
        return workdir
    zips = sorted(parts[0] for parts, is_dir in entries
                  if len(parts) == 1 and not is_dir and parts[0].lower().endswith(".zip"))
    if len(zips) > 1:
        raise SubmissionError("the submission holds several zips (%s): upload only the one `python -m "
                              "captioning.submit` wrote" % ", ".join(map(shown, zips[:3])))
    if zips and not (root / zips[0]).is_symlink():
        return unpack(root / zips[0], workdir)
    return root


# ---------------------------------------------------------------------------------------- zips

def _end_record(path):
    """(members, central directory bytes) from the zip's end record(s), or None if none found.

    Read before zipfile parses the directory: parsing 200,000 entries alone takes seconds.
    """
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        tail_start = max(0, size - (22 + 65535))
        f.seek(tail_start)
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) < at + 22:
            return None
        _, _, _, _, members, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
        locator = at - 20
        if locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":  # zip64: the real counts
            offset = struct.unpack("<Q", tail[locator + 8:locator + 16])[0]
            f.seek(offset)
            record = f.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                members, cd_size = struct.unpack("<QQ", record[32:48])
        return members, cd_size


def _parts(name):
    """A member name as path parts, without empty and '.' parts; None when it climbs ('..')."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    return None if ".." in parts else parts


def _is_symlink(member):
    return stat.S_ISLNK(member.external_attr >> 16)


def _choose_prefix(entries):
    """The parts before captioning/: () at the zip root, else the first top folder holding it."""
    tops = set()
    for parts, member in entries:
        for depth in (0, 1):
            if len(parts) > depth and parts[depth] == PACKAGE and (len(parts) > depth + 1 or member.is_dir()):
                if depth == 0:
                    return ()
                if parts[0] not in IGNORED_TOP_FOLDERS:
                    tops.add(parts[0])
    return (min(tops),) if tops else None


def _select(entries, prefix):
    """{student file: member} of the chosen package; a clash or a duplicate is a SubmissionError."""
    package = prefix + (PACKAGE,)
    wanted = {tuple(rel.split("/")): rel for rel in STUDENT_FILES}
    needed_folders = {package + key[:n] for key in wanted for n in range(len(key))}
    files, folders, chosen = {}, set(), {}
    for parts, member in entries:
        parts = tuple(parts)
        if parts[:len(package)] != package and parts not in needed_folders:
            continue
        if member.is_dir():
            folders.add(parts)
        else:
            files.setdefault(parts, []).append(member)
        folders.update(parts[:n] for n in range(1, len(parts)))
    for folder in needed_folders:
        if folder in files and folder in folders:
            raise SubmissionError("name clash in the zip: %s is both a file and a folder" % shown("/".join(folder)))
    for key, rel in wanted.items():
        path = package + key
        if path in folders:
            raise SubmissionError("name clash in the zip: %s is both a file and a folder" % shown("/".join(path)))
        members = files.get(path, [])
        if len(members) > 1:
            raise SubmissionError("the zip holds %s more than once" % shown("/".join(path)))
        if members:
            chosen[rel] = members[0]
    return chosen


def unpack(submission, workdir):
    """A folder with the submission's files: the folder itself, or its student files in workdir.

    From a zip (also one alone in the folder), or when the student files were uploaded on their
    own, only the student files are copied, into workdir/captioning/ (see the module docstring);
    the folder returned is then workdir.
    """
    submission, workdir = Path(submission), Path(workdir)
    if submission.is_dir():
        return _unpack_folder(submission, workdir)
    if not submission.exists():
        raise SubmissionError("%s does not exist" % submission)
    if not submission.is_file():  # a FIFO would block the end-record read
        raise SubmissionError("%s is neither a folder nor a zip file" % submission.name)
    try:
        end = _end_record(submission)
    except OSError as exc:
        raise SubmissionError("%s cannot be read: %s" % (submission.name, exc.strerror)) from exc
    if end is None:
        raise SubmissionError("%s is not a readable zip: no end of central directory record" % submission.name)
    members, cd_size = end
    if members > MAX_MEMBERS:
        raise SubmissionError("the zip lists %d members, more than the %d allowed: submit only your "
                              "assignment folder" % (members, MAX_MEMBERS))
    if cd_size > MAX_DIRECTORY_BYTES:
        raise SubmissionError("the zip's table of contents is larger than %d MB: submit only your "
                              "assignment folder" % (MAX_DIRECTORY_BYTES >> 20))
    try:
        with zipfile.ZipFile(submission) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_MEMBERS:
                raise SubmissionError("the zip lists %d members, more than the %d allowed: submit only your "
                                      "assignment folder" % (len(infos), MAX_MEMBERS))
            entries = []
            for member in infos:
                if len(member.filename) > MAX_NAME_CHARS:
                    raise SubmissionError("the zip holds a name longer than %d characters: %s"
                                          % (MAX_NAME_CHARS, shown(member.filename)))
                parts = _parts(member.filename)
                if parts:
                    entries.append((parts, member))
            prefix = _choose_prefix(entries)
            if prefix is not None:
                chosen = _select(entries, prefix)
                (workdir / PACKAGE).mkdir(parents=True, exist_ok=True)
            else:  # the edited files on their own, or nothing: find_package says so
                members = {tuple(parts): member for parts, member in entries}
                chosen = {rel: members[parts] for rel, parts in
                          _flat_files([(tuple(parts), member.is_dir()) for parts, member in entries]).items()}
            for rel, member in chosen.items():
                _extract(archive, member, workdir / PACKAGE / rel)
    except SubmissionError:
        raise
    except zipfile.BadZipFile as exc:
        raise SubmissionError("%s is not a readable zip: %s" % (submission.name, exc)) from exc
    except Exception as exc:  # OSError, EOFError, zlib/lzma errors, ...: never a traceback
        raise SubmissionError("%s cannot be unpacked: %s: %s"
                              % (submission.name, type(exc).__name__, str(exc)[:200])) from exc
    return workdir


def _extract(archive, member, target):
    """One student file: a harmless symlink for a symlink member, else at most MAX_FILE_BYTES + 1 bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if _is_symlink(member):
        os.symlink("symbolic-link-in-the-zip", target)  # stage() refuses it, with the reason
        return
    if member.flag_bits & 0x1:
        raise SubmissionError("%s is encrypted in the zip: submit it without a password" % shown(member.filename))
    try:
        with archive.open(member) as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except zipfile.BadZipFile as exc:
        raise SubmissionError("%s in the zip is corrupt: %s" % (shown(member.filename), exc)) from exc
    except RuntimeError as exc:  # encrypted (zipfile's message)
        raise SubmissionError("%s in the zip cannot be read: %s" % (shown(member.filename), exc)) from exc
    except NotImplementedError as exc:
        raise SubmissionError("%s in the zip uses an unsupported compression: %s"
                              % (shown(member.filename), exc)) from exc
    target.write_bytes(data)


# ------------------------------------------------------------------------------------- staging

def refused_module(problem):
    """The module staged in place of a refused student file: importing it says why."""
    return ("raise ImportError(%r)\n" % problem).encode("utf-8")


def is_refused_module(data):
    """Whether a file's bytes are a module refused_module() wrote (one line raising ImportError)."""
    return data.startswith(b"raise ImportError(") and data.endswith(b")\n") and data.count(b"\n") == 1


def _read_student_file(folder, rel):
    """(bytes, None) of folder/captioning/rel, or (None, why it is refused)."""
    return _read(folder, [PACKAGE] + rel.split("/"))


def _read(folder, parts):
    """(bytes, None) of folder/parts..., or (None, why it is refused).

    Each folder on the way and the file are opened relative to the previous one with O_NOFOLLOW:
    no symbolic link is ever followed below `folder`.
    """
    shown_path = "/".join(parts)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        return None, "missing file %s (%s)" % (shown_path, exc.strerror)
    try:
        for n, part in enumerate(parts):
            last = n == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_NONBLOCK if last else os.O_DIRECTORY)
            here = "/".join(parts[:n + 1])
            try:
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                return None, _refusal(shown_path, here, fd, part, exc)
            os.close(fd)
            fd = child
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "missing file %s: it is not a regular file" % shown_path
        if info.st_size > MAX_FILE_BYTES:
            return None, "%s is larger than %d MB" % (shown_path, MAX_FILE_BYTES >> 20)
        chunks, left = [], MAX_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > MAX_FILE_BYTES:
            return None, "%s is larger than %d MB" % (shown_path, MAX_FILE_BYTES >> 20)
        return data, None
    finally:
        os.close(fd)


def _refusal(shown_path, here, parent_fd, name, exc):
    """Why opening `here` failed, in the student's words."""
    try:
        kind = os.lstat(name, dir_fd=parent_fd).st_mode
    except OSError:
        return "missing file %s" % shown_path
    if stat.S_ISLNK(kind):
        return ("missing file %s: %s is a symbolic link, and links are not followed; submit the file "
                "itself" % (shown_path, here))
    if here != shown_path and not stat.S_ISDIR(kind):
        return "missing file %s: %s is not a folder" % (shown_path, here)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "missing file %s: it cannot be read" % shown_path
    return "missing file %s: %s" % (shown_path, exc.strerror)


def stage(folder, scratch):
    """scratch/captioning: the trusted given files plus the submission's student files.

    A student file that is missing, refused (symbolic link, not a regular file, larger than
    MAX_FILE_BYTES) or not UTF-8 becomes a module raising ImportError that says so, so that only
    the units that use it fail. Returns those files' package paths ("captioning/rel"), sorted.
    """
    package = Path(scratch) / PACKAGE
    given = shutil.ignore_patterns("__pycache__", *[Path(f).name for f in STUDENT_FILES])
    shutil.copytree(REFERENCE_PACKAGE, package, ignore=given)
    refused = []
    for rel in STUDENT_FILES:
        data, problem = _read_student_file(folder, rel)
        if data is not None:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                problem = "%s/%s is not UTF-8 text" % (PACKAGE, rel)
        (package / rel).write_bytes(refused_module(problem) if problem else data)
        if problem or is_refused_module(data):  # pack() ships a refused file as its refused module
            refused.append("%s/%s" % (PACKAGE, rel))
    return tuple(refused)


def pack(submission):
    """The submission's student files as a zip of our own (bytes), to be graded elsewhere.

    Read exactly as grade() reads them (unpack, find_package, the O_NOFOLLOW reads of stage()),
    with a refused file packed as the module stage() would write for it, so grading the packed
    zip gives exactly the grading of the submission. Raises SubmissionError like grade() would.
    """
    import io
    import tempfile
    with tempfile.TemporaryDirectory(prefix="pack-") as tmp:
        folder = find_package(unpack(submission, Path(tmp)))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for rel in STUDENT_FILES:
                data, problem = _read_student_file(folder, rel)
                if problem:
                    data = refused_module(problem)
                archive.writestr(zipfile.ZipInfo("%s/%s" % (PACKAGE, rel), (1980, 1, 1, 0, 0, 0)), data,
                                 zipfile.ZIP_DEFLATED)
    return buffer.getvalue()

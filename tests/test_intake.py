"""Intake: symlinks are never followed, zips give up only their student files, every archive
problem is a SubmissionError with a reason, and junk (200k zip members, 20k files) costs nothing.

Most tests call intake directly (milliseconds); two go through grade() for the end result.
"""
import os
import struct
import time
import zipfile
from pathlib import Path

import pytest

from autograder import intake
from autograder.intake import MAX_FILE_BYTES, STUDENT_FILES, SubmissionError, find_package, stage, unpack
from autograder.results import GradingOptions
from autograder.sandbox import GiB, Limits
from tests.hostile import CORRECT_STEP, KEY, make

LAYERS, MODEL = "rnn_layers.py", "classifiers/rnn.py"
LIMITS = Limits(check_seconds=2, import_seconds=5, memory_bytes=GiB, processes=32, submission_seconds=10)


def staged(tmp_path, submission):
    """{student file: staged text} after unpack, find_package and stage, as grade() does them."""
    work, scratch = tmp_path / "unpacked", tmp_path / "scratch"
    work.mkdir(parents=True)
    scratch.mkdir()
    stage(find_package(unpack(submission, work)), scratch)
    return {rel: (scratch / "captioning" / rel).read_text() for rel in STUDENT_FILES}


def refused(text, *phrases):
    return text.startswith("raise ImportError(") and all(p in text for p in phrases)


def write_zip(path, members):
    """members: {name: bytes}, or a list of (name or ZipInfo, bytes) to allow duplicates."""
    items = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in items:
            archive.writestr(name, data)
    return path


def key_files(prefix=""):
    return {prefix + "captioning/" + rel: (KEY / rel).read_bytes() for rel in STUDENT_FILES}


def test_student_files_are_the_edited_modules():
    assert STUDENT_FILES == [MODEL, "classifiers/transformer.py", "net_visualization_pytorch.py", LAYERS,
                             "transformer_layers.py"]


# ------------------------------------------------------------------------------ normal layouts

def test_folder_flat_and_one_level_down(tmp_path):
    flat = make(tmp_path / "a", "sub", override=CORRECT_STEP)
    assert staged(tmp_path / "x", flat)[LAYERS].endswith(CORRECT_STEP)
    (tmp_path / "b" / "outer").mkdir(parents=True)
    make(tmp_path / "b" / "outer", "inner")
    assert staged(tmp_path / "y", tmp_path / "b" / "outer")[MODEL] == (KEY / MODEL).read_text()


@pytest.mark.parametrize("prefix", ["", "my folder/", "x" * 300 + "/"])
def test_zip_flat_or_with_a_top_folder(tmp_path, prefix):
    archive = write_zip(tmp_path / "s.zip", {**key_files(prefix), prefix + "notes.txt": b"hi",
                                            prefix + "RNN_Captioning.ipynb": b"{}"})
    texts = staged(tmp_path, archive)
    assert texts == {rel: (KEY / rel).read_text() for rel in STUDENT_FILES}
    # only the student files were written, in our own layout
    written = sorted(p.relative_to(tmp_path / "unpacked").as_posix() for p in (tmp_path / "unpacked").rglob("*"))
    assert written == ["captioning", "captioning/classifiers", "captioning/classifiers/rnn.py",
                       "captioning/classifiers/transformer.py", "captioning/net_visualization_pytorch.py",
                       "captioning/rnn_layers.py", "captioning/transformer_layers.py"]


def test_zip_root_package_wins_and_missing_files_are_reported(tmp_path):
    archive = write_zip(tmp_path / "s.zip", {"captioning/rnn_layers.py": b"x = 1\n",
                                            "a/captioning/rnn_layers.py": b"x = 2\n"})
    texts = staged(tmp_path, archive)
    assert texts[LAYERS] == "x = 1\n"
    assert refused(texts[MODEL], "missing file captioning/classifiers/rnn.py")


def test_zip_without_package_and_garbage(tmp_path):
    with pytest.raises(SubmissionError, match="no captioning/ package .*: upload the zip that `python -m "
                       "captioning.submit` writes .* rnn.py, transformer.py, net_visualization_pytorch.py, "
                       "rnn_layers.py, transformer_layers.py"):
        staged(tmp_path, write_zip(tmp_path / "s.zip", {"notes.txt": b"", "__MACOSX/captioning/x": b"",
                                                        "__MACOSX/rnn_layers.py": b""}))
    (tmp_path / "g.zip").write_bytes(b"not a zip at all")
    with pytest.raises(SubmissionError, match="not a readable zip"):
        unpack(tmp_path / "g.zip", tmp_path)
    os.mkfifo(tmp_path / "fifo.zip")
    with pytest.raises(SubmissionError, match="neither a folder nor a zip"):
        unpack(tmp_path / "fifo.zip", tmp_path)


def test_zip_members_that_climb_are_never_extracted(tmp_path):
    archive = write_zip(tmp_path / "s.zip", {**key_files(), "../captioning/rnn_layers.py": b"evil",
                                            "/etc/evil": b"evil", "captioning/../../evil": b"evil"})
    work = tmp_path / "w"
    work.mkdir(parents=True)
    unpack(archive, work)
    assert not list(tmp_path.rglob("evil")) and b"evil" not in (work / "captioning" / LAYERS).read_bytes()


def flat_files(folder, prefix=""):
    """The key's student files written on their own (as a student drags them) into folder/prefix."""
    for rel in STUDENT_FILES:
        path = folder / prefix / rel.rsplit("/", 1)[-1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((KEY / rel).read_bytes())
    return folder


@pytest.mark.parametrize("prefix", ["", "my files/"])
def test_edited_files_on_their_own_are_found_by_name(tmp_path, prefix):
    key = {rel: (KEY / rel).read_text() for rel in STUDENT_FILES}
    folder = flat_files(tmp_path / "upload", prefix)
    (folder / "notes.txt").write_text("junk")
    assert staged(tmp_path / "folder", folder) == key
    archive = write_zip(tmp_path / "s.zip", {prefix + Path(rel).name: (KEY / rel).read_bytes()
                                            for rel in STUDENT_FILES})
    assert staged(tmp_path / "zip", archive) == key
    # the package's contents one folder down (captioning/ itself not uploaded), one file missing
    inner = tmp_path / "contents" / "captioning copy"
    for rel in STUDENT_FILES[1:]:
        (inner / rel).parent.mkdir(parents=True, exist_ok=True)
        (inner / rel).write_bytes((KEY / rel).read_bytes())
    texts = staged(tmp_path / "contents-staged", tmp_path / "contents")
    assert refused(texts[STUDENT_FILES[0]], "missing file captioning/" + STUDENT_FILES[0])
    assert {rel: texts[rel] for rel in STUDENT_FILES[1:]} == {rel: key[rel] for rel in STUDENT_FILES[1:]}


def test_a_zip_left_as_a_zip_in_the_upload_is_unpacked(tmp_path):
    upload = tmp_path / "upload"
    upload.mkdir()
    write_zip(upload / "image_captioning_submission.zip", key_files())
    assert staged(tmp_path, upload) == {rel: (KEY / rel).read_text() for rel in STUDENT_FILES}
    write_zip(upload / "older.zip", key_files())
    with pytest.raises(SubmissionError, match="several zips .*: upload only the one `python -m captioning.submit`"):
        unpack(upload, tmp_path / "again")


def test_flat_uploads_refuse_links_and_duplicates(tmp_path):
    folder = flat_files(tmp_path / "upload")
    (folder / LAYERS).unlink()
    (folder / LAYERS).symlink_to(KEY / LAYERS)
    texts = staged(tmp_path / "s", folder)
    assert refused(texts[LAYERS], "rnn_layers.py is a symbolic link")
    assert texts[MODEL] == (KEY / MODEL).read_text()
    flat_files(folder, "again/")
    with pytest.raises(SubmissionError, match="holds 'rnn.py' more than once .*: upload each file once"):
        unpack(folder, tmp_path / "w")


def test_a_flat_upload_of_too_many_files_is_refused_fast(tmp_path):
    upload = flat_files(tmp_path / "upload")
    for i in range(12_000):
        os.close(os.open(upload / ("j%05d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
    (upload / "captioning").mkdir()  # an (empty) package wins: nothing is listed
    assert refused(staged(tmp_path / "ok", upload)[LAYERS], "missing file captioning/rnn_layers.py")
    (upload / "captioning").rmdir()
    started = time.monotonic()
    with pytest.raises(SubmissionError, match="holds more than 10000 files: upload the zip"):
        unpack(upload, tmp_path / "w")
    assert time.monotonic() - started < 1


def test_an_upload_of_nothing_gradable_says_what_to_upload(tmp_path):
    upload = tmp_path / "upload"
    (upload / "deep" / "er" / "still").mkdir(parents=True)
    (upload / "deep" / "er" / "still" / LAYERS).write_text("too deep")
    (upload / "RNN_Captioning.ipynb").write_text("{}")
    with pytest.raises(SubmissionError, match="no captioning/ package or edited files found in the submission: "
                       "upload the zip"):
        find_package(unpack(upload, tmp_path / "w"))


# ------------------------------------------------------------------------------------ symlinks

def test_symlinks_to_the_reference_files_are_refused(tmp_path):
    sub = make(tmp_path, "sub")
    for rel in STUDENT_FILES:
        (sub / "captioning" / rel).unlink()
        (sub / "captioning" / rel).symlink_to(KEY / rel)
    texts = staged(tmp_path, sub)
    for rel in STUDENT_FILES:
        assert refused(texts[rel], "missing file captioning/" + rel, "symbolic link"), texts[rel]


def test_symlinked_folders_are_refused(tmp_path):
    sub = make(tmp_path, "sub")
    classifiers = sub / "captioning" / "classifiers"
    for f in classifiers.iterdir():
        f.unlink()
    classifiers.rmdir()
    classifiers.symlink_to(KEY / "classifiers", target_is_directory=True)
    texts = staged(tmp_path / "a", sub)
    assert refused(texts[MODEL], "captioning/classifiers is a symbolic link")
    assert texts[LAYERS] == "\n" + (KEY / LAYERS).read_text()

    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / "captioning").symlink_to(KEY, target_is_directory=True)
    texts = staged(tmp_path / "b", whole)
    assert all(refused(t, "captioning is a symbolic link") for t in texts.values()), texts

    top = tmp_path / "top"
    top.mkdir()
    (top / "linked").symlink_to(sub, target_is_directory=True)
    with pytest.raises(SubmissionError, match="symbolic links are not followed"):
        find_package(top)


def test_a_link_to_a_root_only_file_is_not_copied(tmp_path):
    secret = tmp_path / "secret.py"
    secret.write_text("TOP_SECRET = 'do not copy me'\n")
    secret.chmod(0o600)
    sub = make(tmp_path, "sub")
    (sub / "captioning" / LAYERS).unlink()
    (sub / "captioning" / LAYERS).symlink_to(secret)
    (sub / "captioning" / MODEL).unlink()
    (sub / "captioning" / MODEL).symlink_to("/etc/shadow")
    texts = staged(tmp_path, sub)
    assert refused(texts[LAYERS], "symbolic link") and "TOP_SECRET" not in texts[LAYERS]
    assert refused(texts[MODEL], "symbolic link") and "root:" not in texts[MODEL]


def test_fifos_and_big_files_are_refused_without_hanging(tmp_path):
    sub = make(tmp_path, "sub")
    (sub / "captioning" / LAYERS).unlink()
    os.mkfifo(sub / "captioning" / LAYERS)
    (sub / "captioning" / MODEL).write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    started = time.monotonic()
    texts = staged(tmp_path, sub)
    assert time.monotonic() - started < 2
    assert refused(texts[LAYERS], "not a regular file")
    assert refused(texts[MODEL], "larger than 2 MB")


def test_a_symlink_member_of_a_zip_is_refused(tmp_path):
    link = zipfile.ZipInfo("captioning/rnn_layers.py")
    link.external_attr = (0o120777 << 16)
    link.create_system = 3
    archive = write_zip(tmp_path / "s.zip", [(link, str(KEY / LAYERS)), ("captioning/classifiers/rnn.py", b"y = 1\n")])
    texts = staged(tmp_path, archive)
    assert refused(texts[LAYERS], "symbolic link") and texts[MODEL] == "y = 1\n"


# ------------------------------------------------------------------------- hostile archives

def test_name_clashes_are_submission_errors(tmp_path):
    clashes = [
        [("captioning/rnn_layers.py", b"x"), ("captioning/rnn_layers.py/inner.py", b"y")],
        [("captioning/classifiers", b"x"), ("captioning/classifiers/rnn.py", b"y")],
        [("captioning/rnn_layers.py", b"x"), ("captioning/rnn_layers.py/", b"")],
    ]
    for n, members in enumerate(clashes):
        with pytest.raises(SubmissionError, match="name clash"):
            unpack(write_zip(tmp_path / ("c%d.zip" % n), members), tmp_path / ("w%d" % n))
    with pytest.warns(UserWarning):  # zipfile warns about the duplicate name while writing
        archive = write_zip(tmp_path / "dup.zip", [("captioning/rnn_layers.py", b"x"),
                                                   ("captioning/rnn_layers.py", b"y")])
    with pytest.raises(SubmissionError, match="more than once"):
        unpack(archive, tmp_path / "dup")


def test_long_names(tmp_path):
    archive = write_zip(tmp_path / "s.zip", {**key_files(), "junk/" + "n" * 300: b"", "m" * 300 + ".py": b""})
    assert staged(tmp_path, archive)[LAYERS] == (KEY / LAYERS).read_text()
    archive = write_zip(tmp_path / "long.zip", {**key_files(), "n" * 5000: b""})
    with pytest.raises(SubmissionError, match="longer than 1024 characters"):
        unpack(archive, tmp_path / "long")


def raw_zip(path, names):
    """A valid zip of empty stored members, written directly (zipfile needs ~4 s for 200,000)."""
    local, central, offset = [], [], 0
    for name in names:
        name = name.encode()
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0) + name
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, 0, 0, 0, len(name),
                                   0, 0, 0, 0, 0, offset) + name)
        local.append(header)
        offset += len(header)
    directory = b"".join(central)
    n, end = len(names), offset + len(directory)
    zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(directory), offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    record = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                         min(len(directory), 0xFFFFFFFF), min(offset, 0xFFFFFFFF), 0)
    Path(path).write_bytes(b"".join(local) + directory + zip64 + locator + record)
    return path


def test_raw_zip_builder_makes_real_zips(tmp_path):
    names = ["captioning/" + rel for rel in STUDENT_FILES] + ["junk"]
    with zipfile.ZipFile(raw_zip(tmp_path / "s.zip", names)) as archive:
        assert archive.namelist() == names and archive.testzip() is None
    assert staged(tmp_path, tmp_path / "s.zip") == {rel: "" for rel in STUDENT_FILES}


def test_two_hundred_thousand_members_are_rejected_fast(tmp_path):
    archive = raw_zip(tmp_path / "many.zip", ["captioning/rnn_layers.py"] + ["j/%d" % i for i in range(200_000)])
    started = time.monotonic()
    with pytest.raises(SubmissionError, match="200001 members, more than the 10000 allowed"):
        unpack(archive, tmp_path / "w")
    assert time.monotonic() - started < 0.5


def test_a_zip_lying_about_its_member_count_is_still_bounded(tmp_path, monkeypatch):
    archive = raw_zip(tmp_path / "many.zip", ["j/%d" % i for i in range(20_000)])
    monkeypatch.setattr(intake, "_end_record", lambda path: (1, 100))  # the end record says 1 member
    with pytest.raises(SubmissionError, match="20000 members"):
        unpack(archive, tmp_path / "w")


def test_encrypted_and_corrupt_members(tmp_path):
    archive = write_zip(tmp_path / "enc.zip", {"captioning/rnn_layers.py": b"x = 1\n"})
    raw = bytearray(archive.read_bytes())  # set the "encrypted" flag bit in both headers
    raw[6] |= 1
    raw[raw.find(b"PK\x01\x02") + 8] |= 1
    archive.write_bytes(bytes(raw))
    with pytest.raises(SubmissionError, match="encrypted"):
        unpack(archive, tmp_path / "enc")

    data = b"def f():\n    return 1\n" * 50
    with zipfile.ZipFile(tmp_path / "bad.zip", "w", zipfile.ZIP_STORED) as z:
        z.writestr("captioning/rnn_layers.py", data)
    raw = bytearray((tmp_path / "bad.zip").read_bytes())
    at = raw.find(data)
    raw[at + 100] ^= 0xFF
    (tmp_path / "bad.zip").write_bytes(bytes(raw))
    with pytest.raises(SubmissionError, match="corrupt.*CRC"):
        unpack(tmp_path / "bad.zip", tmp_path / "bad")

    with zipfile.ZipFile(tmp_path / "deflated.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("captioning/rnn_layers.py", os.urandom(1000).hex())
    raw = bytearray((tmp_path / "deflated.zip").read_bytes())
    for i in range(60, 400):
        raw[i] = 0x55
    (tmp_path / "deflated.zip").write_bytes(bytes(raw))
    with pytest.raises(SubmissionError):
        unpack(tmp_path / "deflated.zip", tmp_path / "deflated")


def test_zip_bomb(tmp_path):
    """200 MB of zeros as a student file and as junk: read 2 MB + 1 byte at most, quickly."""
    path = tmp_path / "bomb.zip"
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("captioning/rnn_layers.py", "junk/bomb.bin"):
            with archive.open(name, "w", force_zip64=True) as f:
                for _ in range(200):
                    f.write(zeros)
        archive.writestr("captioning/classifiers/rnn.py", (KEY / MODEL).read_bytes())
    assert path.stat().st_size < 2 << 20
    started = time.monotonic()
    texts = staged(tmp_path, path)
    assert time.monotonic() - started < 2
    assert refused(texts[LAYERS], "captioning/rnn_layers.py is larger than 2 MB")
    assert texts[MODEL] == (KEY / MODEL).read_text()
    assert (tmp_path / "unpacked" / "captioning" / LAYERS).stat().st_size == MAX_FILE_BYTES + 1


def test_a_folder_full_of_junk_is_fast(tmp_path):
    """2,000 junk files beside the package or inside it (200,000 take 8 s just to create here): intake
    never lists the package folder, and finds a package one level down with one scandir pass."""
    for layout in ("flat", "down"):
        root = tmp_path / layout
        sub = make(root, "package") if layout == "down" else make(tmp_path, layout)
        junk = sub / "captioning" if layout == "flat" else root  # beside the files, or the package
        for i in range(2_000):
            os.close(os.open(junk / ("j%05d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
        started = time.monotonic()
        texts = staged(tmp_path / ("s-" + layout), root)
        assert time.monotonic() - started < 1
        assert texts[MODEL] == (KEY / MODEL).read_text()


# ------------------------------------------------------------------------------- end to end

def test_grade_gives_zero_to_a_symlinked_submission_with_the_reason(tmp_path):
    from autograder.grade import grade
    sub = make(tmp_path, "sub")
    (sub / "captioning" / LAYERS).unlink()
    (sub / "captioning" / LAYERS).symlink_to(KEY / LAYERS)
    results = grade(sub, GradingOptions(units=["rnn_step_forward"], limits=LIMITS, jobs=1))
    assert results and sum(r.score for r in results) == 0
    assert "captioning/rnn_layers.py is a symbolic link" in results[0].output, results[0].output
    assert all("could not import captioning/rnn_layers.py (why: see the test %r)" % results[0].name in r.output
               for r in results[1:]), [r.output for r in results]  # the reason is told once per file


def test_grade_of_a_zip_with_junk_and_a_long_top_folder(tmp_path):
    from autograder.grade import grade
    top = "t" * 250 + "/"
    archive = write_zip(tmp_path / "s.zip", {**key_files(top), top + "n" * 300: b"", "junk/x": b""})
    results = grade(archive, GradingOptions(units=["rnn_step_forward"], limits=LIMITS, jobs=1))
    assert sum(r.score for r in results) == pytest.approx(5), [r.output for r in results]


def test_an_upload_missing_a_graded_file_says_first_which_and_what_it_costs(tmp_path):
    """The four files of an older release dragged in, the network visualization's left out (issue #27)."""
    from autograder.grade import grade
    from autograder.report import table
    from autograder.units import BY_NAME, NETVIZ_NB
    netviz = [u.name for u in BY_NAME.values() if u.notebook == NETVIZ_NB]
    missing = next(rel for rel in STUDENT_FILES if rel.startswith("net_visualization"))
    upload = tmp_path / "upload"
    upload.mkdir()
    for rel in set(STUDENT_FILES) - {missing}:  # flat files, found by name
        (upload / Path(rel).name).write_bytes((KEY / rel).read_bytes())
    results = grade(upload, GradingOptions(units=["rnn_step_forward"] + netviz, limits=LIMITS, jobs=1))
    first = ("MISSING FILE captioning/%s: not in your upload, or refused (its tests say why): its units (%s) lose 15 "
             "points. Upload every file you edit: python -m captioning.submit packs them all."
             % (missing, ", ".join(netviz)))
    assert results.to_gradescope()["output"].split("\n")[0] == first
    assert table(results).split("\n")[0] == first
    assert results.total == pytest.approx(5)

"""A code-similarity report over a class: python -m autograder batch ... --similarity

With copydetect's winnowing fingerprints (tokenised code: names become V/F/O and strings S, so
renaming variables changes nothing), each pair of students is compared on the files students edit
(course.student_modules()), file by file. The released starter code is boilerplate: its
fingerprints are removed first, so stubs and given code never count. A pair's similarity is the
larger of the two students' shares of their own (non-starter) code found in the other's file of the
same name, over all their files. similarity.html lists the most similar pairs and shows every pair
at or above the threshold side by side, shared code highlighted except the lines that are the
starter file's own (its docstrings, TODO lines, imports, given code). It is a report for staff to
read, never a grade.

Files are read as grading reads them (intake: a zip's student members only, no link followed); a
file that is refused, missing or not UTF-8 is left out.
"""
import html
import io
import itertools
import tempfile
from pathlib import Path

from ..course import PACKAGE, RELEASE_DIR
from ..intake import STUDENT_FILES, SubmissionError, _read_student_file, find_package, unpack
from ..report import write_atomically
from ..text import clean_line

DEFAULT_THRESHOLD = 0.5
NOISE_TOKENS = 25       # copydetect's defaults: k-grams of 25 filtered characters,
GUARANTEE_TOKENS = 25   # every match of 25 or more is found
LISTED_PAIRS = 30


def student_sources(path):
    """{relative path: text} of a submission's student files that can be read."""
    sources = {}
    with tempfile.TemporaryDirectory(prefix="similarity-") as tmp:
        try:
            folder = find_package(unpack(path, Path(tmp)))
        except SubmissionError:
            return sources
        for rel in STUDENT_FILES:
            data, problem = _read_student_file(folder, rel)
            if data is not None:
                try:
                    sources[rel] = data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
    return sources


def _fingerprint(rel, text, boilerplate=(), window=GUARANTEE_TOKENS - NOISE_TOKENS + 1):
    """copydetect's CodeFingerprint of text, with every fingerprint found in boilerplate removed
    (copydetect's own removal drops one occurrence of a repeated fingerprint only)."""
    from copydetect import CodeFingerprint
    from copydetect.utils import get_token_coverage
    fingerprint = CodeFingerprint(rel, NOISE_TOKENS, window, None, filter=True, language="python",
                                  fp=io.StringIO(text))
    drop = fingerprint.hashes & set(boilerplate)
    if drop:
        fingerprint.hashes -= drop
        fingerprint.hash_idx = {h: i for h, i in fingerprint.hash_idx.items() if h not in drop}
        fingerprint.token_coverage = get_token_coverage(fingerprint.hash_idx, fingerprint.k,
                                                        len(fingerprint.filtered_code))
    return fingerprint


def starter_texts(starter=RELEASE_DIR / PACKAGE):
    """{relative path: text of the released starter file ("" when there is none)}."""
    return {rel: (Path(starter) / rel).read_text(encoding="utf-8") if (Path(starter) / rel).is_file() else ""
            for rel in STUDENT_FILES}


def starter_hashes(starter=RELEASE_DIR / PACKAGE):
    """{relative path: fingerprints of the released starter file} (every k-gram, as copydetect's boilerplate)."""
    return {rel: frozenset(_fingerprint(rel, text, window=1).hashes) for rel, text in starter_texts(starter).items()}


def _overlap_tokens(a, b):
    """Tokens of a's and of b's code covered by fingerprints they share."""
    import numpy as np
    from copydetect.utils import find_fingerprint_overlap, get_copied_slices
    idx_a, idx_b = find_fingerprint_overlap(a.hashes, b.hashes, a.hash_idx, b.hash_idx)
    if len(idx_a) == 0:
        return 0, 0
    slices_a, slices_b = get_copied_slices(idx_a, a.k), get_copied_slices(idx_b, b.k)
    return int(np.sum(slices_a[1] - slices_a[0])), int(np.sum(slices_b[1] - slices_b[0]))


def compare_class(students, starter=RELEASE_DIR / PACKAGE):
    """[pair dict] sorted most similar first, for every pair of students with a file in common.

    students: [(name, submission path)]. A pair: a, b, similarity (max of the two shares), share_a,
    share_b, and files: {rel: (share_a, share_b)}."""
    boilerplate = starter_hashes(starter)
    prints = {}
    for name, path in students:
        prints[name] = {rel: _fingerprint(rel, text, boilerplate[rel]) for rel, text in student_sources(path).items()}
    pairs = []
    for a, b in itertools.combinations(sorted(prints), 2):
        common = sorted(set(prints[a]) & set(prints[b]))
        if not common:
            continue
        matched_a = matched_b = own_a = own_b = 0
        files = {}
        for rel in common:
            fa, fb = prints[a][rel], prints[b][rel]
            ma, mb = _overlap_tokens(fa, fb)
            matched_a, matched_b = matched_a + ma, matched_b + mb
            own_a, own_b = own_a + fa.token_coverage, own_b + fb.token_coverage
            files[rel] = (float(ma / fa.token_coverage) if fa.token_coverage else 0.0,
                          float(mb / fb.token_coverage) if fb.token_coverage else 0.0)
        share_a = float(matched_a / own_a) if own_a else 0.0
        share_b = float(matched_b / own_b) if own_b else 0.0
        pairs.append({"a": a, "b": b, "similarity": max(share_a, share_b), "share_a": share_a, "share_b": share_b,
                      "files": files, "prints": (prints[a], prints[b])})
    pairs.sort(key=lambda p: (-p["similarity"], p["a"], p["b"]))
    return pairs


def _own_slices(text, slices, starter):
    """The parts of copydetect's slices (2xN raw-text offsets) on lines that are not a line of the
    starter file (compared stripped), leading indentation left out: a copied region stretches over
    the starter code between two shared pieces, which is no one's own."""
    import numpy as np
    starter_lines = {line.strip() for line in starter.split("\n")}
    own, at = np.zeros(len(text) + 1, bool), 0
    for line in text.split("\n"):
        if line.strip() not in starter_lines:
            own[at + len(line) - len(line.lstrip()):at + len(line.rstrip())] = True
        at += len(line) + 1
    copied = np.zeros_like(own)
    for start, end in slices.T:
        copied[start:end] = True
    marked = np.diff(np.concatenate([[0], (own & copied).astype(np.int8)]))
    return np.array([np.flatnonzero(marked == 1), np.flatnonzero(marked == -1)])


def _side_by_side(fa, fb, starter):
    """Two <pre> blocks of a file pair (HTML-escaped), the shared code that is not the starter
    file's highlighted; None when nothing is."""
    from copydetect import compare_files
    from copydetect.utils import highlight_overlap
    _, _, slices = compare_files(fa, fb)
    if any(len(s) == 0 or s.shape[-1] == 0 for s in slices):
        return None
    own = [_own_slices(f.raw_code, s, starter) for f, s in zip((fa, fb), slices)]
    if any(s.shape[-1] == 0 for s in own):
        return None
    return tuple(highlight_overlap(f.raw_code, s, "<mark>", "</mark>", escape_html=True)[0]
                 for f, s in zip((fa, fb), own))


def similarity_html(pairs, threshold, n_students, starter=RELEASE_DIR / PACKAGE):
    flagged = [p for p in pairs if p["similarity"] >= threshold]
    name = lambda s: html.escape(clean_line(s))  # noqa: E731 (a one-line helper)
    parts = ["<!doctype html><meta charset='utf-8'><title>Code similarity</title>",
             "<style>body{font-family:sans-serif} pre{font-size:11px;overflow:auto;max-height:40em;"
             "background:#f8f8f8;padding:4px} mark{background:#ffb3b3} td{vertical-align:top}"
             " .cols{display:flex;gap:8px} .cols>div{flex:1;min-width:0}</style>",
             "<h1>Code similarity: %d students, %d pair(s) flagged</h1>" % (n_students, len(flagged)),
             "<p>A report for staff to read, never a grade. Files compared: %s. The released starter code is "
             "ignored; renamed variables do not hide a copy (copydetect fingerprints, k=%d). A pair's similarity "
             "is the larger of the two students' shares of their own code found in the other's; flagged from "
             "%.2f.</p>" % (html.escape(", ".join(STUDENT_FILES)), NOISE_TOKENS, threshold),
             "<h2>Most similar pairs</h2><table border=1 cellpadding=3><tr><th>student A</th><th>student B</th>"
             "<th>similarity</th><th>A's code in B</th><th>B's code in A</th><th>per file</th></tr>"]
    for n, p in enumerate(pairs[:max(LISTED_PAIRS, len(flagged))]):
        anchor = "<a href='#pair%d'>%.0f%%</a>" % (n, 100 * p["similarity"]) if p in flagged else \
            "%.0f%%" % (100 * p["similarity"])
        per_file = ", ".join("%s %.0f%%/%.0f%%" % (html.escape(rel), 100 * x, 100 * y)
                             for rel, (x, y) in p["files"].items())
        parts.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%.0f%%</td><td>%.0f%%</td><td>%s</td></tr>" % (
            name(p["a"]), name(p["b"]), anchor, 100 * p["share_a"], 100 * p["share_b"], per_file))
    parts.append("</table>")
    starters = starter_texts(starter)
    for n, p in enumerate(flagged):
        parts.append("<h2 id='pair%d'>%s and %s: %.0f%%</h2>" % (n, name(p["a"]), name(p["b"]), 100 * p["similarity"]))
        prints_a, prints_b = p["prints"]
        for rel in p["files"]:
            shown = _side_by_side(prints_a[rel], prints_b[rel], starters[rel])
            if shown:
                parts.append("<h3>%s</h3><div class='cols'><div><b>%s</b><pre>%s</pre></div>"
                             "<div><b>%s</b><pre>%s</pre></div></div>"
                             % (html.escape(rel), name(p["a"]), shown[0], name(p["b"]), shown[1]))
    return "\n".join(parts) + "\n"


def write_similarity_report(path, students, threshold=DEFAULT_THRESHOLD, starter=RELEASE_DIR / PACKAGE):
    """Write similarity.html (privately, like every class output); the flagged pairs."""
    pairs = compare_class(students, starter)
    write_atomically(path, similarity_html(pairs, threshold, len(students), starter))
    return [p for p in pairs if p["similarity"] >= threshold]

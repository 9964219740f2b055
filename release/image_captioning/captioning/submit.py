"""Check your work and write what you hand in: `python -m captioning.submit`.

Run it in the assignment folder (the one holding the notebooks and captioning/), in the environment
you work in. It

1. runs the public checks of every graded unit on your `captioning` package and prints a summary
   (the autograder runs these and hidden ones);
2. writes image_captioning_code.zip: the files you edit, exactly the files the autograder reads,
   and the notebooks (EDITED and NOTEBOOKS in captioning/units.py). Upload it to the programming
   assignment as it is;
3. writes image_captioning_written.pdf: the written questions with your answers, for the graders.
   Upload it to the written-answers assignment. nbconvert makes an HTML page of them (kept next
   to the PDF), which Chrome, Chromium or Edge prints when one is found (or --browser PATH);
   without a browser (Colab, a server) the PDF is made in Python (fpdf2).

Failing checks do not stop it (you may hand in partial work; the summary says what is left). A
missing or unreadable notebook or file stops it with one line saying what to do, and exit status 1;
so does a PDF that cannot be made, after the summary and the zip, saying which file is usable.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
import zipfile
from pathlib import Path

from .units import EDITED, NOTEBOOKS  # written by the course's release

# One BLAS thread, set before the checks load numpy, as the notebooks' first cells do: their matrices
# are small, and more threads only add overhead (on 2 cores the checks took 1.5 times as long).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

FOLDER = Path(__file__).resolve().parent.parent  # the assignment folder
CODE_ZIP = "image_captioning_code.zip"
WRITTEN_PDF = "image_captioning_written.pdf"
UNANSWERED = "YOUR ANSWER HERE"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "microsoft-edge",
            "msedge", "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
            "/Applications/Chromium.app/Contents/MacOS/Chromium",
            "/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
            r"C:\Program Files\Google\Chrome\Application\chrome.exe",
            r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe")


class SubmitError(Exception):
    """What stops the submission, in one line that says what to do."""


def run_checks():
    """{unit: passed} for every unit with public checks, each unit's report printed."""
    from .checks import PUBLIC_CHECKS, report
    passed = {}
    for unit in dict.fromkeys(c.unit for c in PUBLIC_CHECKS):
        print("--- " + unit)
        try:
            passed[unit] = report(unit)[0]  # False for an optional unit left unwritten
        except Exception as e:  # your package does not import, ...: that unit fails, the rest goes on
            print("FAIL  " + "".join(traceback.format_exception_only(type(e), e)).strip())
            passed[unit] = False
    return passed


def read_notebooks():
    """[(name, notebook)] of the NOTEBOOKS, each checked to be a readable notebook."""
    import nbformat
    notebooks = []
    for name in NOTEBOOKS:
        try:
            notebooks.append((name, nbformat.read(FOLDER / name, as_version=4)))
        except FileNotFoundError:
            raise SubmitError("%s is missing from %s: it must stay next to captioning/" % (name, FOLDER)) from None
        except Exception as e:
            raise SubmitError("%s is not a readable notebook (%s): open it in Jupyter, save it and run this "
                              "again" % (name, str(e).splitlines()[0][:200])) from None
    return notebooks


def write_atomically(path, write):
    """Call write(temporary path), then rename it to path: never a half-written file."""
    tmp = path.with_name("." + path.name + ".part")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_code_zip():
    """The code zip: the edited files and the notebooks, as they are on disk."""
    missing = [rel for rel in EDITED if not (FOLDER / rel).is_file()]
    if missing:
        raise SubmitError("%s missing from %s: the zip needs the files you edit" % (", ".join(missing), FOLDER))

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for rel in EDITED + NOTEBOOKS:
                archive.write(FOLDER / rel, rel)
    write_atomically(FOLDER / CODE_ZIP, write)
    return FOLDER / CODE_ZIP


def written_answers(notebooks):
    """(a notebook of every written question and its answer, [answers left empty])."""
    from nbformat.v4 import new_markdown_cell, new_notebook
    out, empty = new_notebook(cells=[new_markdown_cell("# Image captioning: written answers")]), []
    for name, notebook in notebooks:
        out.cells.append(new_markdown_cell("## " + name))
        cells = notebook.cells
        answers = [i for i, c in enumerate(cells) if c.cell_type == "markdown"
                   and c.metadata.get("nbgrader", {}).get("grade") and c.metadata.get("nbgrader", {}).get("solution")]
        if not answers:
            raise SubmitError("%s has no written-answer cell left (its cell metadata is gone): copy your answers "
                              "into a fresh copy of the notebook" % name)
        for i in answers:
            if i and cells[i - 1].cell_type == "markdown":
                out.cells.append(new_markdown_cell(cells[i - 1].source))  # the question
            out.cells.append(new_markdown_cell(cells[i].source))
            if UNANSWERED in cells[i].source:
                empty.append("%s (%s)" % (name, cells[i].metadata.nbgrader.get("grade_id", "cell %d" % i)))
    return out, empty


def find_browser(given):
    """The browser that prints the PDF: given, else the first of BROWSERS found, else None."""
    if given:
        found = shutil.which(given)
        if not found:
            raise SubmitError("--browser %s: no such program" % given)
        return found
    for name in BROWSERS:
        found = shutil.which(name) or (name if os.path.isfile(name) else None)
        if found:
            return found
    return None


def print_with_browser(browser, html, tmp):
    """The browser's headless print of the HTML page to tmp."""
    with tempfile.TemporaryDirectory(prefix="submit-browser-") as profile:
        argv = [browser, "--headless", "--disable-gpu", "--no-pdf-header-footer", "--print-to-pdf-no-header",
                "--user-data-dir=" + profile, "--print-to-pdf=" + str(tmp), html.as_uri()]  # (2 flags: old, new)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root otherwise
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=180)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SubmitError("%s could not print the PDF (%s)" % (browser, e)) from None
    if not tmp.is_file() or tmp.read_bytes()[:5] != b"%PDF-":
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise SubmitError("%s wrote no PDF (exit status %d: %s)" % (browser, proc.returncode, last[:200]))


def python_pdf(answers, tmp):
    """The answers notebook's markdown as a PDF made by fpdf2, in matplotlib's DejaVu fonts (Unicode)."""
    import matplotlib
    import mistune
    from fpdf import FPDF
    from fpdf.fonts import TextStyle
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdf = FPDF()
    for style, suffix in (("", ""), ("B", "-Bold"), ("I", "-Oblique"), ("BI", "-BoldOblique")):
        pdf.add_font("DejaVu", style, fonts / ("DejaVuSans%s.ttf" % suffix))
    pdf.add_font("DejaVuMono", "", fonts / "DejaVuSansMono.ttf")
    pdf.add_page()
    pdf.set_font("DejaVu", size=11)
    mono = TextStyle(font_family="DejaVuMono")
    for cell in answers.cells:
        pdf.write_html(mistune.html(cell.source), font_family="DejaVu", tag_styles={"code": mono, "pre": mono})
    pdf.output(str(tmp))


def write_written_pdf(notebooks, browser):
    """The written answers as HTML (nbconvert, kept next to the PDF) and PDF: printed by a browser
    when one is given or found, else (or when a found one fails) made in Python; [answers left empty]."""
    from nbconvert import HTMLExporter
    answers, empty = written_answers(notebooks)
    html = (FOLDER / WRITTEN_PDF).with_suffix(".html")
    html.write_text(HTMLExporter().from_notebook_node(answers)[0], encoding="utf-8")
    found = find_browser(browser)
    if found:
        try:
            write_atomically(FOLDER / WRITTEN_PDF, lambda tmp: print_with_browser(found, html, tmp))
            return empty
        except SubmitError:
            if browser:
                raise
    write_atomically(FOLDER / WRITTEN_PDF, lambda tmp: python_pdf(answers, tmp))
    return empty


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m captioning.submit", description=__doc__.splitlines()[0])
    parser.add_argument("--browser", help="Chrome, Chromium or Edge to print the PDF with (default: the first found)")
    args = parser.parse_args(argv)
    try:
        notebooks = read_notebooks()
        passed = run_checks()
        code = write_code_zip()
    except SubmitError as e:
        print("submit: %s" % e, file=sys.stderr)
        return 1
    try:
        empty, failure = write_written_pdf(notebooks, args.browser), None
    except SubmitError as e:
        empty, failure = None, str(e)
    except Exception as e:  # whatever stops the PDF, the zip is done and the summary still shown
        empty, failure = None, "".join(traceback.format_exception_only(type(e), e)).strip().splitlines()[-1]
    failing = [unit for unit, ok in passed.items() if not ok]
    print("\n=== Summary")
    print("Public checks: %d of %d units pass (the autograder also runs hidden checks)."
          % (len(passed) - len(failing), len(passed)))
    if failing:
        print("  not passing yet: " + ", ".join(failing))
    if empty is not None:
        print("Written answers: " + ("all answered" if not empty else "left empty: " + ", ".join(empty)))
    print("Wrote %s (%d files): upload it to the programming assignment." % (code, len(EDITED + NOTEBOOKS)))
    if failure:
        html = (FOLDER / WRITTEN_PDF).with_suffix(".html")
        then = ("for the written answers, print %s to PDF from any browser" % html if html.is_file()
                else "fix that and run this again for the written answers")
        print("submit: no %s (%s). %s is complete: upload it; %s." % (WRITTEN_PDF, failure, CODE_ZIP, then),
              file=sys.stderr)
        return 1
    print("Wrote %s: upload it to the written-answers assignment." % (FOLDER / WRITTEN_PDF))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The corpus of typical mistakes and correct variants (tests/mutants.py, autograder/mistakes.py), in
the grader and at the desk. Each submission is graded once (on NUMPY_UNITS unless it names its
units) and its notebook check cells run once, for all the tests below:

- in the grader, a mistake costs exactly the units it breaks and gets exactly its own hint; a
  correct variant gets full marks and no hint; failures say what is wrong and hide what is hidden;
- at the desk, check(unit) names each mistake that fails a public check, and agrees with the grader
  on every public check of the units a submission touches.
"""
import ast
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from autograder import syntax
from autograder.course import PACKAGE, RELEASE_DIR
from autograder.diagnosis import HINT_PREFIX
from autograder.grade import grade
from autograder.mistakes import BY_ID, MISTAKES, of_unit
from autograder.reference import all_checks, checks_module, reference_impl
from autograder.results import GradingOptions
from autograder.rules import WITHHELD
from autograder.units import BY_NAME, NETVIZ_NB, UNITS, closure
from tests import mutants as M
from tests.hostile import lost_units
from tests.test_autograder import WHERE, failures, hint_lines
from tests.test_notebook_checks import student_folder

CHECKS = list(all_checks().values())
# What a submission is graded on unless it names its units (the network visualization's mistakes
# and variants name theirs): the numpy notebooks' units, the training ones aside. No unit of one
# family calls the other's (test_a_mistake_of_one_family_cannot_reach_the_other), so a mistake in
# one cannot cost the other's units, and each grade spares a child that imports PyTorch.
NUMPY_UNITS = tuple(u.name for u in UNITS if not u.training and u.notebook != NETVIZ_NB)
NETVIZ_FILE = "captioning/net_visualization_pytorch.py"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """graded(submission) -> (folder, results), each submission built and graded once, in one child
    at a time (the suite's other worker has the other CPU; a verdict does not depend on it)."""
    root, cache = tmp_path_factory.mktemp("graded"), {}

    def get(sub):
        if sub.name not in cache:
            folder = sub.build(root / sub.name)
            cache[sub.name] = folder, grade(folder, GradingOptions(units=sub.units or NUMPY_UNITS, jobs=1))
        return cache[sub.name]
    return get


def mutant(name):
    return next(s for s in M.MUTANTS if s.name == name)


def alternative(name):
    return next(s for s in M.ALTERNATIVES if s.name == name)


# ---------------------------------------------------------------- 1. typical mistakes

def test_mistakes_are_many_distinct_and_cover_every_unit():
    assert len(M.MUTANTS) >= 15
    assert len({s.name for s in M.MUTANTS}) == len(M.MUTANTS)
    assert len({s.edits for s in M.MUTANTS}) == len(M.MUTANTS)
    covered = set().union(*(s.lost for s in M.MUTANTS))
    assert covered == set(BY_NAME), "units no mistake breaks: %s" % (set(BY_NAME) - covered)
    for s in M.MUTANTS:
        assert s.lost and s.lost <= set(s.units or NUMPY_UNITS), s.name


def test_a_mistake_of_one_family_cannot_reach_the_other():
    """What grading on NUMPY_UNITS relies on: no unit calls a unit of the other family, and a
    submission that names no units edits no network visualization code."""
    for unit in UNITS:
        netviz = unit.notebook == NETVIZ_NB
        assert all((BY_NAME[d].notebook == NETVIZ_NB) == netviz for d in closure(unit.name)), unit.name
    for sub in M.MUTANTS + M.ALTERNATIVES:
        assert sub.units or all(edit.file != NETVIZ_FILE for edit in sub.edits), sub.name


@pytest.mark.slow
@pytest.mark.parametrize("sub", M.MUTANTS, ids=lambda s: s.name)
def test_a_mistake_costs_exactly_the_units_it_breaks(graded, sub):
    """One bug costs once: units calling a broken unit keep their marks (dependency retry)."""
    _, results = graded(sub)
    lost = lost_units(results)
    assert lost == set(sub.lost), "%s (%s): lost points on %s, expected exactly %s\n%s" % (
        sub.name, sub.what, sorted(lost), sorted(sub.lost), failures(results))


# ---------------------------------------------------------------- 2. the mistake named (issue #22)

def test_the_corpus_is_the_mutants_and_every_code_unit_has_two_diagnosable_mistakes():
    assert [s.name for s in M.MUTANTS] == [m.id for m in MISTAKES]
    for unit in UNITS:
        if not unit.training:
            assert len(of_unit(unit.name)) >= 2, unit.name
    for m in MISTAKES:
        assert m.hint and "\n" not in m.hint and not m.hint.endswith(".") and len(m.hint) <= 160, m.id
        trained = {u for u in m.lost if BY_NAME[u].training}
        undiagnosable = m.hinted == frozenset()  # declared so in the corpus, with the reason
        assert m.diagnosed <= m.lost - trained and (m.diagnosed or m.lost == trained or undiagnosable), m.id
    assert [m.id for m in MISTAKES if m.hinted == frozenset()] == [
        "rnn_forward_squeezed_step_input", "sample_rnn_branch_crashes", "saliency_train_mode", "fooling_descent"]


@pytest.mark.slow
@pytest.mark.parametrize("sub", M.MUTANTS, ids=lambda s: s.name)
def test_a_mistake_gets_exactly_its_own_hint(graded, sub):
    """Once per unit it breaks (the training units aside), on a failing test, and nowhere else."""
    mistake = BY_ID[sub.name]
    _, results = graded(sub)
    lines = hint_lines(results)
    assert set(lines) == set(mistake.diagnosed), "%s: hints on %s, expected on %s\n%s" % (
        sub.name, sorted(lines), sorted(mistake.diagnosed), failures(results))
    for unit in mistake.diagnosed:
        assert lines[unit] == [HINT_PREFIX + mistake.hint + "."], (sub.name, lines[unit])
        carrier = [r for r in results if r.diagnosis and r.unit == unit]
        assert len(carrier) == 1 and carrier[0].score == 0, (sub.name, unit)
        assert carrier[0].diagnosis["hint"] == mistake.hint and mistake.id in carrier[0].diagnosis["mistakes"]
        assert all(BY_ID[m].hint == mistake.hint for m in carrier[0].diagnosis["mistakes"])


@pytest.mark.slow
@pytest.mark.parametrize("sub", M.ALTERNATIVES, ids=lambda s: s.name)
def test_a_correct_variant_gets_no_hint(graded, sub):
    _, results = graded(sub)
    assert not hint_lines(results) and not any(r.diagnosis for r in results)


@pytest.mark.slow
def test_a_partial_submission_gets_a_hint_on_its_mistake_only(graded):
    """Units left unwritten, units of the answer key and one mistake: the mistake's unit alone is named."""
    sub = M.Submission("partial_with_a_mistake", (
        M.Body(M.LAYERS, "lstm_step_forward", "raise NotImplementedError()"),
        M.Body(M.T_LAYERS, "multihead_attention_backward", "raise NotImplementedError()"),
        M.Body(M.MODEL, "beam_search", "raise NotImplementedError()"),
    ) + BY_ID["rnn_backward_no_carry"].edits)
    _, results = graded(sub)
    assert set(hint_lines(results)) == {"rnn_backward"}, failures(results)


# ---------------------------------------------------------------- 3. correct variants

def test_there_are_enough_correct_variants():
    assert len(M.ALTERNATIVES) >= 5
    assert len({s.name for s in M.ALTERNATIVES}) == len(M.ALTERNATIVES)


@pytest.mark.slow
@pytest.mark.parametrize("sub", M.ALTERNATIVES, ids=lambda s: s.name)
def test_a_correct_variant_gets_full_marks(graded, sub):
    _, results = graded(sub)
    assert not lost_units(results), "%s is correct but loses points:\n%s" % (sub.name, failures(results))


# ---------------------------------------------------------------- 4. feedback

def test_failure_names_the_check_and_the_error_against_the_tolerance(graded):
    _, results = graded(mutant("no_tanh_derivative"))
    failed = [r for r in results if r.score < r.max_score]
    assert failed
    for r in failed:
        assert r.name.startswith("rnn_step_backward: ") and len(r.name) > len("rnn_step_backward: ")
        m = re.search(r"largest relative error ([\d.e+-]+) exceeds the tolerance ([\d.e+-]+)", r.output)
        assert m, r.output
        assert float(m.group(1)) > float(m.group(2))


def test_failure_reports_a_shape_mismatch(graded):
    _, results = graded(mutant("db_wrong_axis"))
    public = [r for r in results if r.public and r.score < r.max_score]
    assert public and "db has shape (4,), expected (6,)" in public[0].output, failures(results)


def test_failure_reports_the_exception_at_the_students_file_and_line(graded):
    folder, results = graded(mutant("lstm_swapped_weights"))
    failed = [r for r in results if r.unit == "lstm_step_forward"]
    assert failed and all(r.score == 0 for r in failed)
    for r in failed:
        assert "ValueError" in r.output and "not aligned" in r.output, r.output
        where = WHERE.search(r.output)
        assert where and where.group(1) == M.LAYERS and where.group(3) == "lstm_step_forward", r.output
        assert "x.dot(Wh)" in (folder / M.LAYERS).read_text().split("\n")[int(where.group(2)) - 1]


def test_returning_none_is_explained(graded):
    _, results = graded(mutant("embedding_returns_none"))
    failed = [r for r in results if r.score < r.max_score]
    assert failed and all("dW is NoneType, not a numeric array" in r.output for r in failed), failures(results)


def expected_token_rows(check):
    want = check.expected(reference_impl()) if callable(check.expected) else check.expected
    return [str(row) for row in checks_module().caption_tokens(want["captions"])]


@pytest.mark.slow
def test_hidden_failures_never_show_expected_values(graded):
    seen = 0
    for sub in M.MUTANTS:
        if sub.units:
            continue
        _, results = graded(sub)
        for r in results:
            if r.public or r.score == r.max_score:
                continue
            seen += 1
            message = "\n".join(line for line in r.output.split("\n")
                                if not line.startswith(("warning: ", HINT_PREFIX)))
            assert "\n" not in message and "[" not in message, (sub.name, r.name, r.output)
            assert "expected [" not in message and "got " not in message, (sub.name, r.name, r.output)
            check = next(c for c in CHECKS if c.title == r.name)
            if check.compare == "tokens":
                for row in expected_token_rows(check):
                    assert row not in r.output, (sub.name, r.name, r.output)
    assert seen > 20


def test_hidden_sample_failure_hides_the_decode_but_public_shows_it(graded):
    _, results = graded(mutant("sample_no_feedback"))
    public = [r for r in results if r.public and r.unit == M.RNN_SAMPLE][0]
    hidden = [r for r in results if not r.public and r.unit == M.RNN_SAMPLE and r.score == 0]
    assert "expected [[" in public.output
    assert hidden and all("[" not in r.output for r in hidden), failures(results)


def test_changing_an_input_in_place_is_warned_about(graded):
    _, results = graded(alternative("rnn_backward_accumulates_into_dh_in_place"))
    warned = [r for r in results if "warning: rnn_backward changed its input argument 1" in r.output]
    assert warned, failures(results) or "no warning in any output"
    for r in warned:
        assert r.unit == "rnn_backward" and r.score == r.max_score
        assert any(line.startswith("warning: ") for line in r.output.split("\n")[1:]), r.output
    assert not [r for r in results if "warning" in r.output and r.unit != "rnn_backward"]


def test_a_passing_unit_says_what_passed(graded):
    _, results = graded(alternative("sample_stops_at_end"))
    assert all(r.output.startswith("PASS: ") for r in results)
    assert any(re.search(r"largest relative error \S+ \(tolerance \S+\)", r.output) for r in results)


# ---------------------------------------------------------------- 5. the mistake named at the desk (issue #22)

def desk_lines(folder, units):
    """{unit: the lines check(unit) prints} of each of units, one after another in one process (as
    cells run in one kernel), failures caught."""
    code = ("from captioning.checks import check\nfor u in %r:\n    print('UNIT', u)\n    try:\n"
            "        check(u)\n    except AssertionError:\n        pass\n" % (list(units),))
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("UNIT "):
            current = lines.setdefault(line[5:], [])
        else:
            current.append(line)
    return lines


def hint_units(sub, changed):
    """The units whose hints are looked for: those a mistake loses; for a correct variant, those
    running a function it changed (the others run the answer key's code, whose check cells print
    PASS lines only: tests/test_notebooks.py)."""
    if sub.lost:
        return sorted(sub.lost)
    return [u.name for u in UNITS if not u.training and {u.name, *closure(u.name)} & changed]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """[(submission, folder, touched units, units whose hints are looked for, desk_lines)] of every
    mistake and correct variant; each submission's check cells run once for the tests of hints and
    of agreement."""
    root, key = tmp_path_factory.mktemp("corpus"), M.answer_key()

    def desk(n, sub):
        folder = student_folder(root / str(n), *sub.edits)
        changed = changed_units(folder, key)
        assert changed or sub.lost, "the correct variant %s changes no unit's function" % sub.name
        touched, looked = touched_units(changed), hint_units(sub, changed)
        return sub, folder, touched, looked, desk_lines(folder, sorted(set(touched) | set(looked)))
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda a: desk(*a), enumerate(M.MUTANTS + M.ALTERNATIVES)))


def fails_in_public(unit, mistake_id):
    """Whether a mistake fails a public check of unit in the notebook (hints.json says so)."""
    data = json.loads((RELEASE_DIR / PACKAGE / "hints.json").read_text())["units"][unit][mistake_id]["checks"]
    return any(answer != "pass" for answer in data.values())


@pytest.mark.slow
def test_check_names_each_mistake_of_the_corpus_that_fails_a_public_check(corpus):
    """Every mistake of the corpus (autograder/mistakes.py) that fails a public check of a unit gets its
    own hint there, once; the correct variants get none."""
    wrong = []
    for sub, _, _, looked, lines in corpus:
        hints = [line for unit in looked for line in lines[unit] if line.startswith("HINT  ")]
        mistake = BY_ID.get(sub.name)
        units = [u for u in sorted(mistake.diagnosed) if fails_in_public(u, mistake.id)] if mistake else []
        if hints != ["HINT  " + HINT_PREFIX + (mistake.hint if mistake else "") + "."] * len(units):
            wrong.append((sub.name, units, hints))
    assert not wrong, wrong
    assert sum(1 for m in MISTAKES for u in m.diagnosed if fails_in_public(u, m.id)) >= 50


# ---------------------------------------------------------------- 6. the desk and the grader agree (issue #28)

def function_source(folder, function):
    """The source of a unit's function ('module:qualname') in a package folder, or None."""
    module, qualname = function.split(":")
    node = syntax.parse((folder / PACKAGE / ("%s.py" % module.replace(".", "/"))).read_text())
    for name in qualname.split("."):
        node = next((n for n in node.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name), None)
        if node is None:
            return None
    return ast.dump(node)


def changed_units(folder, key):
    """The units whose function differs from the answer key's."""
    return {u.name for u in UNITS if function_source(folder, u.function) != function_source(key, u.function)}


def touched_units(changed):
    """The units (training ones aside) of changed, and those calling them directly (where a retry or
    the own-forward check comes in)."""
    return [u.name for u in UNITS if not u.training and ({u.name, *u.depends} & changed)]


def notebook_verdicts(lines, units):
    """{title: passed} of the public checks as check(unit) prints them, for each of units."""
    return {line[6:].split(" -- ")[0]: line.startswith("PASS") for unit in units for line in lines[unit]
            if line[:6] in ("PASS  ", "FAIL  ")}


def grader_verdicts(results, units):
    """{title: (passed, output)} of the public checks of units in a grade: a check whose points a unit
    rule withholds (rules 6 and 7) passed."""
    return {r.name: (r.score > 0 or WITHHELD in r.output, r.output) for r in results if r.public and r.unit in units}


# A check the notebook fails and the grader passes says why: right on a retry (rule 2, which the
# notebook announces with "fix ... first"), or the same bug as a unit grading the same method.
EXPLAINED = ("PASS: right with the reference", "PASS: the same failure as")


@pytest.mark.slow
def test_the_notebook_and_the_grader_agree_on_every_public_check_of_the_corpus(corpus, graded):
    """Every mistake and correct variant, on the units it touches: a public check check(unit) passes
    passes in the grader (its points may be withheld by rules 6 and 7, which say so), and one it
    fails fails in the grader unless EXPLAINED."""
    disagree = []
    for sub, _, touched, _, lines in corpus:
        desk, grader = notebook_verdicts(lines, touched), grader_verdicts(graded(sub)[1], touched)
        assert set(desk) == set(grader), (sub.name, set(desk) ^ set(grader))
        for title, passed in desk.items():
            in_grader, output = grader[title]
            if passed != in_grader and (passed or not output.startswith(EXPLAINED)):
                disagree.append((sub.name, title, passed, output))
    assert not disagree, "\n".join(map(str, disagree))

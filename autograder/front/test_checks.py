"""Every check of every unit as a pytest test (see conftest.py for the options)."""


def test_check(graded, title):
    result = graded[title]
    assert result.score == result.max_score, result.output

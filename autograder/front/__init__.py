"""The front ends, each a thin layer over grade.grade() and report.py: the command line (cli),
a class at once (batch, on a Dask cluster: cluster), the code-similarity report (similarity),
nbgrader's plugins (nbgrader) and pytest's (conftest.py, test_checks.py)."""

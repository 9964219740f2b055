"""python -m autograder: the command-line front end (front/cli.py)."""
import sys

from .front.cli import main

sys.exit(main())

"""make bench: run every benchmark in bench/ in turn, each printing its own side-by-side figures."""
import runpy
import sys
from pathlib import Path

for script in sorted(Path(__file__).parent.glob("*.py")):
    if script.name != "__main__.py":
        print("==", script.name, flush=True)
        sys.argv = [str(script)]
        runpy.run_path(str(script), run_name="__main__")

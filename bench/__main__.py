"""make bench: run every benchmark in bench/ in turn, each printing its own side-by-side figures."""
import runpy
import sys
from pathlib import Path

for script in sorted(Path(__file__).parent.glob("*.py")):
    if script.name != "__main__.py":
        print("==", script.name, flush=True)
        sys.argv = [str(script)]
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exit:  # a benchmark's sys.exit(main()) ends that benchmark, not the run
            if exit.code:
                print("%s exited with %s" % (script.name, exit.code), flush=True)

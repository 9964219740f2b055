"""The oracle: serves reference functions to a sandboxed child, in a sandbox of its own.

Started as `python -I oracle.py FROM_CHILD TO_CHILD` with a JSON request on stdin: limits, the
reference modules' source texts and the names it may serve (the units swapped in for this retry,
chosen by the grader, never by the child). It never imports the submission; the child sends
arguments as frames and gets results back (frames.py), so reference code never runs in a process
that loaded student code. A malformed call costs the calling check only, and the child learns only
that it failed: no reference-side text reaches student code.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import frames
from child import apply_limits

FAILED = {"error": "failed"}  # all the child learns of a call that failed


def main():
    from_child, to_child = int(sys.argv[1]), int(sys.argv[2])
    request = json.loads(sys.stdin.readline())
    apply_limits(request["limits"])
    namespace = {"__name__": "reference"}
    for name, text in request["sources"].items():
        exec(compile(text, "<reference %s>" % name, "exec"), namespace)
    allowed = {name: namespace[name] for name in request["allowed"]}
    reader = frames.FrameReader(from_child, request["max_payload"])
    while True:
        try:
            header, args = reader.read()
        except EOFError:
            os._exit(0)
        except frames.FrameError:
            frames.write_frame(to_child, FAILED)
            os._exit(0)  # the stream is out of step: stop serving this child
        function = allowed.get(frames.field(header, "call", str))
        try:
            if function is None or not isinstance(args, tuple):
                raise ValueError("no such function to call")
            frames.write_frame(to_child, {}, function(*args))
        except Exception:
            frames.write_frame(to_child, FAILED)


if __name__ == "__main__":
    main()

"""Build submissions for the hostile corpus: the answer key with code added or replaced.

make(root, name, prelude=..., override=...) writes root/name/captioning/{rnn_layers.py,
classifiers/rnn.py}: `prelude` runs when rnn_layers is imported, `override` is appended to
rnn_layers.py (so it replaces rnn_step_forward, the unit the hostile tests grade).
"""
import shutil
import textwrap
from pathlib import Path
from autograder.course import REFERENCE_PACKAGE

ROOT = Path(__file__).resolve().parents[2]
KEY = REFERENCE_PACKAGE

CORRECT_STEP = ("\n\ndef rnn_step_forward(x, prev_h, Wx, Wh, b):\n    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)\n"
                "    return next_h, (x, prev_h, Wx, Wh, next_h)\n")
BUGGY_STEP = ("\n\ndef rnn_step_forward(x, prev_h, Wx, Wh, b):\n    next_h = np.tanh(x @ Wx + prev_h @ Wh)\n"
              "    return next_h, (x, prev_h, Wx, Wh, next_h)\n")


def make(root, name, prelude="", override="", raw=None, extra=None):
    """A submission folder; raw replaces rnn_layers.py with these bytes; extra = {relpath: bytes}."""
    folder = Path(root) / name
    package = folder / "captioning"
    (package / "classifiers").mkdir(parents=True)
    shutil.copyfile(KEY / "classifiers" / "rnn.py", package / "classifiers" / "rnn.py")
    if raw is not None:
        (package / "rnn_layers.py").write_bytes(raw)
    else:
        text = (KEY / "rnn_layers.py").read_text()
        (package / "rnn_layers.py").write_text(textwrap.dedent(prelude) + "\n" + text + textwrap.dedent(override))
    for rel, data in (extra or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder

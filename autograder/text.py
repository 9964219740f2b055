"""Student-controlled text made safe to print or store.

clean_line() for text that must stay on one line, clean_text() for multi-line outputs (keeps \\n
and \\t). Both drop ANSI escape sequences and every other C0/C1 control, and turn CR and Unicode
line/paragraph separators into line breaks (or spaces), so a submission cannot forge a line of a
table, a log or a report.
"""
import re

_ANSI = re.compile(r"""
    \x1b\[[0-?]*[ -/]*[@-~]                  # CSI: colours, cursor moves, erase line
  | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?       # OSC: window titles, hyperlinks
  | \x1b[PX^_][^\x1b]*(?:\x1b\\)?            # DCS, SOS, PM, APC strings
  | \x1b[ -/]*[0-~]?                         # other escapes (and a lone ESC)
  | \x9b[0-?]*[ -/]*[@-~]                    # 8-bit CSI
""", re.VERBOSE)
_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# C0 and C1 controls, DEL, and the bidirectional overrides that reorder a line on screen
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(text):
    """Multi-line student text, safe to print or store: only \\n and \\t remain as controls."""
    text = _ANSI.sub("", str(text))
    text = _BREAKS.sub("\n", text)
    return _CONTROLS.sub("", text)


def clean_line(text):
    """One line of student text: clean_text() with line breaks and tabs as spaces."""
    return re.sub(r"[\n\t]", " ", clean_text(text))

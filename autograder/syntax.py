"""Reading Python source in the grader's own process.

parse() is ast.parse for the grader's own files, one thread at a time: CPython 3.11 (and 3.12
before its fix of gh-106905) keeps one AST recursion counter per interpreter, so two threads
parsing at once, one paused by a garbage collection, fail with "SystemError: AST constructor
recursion depth mismatch".

A submission's files are never parsed to a tree here: 2 MB of source (what intake accepts) can
take 1 GB as a tree, or overflow the parser's recursion. stub_lines() reads them token by token.
"""
import ast
import io
import threading
import tokenize

_lock = threading.Lock()


def parse(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    """ast.parse(source, filename), one thread at a time."""
    with _lock:
        return ast.parse(source, filename)


def stub_lines(source: str) -> dict[str, int]:
    """{qualified name: line} of the first `raise NotImplementedError` inside each function or
    class (nested ones included) of a module's source; what precedes a token error counts."""
    found: dict[str, int] = {}
    blocks: list[str] = []  # the def/class names enclosing the current line
    levels: list[bool] = []  # per indent level: whether it opened a def/class body
    header = opened = None  # the def/class name of the line being read; of the line just ended
    previous = ["", ""]
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in (tokenize.NL, tokenize.COMMENT):
                continue
            if token.type == tokenize.INDENT:
                levels.append(opened is not None)
                blocks += [opened] if opened else []
            elif token.type == tokenize.DEDENT and levels:
                if levels.pop():
                    blocks.pop()
            elif token.type == tokenize.NAME:
                if previous[-1] in ("def", "class") and previous[-2] != ".":
                    header = token.string
                elif previous[-1] == "raise" and token.string == "NotImplementedError":
                    inside = blocks + ([header] if header else [])
                    for n in range(1, len(inside) + 1):
                        found.setdefault(".".join(inside[:n]), token.start[0])
            opened, header = (header, None) if token.type == tokenize.NEWLINE else (None, header)
            previous = [previous[-1], token.string]
    except (tokenize.TokenError, SyntaxError):
        pass
    return found

"""The frame protocol refuses what a hostile child may send, before allocating anything for it."""
import json
import os
import tempfile

import numpy as np
import pytest

from autograder.inside import frames


def read(data, cap=1 << 20):
    """The frame read from a file holding data (a pipe would block on large data)."""
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        return frames.FrameReader(f.fileno(), cap).read()


def frame(header, payload=b""):
    return (json.dumps(dict(header, size=len(payload))) + "\n").encode() + payload


def test_a_tree_of_arrays_round_trips():
    value = {"h": np.arange(6.0).reshape(2, 3), "cache": (np.float32(2.5), [np.array([1, 2]), None, 3, "x"]),
             "scalar": np.array(7.0)}
    r, w = os.pipe()
    frames.write_frame(w, {"id": 1}, value)
    os.close(w)
    header, back = frames.FrameReader(r, 1 << 20).read()
    os.close(r)
    assert header["id"] == 1 and back["scalar"].shape == () and back["cache"][0].dtype == np.float32
    assert np.array_equal(back["h"], value["h"]) and back["cache"][1][1:] == [None, 3, "x"]
    back["h"][0, 0] = 1  # writable


@pytest.mark.parametrize("data,reason", [
    (b"x" * (frames.MAX_HEADER + 10), "header longer"),
    (b"not json\n", "not JSON"),
    (b"[1, 2]\n", "not an object"),
    (b'{"size": -1}\n', "payload size"),
    (b'{"size": 1099511627776}\n', "payload size"),
    (b'{"size": "12"}\n', "payload size"),
    (b'{"a": ' * 20000 + b'1' + b'}' * 20000 + b"\n", "header"),
    (frame({"tree": {"a": ["<f8", [1 << 40]]}}), "malformed array"),
    (frame({"tree": {"a": ["<f8", [4, 4]]}}, b"\0" * 64), "larger than the payload"),
    (frame({"tree": {"a": ["(99999999999999,)f8", [1]]}}, b"\0" * 8), "malformed array"),
    (frame({"tree": {"a": ["(9,)f8", [1]]}}, b"\0" * 72), "booleans or numbers"),
    (frame({"tree": {"a": ["<f8", [0] * 9]}}), "malformed array"),
    (frame({"tree": {"a": ["|O", [1]]}}, b"\0" * 8), "booleans or numbers"),
    (frame({"tree": {"a": ["<U4", [1]]}}, b"\0" * 16), "booleans or numbers"),
    (frame({"tree": {"a": ["<f8", [1]]}}, b"\0" * 16), "payload longer"),
    (frame({"tree": {"t": [{"x": 1}]}}), "malformed"),
    (frame({"tree": {"l": [{"v": 0}] * (frames.MAX_NODES + 1)}}), "header longer|malformed"),
])
def test_hostile_frames_are_refused(data, reason):
    with pytest.raises(frames.FrameError, match=reason):
        read(data)


def test_values_that_cannot_travel_are_refused_on_sending():
    with pytest.raises(frames.FrameError):
        frames.encode({"x": object()})
    with pytest.raises(frames.FrameError):
        frames.encode(np.array(["text"]))


def test_the_oracle_serves_only_the_functions_the_grader_allows():
    """The oracle, started as the grader starts it, answers calls of its allowed function and
    refuses anything else; bad arguments cost the call only."""
    from autograder.reference import oracle_sources
    from autograder.sandbox import Box, Cgroup, Limits, Sandboxed, preflight
    limits = Limits()
    cgroup, box = Cgroup(limits), Box(preflight(limits).mode)
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    oracle = Sandboxed("oracle.py", {"sources": oracle_sources(), "allowed": ["rnn_step_forward"]},
                       [to_r, from_w], box, limits, cgroup, with_submission=False)
    os.close(to_r)
    os.close(from_w)
    reader = frames.FrameReader(from_r, 1 << 20)
    try:
        x, h, Wx, Wh, b = (np.ones(s) for s in [(2, 3), (2, 4), (3, 4), (4, 4), (4,)])
        frames.write_frame(to_w, {"call": "rnn_step_forward"}, (x, h, Wx, Wh, b))
        header, value = reader.read()
        assert np.allclose(value[0], np.tanh(x @ Wx + h @ Wh + b))
        for name, args in [("rnn_forward", (x, h, Wx, Wh, b)), ("__import__", ("os",)), ("np", ()),
                           ("rnn_step_forward", ("a", "b")), ("rnn_step_forward", [x])]:
            frames.write_frame(to_w, {"call": name}, args)
            header, value = reader.read()
            assert "error" in header and value is None, (name, header)
            assert "def " not in header["error"] and "tanh" not in header["error"], header
    finally:
        os.close(to_w)
        oracle.kill()
        os.close(from_r)
        box.close()
        cgroup.remove()

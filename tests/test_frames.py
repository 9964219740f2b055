"""The frame protocol refuses what a hostile child may send, before allocating anything for it."""
import json
import os

import numpy as np
import pytest

from autograder.inside import frames


def read(data, cap=1 << 20):
    r, w = os.pipe()
    try:
        os.write(w, data)
        os.close(w)
        return frames.FrameReader(r, cap).read()
    finally:
        os.close(r)


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
    back["h"][0, 0] = 1  # writable, not a view of the frame's bytes


@pytest.mark.parametrize("data,reason", [
    (b"x" * (frames.MAX_HEADER + 10), "header longer"),
    (b"not json\n", "not JSON"),
    (b"[1, 2]\n", "not an object"),
    (b'{"size": -1}\n', "payload size"),
    (b'{"size": 1099511627776}\n', "payload size"),
    (b'{"size": "12"}\n', "payload size"),
    (b'{"a": ' * 20000 + b'1' + b'}' * 20000 + b"\n", "header"),
    (frame({"tree": {"a": ["<f8", [1 << 40]]}}), "larger than the payload"),
    (frame({"tree": {"a": ["|O", [1]]}}, b"\0" * 8), "booleans or numbers"),
    (frame({"tree": {"a": ["<U4", [1]]}}, b"\0" * 16), "booleans or numbers"),
    (frame({"tree": {"a": ["<f8", [1]]}}, b"\0" * 16), "payload longer"),
    (frame({"tree": {"t": [{"x": 1}]}}), "malformed"),
    (frame({"tree": {"l": [{"l": []}] * (frames.MAX_NODES + 1)}}), "malformed"),
])
def test_hostile_frames_are_refused(data, reason):
    with pytest.raises(frames.FrameError, match=reason):
        read(data)


def test_values_that_cannot_travel_are_refused_on_sending():
    with pytest.raises(frames.FrameError):
        frames.encode({"x": object()})
    with pytest.raises(frames.FrameError):
        frames.encode(np.array(["text"]))

"""The dataset path: get_datasets.sh (download via a local server, --mini), the mini generator, coco_utils."""
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from autograder.course import ASSIGNMENT
from datasets import coco_format
from source.image_captioning.captioning import coco_utils
from source.image_captioning.captioning.image_utils import image_from_url

ROOT = Path(__file__).resolve().parents[1]

WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "cat", "dog", "sits"]


def get_datasets(*args, script=ROOT / "get_datasets.sh", **env):
    """Run get_datasets.sh on this interpreter (PYTHON=sys.executable unless env says otherwise);
    return the CompletedProcess."""
    clean = {k: v for k, v in os.environ.items() if k not in ("COCO_URL", "DATASETS_DIR", "PYTHON")}
    clean["PYTHON"] = sys.executable
    return subprocess.run([str(script), *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def repo_without_python_on_path(tmp_path, with_venv):
    """A copy of get_datasets.sh, datasets/*.py and the captioning package in tmp_path, optionally
    with a .venv/bin/python that runs this interpreter; returns the script's path."""
    shutil.copy(ROOT / "get_datasets.sh", tmp_path)
    (tmp_path / "datasets").mkdir()
    for module in (ROOT / "datasets").glob("*.py"):
        shutil.copy(module, tmp_path / "datasets")
    package = Path("source", "image_captioning", "captioning")  # make_netviz.py's model is defined there
    shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    if with_venv:
        python = tmp_path / ".venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        python.chmod(0o755)
    return tmp_path / "get_datasets.sh"


def write_real_format(folder, n_train=6, n_val=4, pca_width=512):
    """A tiny dataset laid out like the official coco_captioning/ (two captions an image, http urls)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    with open(folder / coco_format.VOCAB, "w") as f:
        json.dump({"idx_to_word": WORDS, "word_to_idx": {w: i for i, w in enumerate(WORDS)}}, f)
    captions = {}
    for split, n in (("train", n_train), ("val", n_val)):
        caps = np.zeros((2 * n, 17), np.int32)
        caps[:, 0], caps[:, 1:4], caps[:, 4] = 1, rng.integers(4, len(WORDS), (2 * n, 3)), 2
        captions[f"{split}_captions"] = caps
        captions[f"{split}_image_idxs"] = np.repeat(np.arange(n, dtype=np.int32), 2)
        for suffix, width in (("", 4096), ("_pca", pca_width)):
            with h5py.File(folder / f"{split}2014_vgg16_fc7{suffix}.h5", "w") as f:
                f["features"] = rng.standard_normal((n, width)).astype(np.float32)
        urls = [f"http://images.cocodataset.org/{split}2014/COCO_{split}2014_{i:012d}.jpg" for i in range(n)]
        (folder / f"{split}2014_urls.txt").write_text("".join(u + "\n" for u in urls))
    with h5py.File(folder / coco_format.CAPTIONS, "w") as f:
        for name, array in captions.items():
            f[name] = array
    return folder


def zip_folder(folder, path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in coco_format.FILES:
            zf.write(folder / name, f"coco_captioning/{name}")
    return path.read_bytes()


@pytest.fixture(scope="session")
def mini(tmp_path_factory):
    """The embedded dataset built by ./get_datasets.sh --mini into a temporary datasets/ folder:
    coco_mini built, and the network visualization's model as `make data` (which `make test` runs
    first) trained it, found up to date (training takes 20 s; test_student_release compares the
    model a student's venv trains with make data's, byte for byte)."""
    datasets = tmp_path_factory.mktemp("mini") / "datasets"
    shutil.copytree(ROOT / "datasets" / "netviz_mini", datasets / "netviz_mini")
    result = get_datasets("--mini", "--dest", str(datasets))
    assert result.returncode == 0, result.stderr
    assert "netviz_mini is up to date" in result.stdout, result.stdout
    return datasets


@pytest.fixture(scope="session")
def real_zip(tmp_path_factory):
    """Bytes of a small archive in the official layout."""
    tmp = tmp_path_factory.mktemp("real")
    return zip_folder(write_real_format(tmp / "coco_captioning"), tmp / "coco_captioning.zip")


class Server(http.server.ThreadingHTTPServer):
    """Serves `files` (path -> bytes) on 127.0.0.1 with Range support; can break off one response."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.ranges, self.break_next = {}, [], False

    def url(self, path):
        return f"http://127.0.0.1:{self.server_port}{path}"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            self.server.ranges.append(start)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.server.break_next:  # promise everything, send half, hang up
            self.server.break_next = False
            body = body[:len(body) // 2]
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def assert_nothing_loadable(datasets, monkeypatch):
    monkeypatch.setenv("CAPTIONING_DATASETS", str(datasets))
    with pytest.raises(coco_utils.DatasetError):
        coco_utils.load_coco_data()


# --- the embedded dataset -------------------------------------------------------------------------

@pytest.mark.slow
def test_mini_has_the_coco_format(mini):
    folder = mini / "coco_mini"
    coco_format.verify(folder)
    data = coco_utils.load_coco_data(folder, pca_features=False)
    assert data["train_features"].shape[1] == 4096 and data["train_features"].dtype == np.float32
    assert data["idx_to_word"][:4] == ["<NULL>", "<START>", "<END>", "<UNK>"]
    captions = data["train_captions"]
    assert (captions[:, 0] == 1).all() and ((captions == 2).sum(axis=1) == 1).all()
    ends = (captions == 2).argmax(axis=1)
    assert all((row[end + 1:] == 0).all() and (row[1:end] > 3).all() for row, end in zip(captions, ends))
    assert (np.bincount(data["train_image_idxs"]) == 5).all()
    assert 1000 <= len(data["train_features"]) <= 2000 and 200 <= len(data["val_features"]) <= 500


@pytest.mark.slow
def test_mini_build_is_deterministic_and_idempotent(mini, tmp_path):
    """coco_mini built twice, the same bytes (the network visualization's model: test_student_release);
    built again in place, "already built" at once."""
    start = time.monotonic()
    again = get_datasets("--mini", "--dest", str(mini))
    assert again.returncode == 0 and "already built" in again.stdout
    assert time.monotonic() - start < 5
    other = tmp_path / "coco_mini"
    subprocess.run([sys.executable, str(ROOT / "datasets" / "make_mini.py"), "--dest", str(other)], check=True,
                   capture_output=True, timeout=60)
    files = sorted(p.relative_to(mini / "coco_mini") for p in (mini / "coco_mini").rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(other) for p in other.rglob("*") if p.is_file())
    assert all((mini / "coco_mini" / f).read_bytes() == (other / f).read_bytes() for f in files)


@pytest.mark.slow
def test_script_uses_the_repositorys_venv(tmp_path, mini):
    """Run by hand after `make demo`: no python with numpy on PATH, but the repo's .venv has one. The
    network visualization's model, as the `mini` fixture built it, is there already: the venv's
    python finds it up to date instead of training it again (25 s)."""
    script = repo_without_python_on_path(tmp_path, with_venv=True)
    tools = tmp_path / "bin"  # PATH: what the script needs, and no python3 to fall back on
    tools.mkdir()
    for name in ("bash", "dirname"):
        (tools / name).symlink_to(shutil.which(name))
    shutil.copytree(mini / "netviz_mini", tmp_path / "out" / "netviz_mini")
    result = get_datasets("--mini", "--dest", str(tmp_path / "out"), script=script, PATH=str(tools), PYTHON="")
    assert result.returncode == 0, result.stderr
    coco_format.verify(tmp_path / "out" / "coco_mini")
    assert "netviz_mini is up to date" in result.stdout, result.stdout


def test_script_without_a_usable_python_fails_with_one_line(tmp_path):
    script = repo_without_python_on_path(tmp_path, with_venv=False)
    result = get_datasets("--mini", "--dest", str(tmp_path / "out"), script=script, PYTHON="/bin/false")
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "numpy, h5py, pillow or tqdm" in line and "make data" in line
    assert not (tmp_path / "out").exists()


# --- coco_utils and image_utils -------------------------------------------------------------------

@pytest.mark.slow
def test_load_picks_the_embedded_dataset_via_env(mini, monkeypatch, capsys):
    monkeypatch.setenv("CAPTIONING_DATASETS", str(mini))
    data = coco_utils.load_coco_data()
    assert "embedded mini" in capsys.readouterr().out
    assert set(data) == {"train_captions", "train_image_idxs", "val_captions", "val_image_idxs",
                         "train_features", "val_features", "idx_to_word", "word_to_idx", "train_urls", "val_urls"}
    assert data["val_features"].shape == (len(data["val_urls"]), 512)
    assert data["train_urls"].dtype.kind == "U" and os.path.isabs(data["train_urls"][0])
    image = image_from_url(data["val_urls"][0])
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert (image_from_url("images/val/00000.png") == image).all()  # relative to the dataset


def test_load_prefers_the_real_dataset_found_walking_up(tmp_path, monkeypatch, capsys):
    datasets = tmp_path / "datasets"
    write_real_format(datasets / "coco_captioning")
    (datasets / "coco_mini").symlink_to(ROOT / "datasets" / "coco_mini")  # make data's, beside the real one
    notebook_dir = tmp_path / "release" / ASSIGNMENT
    notebook_dir.mkdir(parents=True)
    monkeypatch.delenv("CAPTIONING_DATASETS", raising=False)
    monkeypatch.chdir(notebook_dir)
    data = coco_utils.load_coco_data(pca_features=False)
    assert "COCO captioning dataset" in capsys.readouterr().out
    assert data["train_features"].shape == (6, 4096) and data["train_captions"].shape == (12, 17)
    assert data["val_urls"][0].startswith("http://images.cocodataset.org/val2014/")


def test_max_train_resamples_aligned_captions(tmp_path):
    folder = write_real_format(tmp_path / "coco_captioning")
    full = coco_utils.load_coco_data(folder)
    np.random.seed(231)
    data = coco_utils.load_coco_data(folder, max_train=50)
    np.random.seed(231)
    mask = np.random.randint(12, size=50)
    assert (data["train_captions"] == full["train_captions"][mask]).all()
    assert (data["train_image_idxs"] == full["train_image_idxs"][mask]).all()
    assert data["train_features"].shape == full["train_features"].shape  # features stay whole


def test_sample_coco_minibatch_matches_images(tmp_path):
    data = coco_utils.load_coco_data(write_real_format(tmp_path / "coco_captioning"))
    captions, features, urls = coco_utils.sample_coco_minibatch(data, batch_size=7, split="val")
    assert captions.shape == (7, 17) and features.shape == (7, 512) and urls.shape == (7,)
    for caption, feature, url in zip(captions, features, urls):
        rows = np.flatnonzero((data["val_captions"] == caption).all(axis=1))
        idx = data["val_image_idxs"][rows[0]]
        assert (feature == data["val_features"][idx]).all() and url == data["val_urls"][idx]


def test_decode_captions():
    captions = np.array([[1, 4, 5, 2, 0, 0], [1, 4, 0, 6, 2, 7]])
    assert coco_utils.decode_captions(captions, WORDS) == ["<START> a cat <END>", "<START> a dog <END>"]
    assert coco_utils.decode_captions(captions[1], WORDS) == "<START> a dog <END>"
    assert coco_utils.decode_captions(np.array([4, 6, 7]), WORDS) == "a dog sits"


def test_missing_dataset_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONING_DATASETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"get_datasets\.sh .*--mini"):
        coco_utils.load_coco_data()


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_dataset_is_one_clear_error(tmp_path, damage):
    folder = write_real_format(tmp_path / "coco_captioning")
    path = folder / "train2014_vgg16_fc7_pca.h5"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    else:
        path.unlink()
    with pytest.raises(coco_utils.DatasetError, match=r"train2014_vgg16_fc7_pca\.h5 .*get_datasets\.sh") as info:
        coco_utils.load_coco_data(folder)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_image_from_url_failures_print_and_return_none(server, capsys):
    assert image_from_url(server.url("/missing.jpg")) is None
    assert image_from_url(str(Path("/nonexistent/x.png"))) is None
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


# --- get_datasets.sh ------------------------------------------------------------------------------

def test_download_verifies_installs_and_is_idempotent(server, real_zip, tmp_path, monkeypatch):
    server.files["/coco.zip"] = real_zip
    datasets = tmp_path / "datasets"
    result = get_datasets("--dest", str(datasets), COCO_URL=server.url("/coco.zip"))
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(datasets)) == ["coco_captioning"]  # archive and temporaries are gone
    monkeypatch.setenv("CAPTIONING_DATASETS", str(datasets))
    assert coco_utils.load_coco_data()["train_captions"].shape == (12, 17)
    del server.files["/coco.zip"]  # a second run must not download
    again = get_datasets("--url", server.url("/coco.zip"), "--dest", str(datasets))
    assert again.returncode == 0 and "already" in again.stdout


def test_broken_download_resumes(server, real_zip, tmp_path, monkeypatch):
    server.files["/coco.zip"], server.break_next = real_zip, True
    datasets = tmp_path / "datasets"
    first = get_datasets(DATASETS_DIR=str(datasets), COCO_URL=server.url("/coco.zip"))
    assert first.returncode != 0 and "re-run to resume" in first.stderr.splitlines()[-1]
    assert os.listdir(datasets) == ["coco_captioning.zip.part"]
    assert_nothing_loadable(datasets, monkeypatch)
    second = get_datasets(DATASETS_DIR=str(datasets), COCO_URL=server.url("/coco.zip"))
    assert second.returncode == 0, second.stderr
    assert server.ranges == [len(real_zip) // 2]
    coco_format.verify(datasets / "coco_captioning")


@pytest.mark.parametrize("archive", ["not a zip", "wrong feature width"])
def test_corrupt_archive_is_rejected(server, tmp_path, monkeypatch, archive):
    if archive == "not a zip":
        body = b"<html>captive portal</html>" * 100
    else:
        body = zip_folder(write_real_format(tmp_path / "bad", pca_width=500), tmp_path / "bad.zip")
    server.files["/coco.zip"] = body
    datasets = tmp_path / "datasets"
    result = get_datasets("--dest", str(datasets), "--url", server.url("/coco.zip"))
    assert result.returncode != 0
    assert "not a valid COCO captioning dataset" in result.stderr.splitlines()[-1]
    assert os.listdir(datasets) == []
    assert_nothing_loadable(datasets, monkeypatch)


def test_http_error_fails_fast_with_one_line(server, tmp_path):
    start = time.monotonic()
    result = get_datasets("--dest", str(tmp_path), COCO_URL=server.url("/nope.zip"))
    assert time.monotonic() - start < 10
    assert result.returncode != 0 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "404" in line and "--mini" in line


def test_unreachable_host_fails_fast_with_one_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    result = get_datasets("--dest", str(tmp_path), COCO_URL=f"http://127.0.0.1:{port}/coco.zip")
    assert time.monotonic() - start < 10
    [line] = result.stderr.strip().splitlines()
    assert result.returncode != 0 and "--mini" in line
    assert not (tmp_path / "coco_captioning").exists()

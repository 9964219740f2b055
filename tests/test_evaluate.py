"""captioning.evaluate: COCO caption metrics (pycocoevalcap) against all references of each image,
the score table and the caption gallery, on the embedded dataset."""
import functools
import http.server
import threading
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from source.image_captioning.captioning import evaluate as E
from source.image_captioning.captioning.coco_utils import decode_captions, load_coco_data

matplotlib.use("Agg")

MINI = Path(__file__).resolve().parents[1] / "datasets" / "coco_mini"


@pytest.fixture(scope="module")
def data():
    return load_coco_data(str(MINI))


class Oracle:
    """A "model" whose caption of each image is one of its reference captions (the k-th)."""

    def __init__(self, data, split, k):
        self.features, self.k = data["%s_features" % split], k
        self.captions = {int(i): data["%s_captions" % split][data["%s_image_idxs" % split] == i][k]
                         for i in np.unique(data["%s_image_idxs" % split])}
        self.beam_sizes = []

    def sample(self, features, max_length=30, beam_size=1):
        self.beam_sizes.append(beam_size)
        images = [int(np.flatnonzero((self.features == f).all(axis=1))[0]) for f in features]
        return np.stack([self.captions[i][1:max_length + 1] for i in images])  # without <START>


def test_bleu_is_wired_as_the_coco_code_computes_it():
    """One image, a 3-word candidate whose words all occur in the 6-word reference: precision 1,
    brevity penalty exp(1 - 6/3)."""
    scores = E.score_captions({7: "a cat sat"}, {7: ["a cat sat on the mat"]})
    assert scores["BLEU-1"] == pytest.approx(np.exp(-1), rel=1e-6)


def test_every_reference_of_an_image_counts():
    refs = {1: ["a red circle on the left", "there is a blue square"], 2: ["a green triangle at the top"]}
    second = E.score_captions({1: "there is a blue square", 2: "a green triangle at the top"}, refs)
    assert all(second[m] == pytest.approx(1.0) for m in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"))
    only_first = {1: refs[1][:1], 2: refs[2]}
    without = E.score_captions({1: "there is a blue square", 2: "a green triangle at the top"}, only_first)
    assert without["BLEU-4"] < 0.6 and without["CIDEr-D"] < second["CIDEr-D"]


def test_references_are_all_captions_of_each_image(data):
    images = E.split_images(data, "val")
    refs = E.reference_captions(data, "val", images)
    assert len(images) == len(data["val_features"]) and sorted(refs) == images.tolist()
    image = int(images[3])
    expected = [c.replace("<START> ", "").replace(" <END>", "")
                for c in decode_captions(data["val_captions"][data["val_image_idxs"] == image], data["idx_to_word"])]
    assert refs[image] == expected and len(expected) == 5
    assert not any(w in ref.split() for ref in refs[image] for w in E.SPECIAL_WORDS)


def test_a_model_giving_a_reference_caption_scores_full_bleu_and_the_table_is_deterministic(data):
    model = Oracle(data, "val", k=2)
    table = E.evaluate(model, data, "val", beam_sizes=(1, 3), max_images=120)
    assert list(table) == ["greedy", "beam 3"] and set(model.beam_sizes) == {1, 3}
    for row in table.values():
        assert set(row) == set(E.METRICS)
        assert all(row[m] == pytest.approx(1.0) for m in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"))
        assert row["CIDEr-D"] > 1.0
    text = str(table)
    assert text.splitlines()[0].split() == ["decoding", *E.METRICS] and "beam 3" in text
    assert E.evaluate(model, data, "val", beam_sizes=(1, 3), max_images=120) == table


def test_the_gallery_shows_images_with_reference_and_generated_captions(data):
    figure = E.show_gallery(Oracle(data, "val", k=0), data, "val", num_images=4, beam_size=3, columns=2)
    shown = [ax for ax in figure.axes if ax.get_title(loc="left")]
    assert len(shown) == 4
    for ax in shown:
        title = ax.get_title(loc="left")
        assert title.startswith("greedy: ") and "\nbeam 3: " in title and "\nGT: " in title
        assert len(ax.images) == 1 and ax.images[0].get_array().shape == (64, 64, 3)  # the embedded images


def test_an_unreachable_image_is_an_empty_panel_not_an_error(data, capsys):
    offline = dict(data, val_urls=np.array(["http://127.0.0.1:9/missing.jpg"] * len(data["val_urls"])))
    figure = E.show_gallery(Oracle(data, "val", k=0), offline, "val", num_images=2)
    panels = [ax for ax in figure.axes if ax.get_title(loc="left")]
    assert len(panels) == 2 and not any(ax.images for ax in panels)
    assert all(any(t.get_text() == "image not available" for t in ax.texts) for ax in panels)
    assert "could not load http://127.0.0.1:9/missing.jpg" in capsys.readouterr().out


def test_the_gallery_fetches_images_by_url_when_reachable(data):
    """COCO's images come as http URLs: served here from 127.0.0.1 (the embedded images)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(MINI / "images"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = "http://127.0.0.1:%d/val/" % server.server_port
        urls = np.array([base + "%05d.png" % i for i in range(len(data["val_urls"]))])
        figure = E.show_gallery(Oracle(data, "val", k=0), dict(data, val_urls=urls), "val", num_images=3)
    finally:
        server.shutdown()
        server.server_close()
    panels = [ax for ax in figure.axes if ax.get_title(loc="left")]
    assert len(panels) == 3 and all(len(ax.images) == 1 for ax in panels)


class GreedyOnly(Oracle):
    """A student who has not written the optional beam search."""

    def sample(self, features, max_length=30, beam_size=1):
        if beam_size > 1 or self.captions is None:
            raise NotImplementedError()
        return super().sample(features, max_length, beam_size)


def test_an_unwritten_beam_search_leaves_out_beam_rows_not_the_greedy_ones(data, capsys):
    table = E.evaluate(GreedyOnly(data, "val", k=1), data, "val", beam_sizes=(1, 3), max_images=20)
    assert list(table) == ["greedy"] and table["greedy"]["BLEU-4"] == pytest.approx(1.0)
    assert "beam 3: left out, beam_search is not written yet" in capsys.readouterr().out
    figure = E.show_gallery(GreedyOnly(data, "val", k=1), data, "val", num_images=2)
    assert all("\nbeam 3: (not written yet)\n" in ax.get_title(loc="left") for ax in figure.axes[:2])
    nothing = GreedyOnly(data, "val", k=1)
    nothing.captions = None  # sample not written either: greedy decoding is not optional
    with pytest.raises(NotImplementedError):
        E.evaluate(nothing, data, "val", beam_sizes=(1, 3), max_images=5)

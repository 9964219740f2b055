"""Judging generated captions as the field does (given code).

Each image of a split is captioned once and its caption is scored against all of the image's
reference captions with the scorers of the COCO caption evaluation code (pycocoevalcap): BLEU-1 to
BLEU-4 and CIDEr-D (the package's Cider, which is the CIDEr-D variant: clipped n-gram counts and a
length penalty). The captions are already tokenized, so the package's Java tokenizer is not used.
Everything here is deterministic.
"""
import contextlib
import io

import numpy as np

from .coco_utils import decode_captions
from .image_utils import image_from_url

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D")
SPECIAL_WORDS = ("<NULL>", "<START>", "<END>")


def caption_text(caption, idx_to_word):
    """One caption's words (ids or a decoded string) as plain text, without special tokens."""
    text = caption if isinstance(caption, str) else decode_captions(np.asarray(caption), idx_to_word)
    return " ".join(w for w in text.split() if w not in SPECIAL_WORDS)


def split_images(data, split, max_images=None):
    """The split's images that have captions, in increasing order: the first max_images of them."""
    return np.unique(data["%s_image_idxs" % split])[:max_images]


def reference_captions(data, split, images):
    """{image: [every reference caption of the image, as text]} for the given images."""
    refs = {int(i): [] for i in images}
    for caption, image in zip(data["%s_captions" % split], data["%s_image_idxs" % split]):
        if int(image) in refs:
            refs[int(image)].append(caption_text(caption, data["idx_to_word"]))
    return refs


def generate_captions(model, data, split, images, beam_size=1, max_length=30, batch_size=500):
    """{image: the model's caption of the image, as text}, by greedy decoding or beam search."""
    features = data["%s_features" % split]
    captions = {}
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        sampled = model.sample(features[batch], max_length=max_length, beam_size=beam_size)
        for image, caption in zip(batch, sampled):
            captions[int(image)] = caption_text(caption, data["idx_to_word"])
    return captions


def score_captions(candidates, references):
    """{metric: score} of candidates {image: text} against references {image: [texts]}."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    images = sorted(candidates)
    hypotheses = {i: [candidates[i]] for i in images}
    refs = {i: list(references[i]) for i in images}
    with contextlib.redirect_stdout(io.StringIO()):  # the BLEU scorer prints its n-gram counts
        bleu, _ = Bleu(4).compute_score(refs, hypotheses)
        cider, _ = Cider().compute_score(refs, hypotheses)
    return dict(zip(METRICS, [float(b) for b in bleu] + [float(cider)]))


class ScoreTable(dict):
    """{decoding: {metric: score}}, shown as a table."""

    def __str__(self):
        width = max([len("decoding")] + [len(name) for name in self])
        lines = ["%-*s" % (width, "decoding") + "".join("%9s" % m for m in METRICS)]
        for name, scores in self.items():
            lines.append("%-*s" % (width, name) + "".join("%9.3f" % scores[m] for m in METRICS))
        return "\n".join(lines)

    __repr__ = __str__


def evaluate(model, data, split="val", beam_sizes=(1, 3), max_images=None, max_length=30):
    """Score the model's captions of a split's images, for each beam size, in one table.

    Inputs:
    - model: a captioning model (sample(features, max_length, beam_size)).
    - data: the dictionary of load_coco_data.
    - split: "train" or "val".
    - beam_sizes: one row per beam size (1 is greedy decoding).
    - max_images: score only the first max_images images of the split (None: all of them).
    - max_length: longest caption generated.

    Returns a ScoreTable: {"greedy" or "beam K": {metric: score}}; print it to see the table.
    Beam sizes are left out, with a printed line, while beam_search is not written yet.
    """
    images = split_images(data, split, max_images)
    references = reference_captions(data, split, images)
    table = ScoreTable()
    for beam_size in beam_sizes:
        captions = captions_if_written(model, data, split, images, beam_size, max_length)
        if captions is not None:
            table["greedy" if beam_size == 1 else "beam %d" % beam_size] = score_captions(captions, references)
    return table


def captions_if_written(model, data, split, images, beam_size, max_length):
    """generate_captions, or None (with a printed line) for a beam size whose beam_search raises
    NotImplementedError: beam search is optional, greedy decoding is not."""
    try:
        return generate_captions(model, data, split, images, beam_size, max_length)
    except NotImplementedError:
        if beam_size == 1:
            raise
        print("beam %d: left out, beam_search is not written yet" % beam_size)
        return None


def show_gallery(model, data, split="val", num_images=6, beam_size=3, seed=0, columns=3, max_length=30):
    """A figure of num_images images of a split (picked by seed), each titled with its reference
    captions and the model's greedy and beam-search captions. Images that cannot be loaded (e.g.
    COCO URLs while offline) are shown as an empty panel saying so. Returns the figure."""
    import matplotlib.pyplot as plt

    images = np.random.RandomState(seed).choice(split_images(data, split), size=num_images, replace=False)
    references = reference_captions(data, split, images)
    greedy = generate_captions(model, data, split, images, 1, max_length)
    beam = captions_if_written(model, data, split, images, beam_size, max_length) or {}
    rows = -(-num_images // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 5.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image in zip(axes.flat, images):
        picture = image_from_url(str(data["%s_urls" % split][image]))
        if picture is None:
            ax.text(0.5, 0.5, "image not available", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.imshow(picture)
        lines = ["greedy: " + greedy[int(image)],
                 "beam %d: %s" % (beam_size, beam.get(int(image), "(not written yet)"))]
        lines += ["GT: " + ref for ref in references[int(image)][:3]]
        ax.set_title("\n".join(lines), fontsize=8, loc="left", wrap=True)
    figure.tight_layout()
    return figure

"""The network visualization part (PyTorch): the answer key against an implementation written
here from the definitions (on the embedded model), grading in the sandbox (answer key, release,
mistakes, correct variants), the SqueezeNet layout, and the real download served on 127.0.0.1."""
import hashlib
import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import source.image_captioning.captioning.net_visualization_pytorch as NV
import source.image_captioning.captioning.net_visualization_utils as U
from autograder.grade import grade
from autograder.mistakes import FOOLING, SALIENCY, STEP
from autograder.results import GradingOptions
from autograder.units import BY_NAME
from tests.hostile import lost_units
from tests.mutants import MUTANTS, NETVIZ_ALTERNATIVES, answer_key, stub_submission
from tests.test_datasets import ROOT, Server

UNITS = SALIENCY, FOOLING, STEP
NETVIZ_MUTANTS = [m for m in MUTANTS if m.lost <= set(UNITS)]
EMBEDDED = ROOT / "datasets"


def failures(results):
    return "\n".join("  %s -> %s" % (r.name, r.output) for r in results if r.score < r.max_score)


# ---------------------------------------------------------------- the definitions, written again

def saliency_by_definition(X, y, model):
    """|d s_y(X_i) / d X_i|, max over channels, each image on its own (no batching)."""
    model.eval()
    maps = []
    for i in range(len(X)):
        x = X[i:i + 1].detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(x)[0, int(y[i])], x)
        maps.append(g[0].abs().max(dim=0).values)
    return torch.stack(maps)


def fooling_by_definition(X, target, model):
    x = X.detach().clone()
    for _ in range(100):
        v = x.clone().requires_grad_(True)
        scores = model(v)
        if int(scores[0].argmax()) == target:
            break
        (g,) = torch.autograd.grad(scores[0, target], v)
        x = x + g / torch.linalg.vector_norm(g)
    return x


def step_by_definition(img, model, target, l2_reg, learning_rate):
    v = img.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(v)[0, target], v)
    g = g - 2 * l2_reg * v.detach()
    return img.detach() + learning_rate * g / torch.linalg.vector_norm(g)


@pytest.fixture(scope="module")
def embedded():
    model, kind = U.load_pretrained_model(str(EMBEDDED))
    X, y, names = U.load_imagenet_val(num=5, datasets=str(EMBEDDED))
    return model, kind, torch.cat([U.preprocess(x) for x in X]), torch.from_numpy(y), names


def test_the_embedded_model_is_there_frozen_in_eval_mode_and_accurate(embedded):
    model, kind, X, y, names = embedded
    assert kind == "embedded" and len(names) == 9 and X.shape == (5, 3, 64, 64)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    saved = torch.load(EMBEDDED / "netviz_mini" / "shapes_cnn.pt", weights_only=True)
    assert saved["val_accuracy"] > 0.85
    assert (model(X).argmax(1) == y).float().mean() >= 0.6


def test_answer_key_saliency_matches_the_definition(embedded):
    model, _, X, y, _ = embedded
    model.train()  # the function must put it in eval mode
    got = NV.compute_saliency_maps(X.clone(), y, model)
    assert got.shape == (5, 64, 64)
    np.testing.assert_allclose(got.detach().numpy(), saliency_by_definition(X, y, model).numpy(), rtol=1e-5,
                               atol=1e-7)


def test_saliency_is_on_the_object(embedded):
    """The embedded images' background is smooth and the shape is the one thing that differs: the
    saliency inside the shape's bounding box is well above the map's mean."""
    model, _, X, y, _ = embedded
    maps = NV.compute_saliency_maps(X.clone(), y, model).numpy()
    raw, _, _ = U.load_imagenet_val(num=5, datasets=str(EMBEDDED))
    for image, m in zip(raw, maps):
        colourful = image.astype(float).std(axis=2) > 60  # the shape's saturated colour
        assert m[colourful].mean() > 1.5 * m.mean()


def test_answer_key_fooling_image_matches_the_definition_and_fools(embedded):
    model, _, X, y, _ = embedded
    for i in range(3):
        x = X[i:i + 1]
        for target in {int(model(x)[0].argsort()[-2]), int(model(x)[0].argmin()), (int(y[i]) + 4) % 9}:
            got = NV.make_fooling_image(x.clone(), target, model).detach()
            want = fooling_by_definition(x, target, model)
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    x, target = X[:1], (int(y[0]) + 4) % 9  # the notebook's (100 unit steps do not reach every target)
    got = NV.make_fooling_image(x.clone(), target, model).detach()
    assert int(model(got).argmax()) == target
    change = (U.deprocess(got, should_rescale=False).astype(int) - U.deprocess(x, should_rescale=False)).std()
    assert change < 8, "the fooling image should look the same: pixel change std %.1f / 255" % change


def test_answer_key_update_step_matches_the_definition(embedded):
    model, _, X, _, _ = embedded
    for l2_reg, lr in ((1e-3, 25.0), (0.3, 1.0)):
        img = X[2:3].clone().requires_grad_(True)
        want = step_by_definition(img, model, 4, l2_reg, lr)
        NV.class_visualization_update_step(img, model, 4, l2_reg, lr)
        np.testing.assert_allclose(img.detach().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
        assert img.grad is None or not img.grad.abs().sum()


def test_class_visualization_is_recognised_as_its_class(embedded):
    model = embedded[0]
    for target in (0, 4, 8):
        img = U.create_class_visualization(target, model, size=64, num_iterations=100, max_jitter=4, seed=0,
                                           show=False)
        assert int(model(U.preprocess(img)).argmax()) == target


# ---------------------------------------------------------------- SqueezeNet 1.1's layout

def test_squeezenet_has_torchvisions_layout():
    model = U.SqueezeNet()
    assert sum(p.numel() for p in model.parameters()) == 1235496  # torchvision's squeezenet1_1
    keys = list(model.state_dict())
    assert keys[:2] == ["features.0.weight", "features.0.bias"]
    assert "features.3.expand3x3.weight" in keys and keys[-2:] == ["classifier.1.weight", "classifier.1.bias"]
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


# ---------------------------------------------------------------- grading

def grade_units(folder, units=UNITS):
    return grade(folder, GradingOptions(units=units, jobs=2))


def test_answer_key_full_marks_and_release_zero(tmp_path):
    results = grade_units(answer_key())
    assert sum(r.score for r in results) == pytest.approx(15) and not lost_units(results), failures(results)
    stub = grade_units(stub_submission(tmp_path / "stub"))
    assert sum(r.score for r in stub) == 0
    assert all("not implemented" in r.output for r in stub), failures(stub)


def test_enough_mistakes_and_variants():
    assert len(NETVIZ_MUTANTS) >= 8 and len(NETVIZ_ALTERNATIVES) >= 3
    assert set().union(*(m.lost for m in NETVIZ_MUTANTS)) == set(UNITS)
    assert all(BY_NAME[u].points == 5 for u in UNITS)


@pytest.mark.slow
@pytest.mark.parametrize("sub", NETVIZ_MUTANTS, ids=lambda s: s.name)
def test_a_netviz_mistake_costs_exactly_its_unit(sub, tmp_path):
    results = grade_units(sub.build(tmp_path))  # every netviz unit graded: the others keep full marks
    assert lost_units(results) == set(sub.lost), "%s: %s\n%s" % (sub.name, sub.what, failures(results))


@pytest.mark.parametrize("sub", NETVIZ_ALTERNATIVES, ids=lambda s: s.name)
def test_a_netviz_variant_gets_full_marks(sub, tmp_path):
    results = grade_units(sub.build(tmp_path))
    assert not lost_units(results), failures(results)


# ---------------------------------------------------------------- the real download, on 127.0.0.1

@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def fake_real_files():
    buffer = io.BytesIO()
    torch.manual_seed(0)
    torch.save(U.SqueezeNet().state_dict(), buffer)
    images = io.BytesIO()
    rng = np.random.RandomState(0)
    np.savez(images, X=rng.randint(256, size=(25, 224, 224, 3)).astype(np.uint8), y=rng.randint(1000, size=25),
             label_map=np.array({i: "class %d" % i for i in range(1000)}, dtype=object))
    return buffer.getvalue(), images.getvalue()


def fetch(datasets, server, **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("SQUEEZENET_URL", "IMAGENET_VAL_URL", "PYTHON")}
    return subprocess.run([str(ROOT / "get_datasets.sh"), "--squeezenet", "--dest", str(datasets),
                           "--weights-url", server.url("/w.pth"), "--images-url", server.url("/val.npz")],
                          env=dict(clean, PYTHON=sys.executable, **env), capture_output=True, text=True, timeout=120)


def test_real_download_resumes_verifies_and_is_used(server, tmp_path):
    weights, images = fake_real_files()
    digest = hashlib.sha256(weights).hexdigest()[:8]
    server.files.update({"/w.pth": weights, "/val.npz": images})
    server.break_next = True
    datasets = tmp_path / "datasets"
    first = fetch(datasets, server, SQUEEZENET_HASH=digest)
    assert first.returncode != 0 and "re-run to resume" in first.stderr.splitlines()[-1], first.stderr
    second = fetch(datasets, server, SQUEEZENET_HASH=digest)
    assert second.returncode == 0, second.stderr
    assert server.ranges == [len(weights) // 2]
    assert sorted(os.listdir(datasets / "squeezenet")) == ["imagenet_val_25.npz", "squeezenet1_1-b8a52dc0.pth"]
    (datasets / "netviz_mini").mkdir()  # the real files are preferred over the embedded ones
    model, kind = U.load_pretrained_model(str(datasets))
    X, y, names = U.load_imagenet_val(num=2, datasets=str(datasets))
    assert kind == "squeezenet" and X.shape == (2, 224, 224, 3) and names[3] == "class 3"
    assert model(U.preprocess(X[0])).shape == (1, 1000)


def test_real_download_with_the_wrong_hash_is_refused(server, tmp_path):
    weights, images = fake_real_files()
    server.files.update({"/w.pth": weights, "/val.npz": images})
    result = fetch(tmp_path / "datasets", server)  # the real prefix b8a52dc0: the fake weights fail it
    assert result.returncode != 0 and "deleted it" in result.stderr.splitlines()[-1], result.stderr
    assert not (tmp_path / "datasets" / "squeezenet" / "squeezenet1_1-b8a52dc0.pth").exists()

"""Given code of the network visualization notebook (nothing here is graded).

- the models: torchvision's SqueezeNet 1.1 written in plain PyTorch (same module names, so that
  torchvision's ImageNet weights `squeezenet1_1-b8a52dc0.pth` load into it as they are), and the
  small CNN of the embedded data (`ShapesCNN`), trained by `get_datasets.sh --mini`;
- `load_pretrained_model()` and `load_imagenet_val(num)`: the real model and the course's 25
  ImageNet validation images when `get_datasets.sh` fetched them (datasets/squeezenet/), else the
  embedded model and its 25 images (datasets/netviz_mini/); both ask the same `which()`;
- `preprocess` / `deprocess` with the ImageNet mean and std, `jitter`, `blur_image` and
  `create_class_visualization`, as in the course.
"""
import os
import random

import numpy as np
import torch
from torch import nn

from .coco_utils import FETCH_HINT, find_datasets_dir

SQUEEZENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
SQUEEZENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SQUEEZENET_WEIGHTS = "squeezenet1_1-b8a52dc0.pth"
REAL_DIR, EMBEDDED_DIR = "squeezenet", "netviz_mini"
REAL_FILES = (SQUEEZENET_WEIGHTS, "imagenet_val_25.npz")
EMBEDDED_FILES = ("shapes_cnn.pt", "shapes_val_25.npz")


# ---------------------------------------------------------------- the models

class Fire(nn.Module):
    """SqueezeNet's Fire module: a 1x1 squeeze, then 1x1 and 3x3 expands concatenated."""

    def __init__(self, inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes):
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1 (Iandola et al. 2016), laid out exactly as torchvision.models.squeezenet1_1."""

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
        )
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Conv2d(512, num_classes, kernel_size=1),
                                        nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


class ShapesCNN(nn.Module):
    """The embedded model: three 3x3 conv layers, global average pooling and a linear classifier
    (a dropout before it, as SqueezeNet has), for 64x64 images of coloured shapes."""

    def __init__(self, num_classes=9, width=32, dropout=0.2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width // 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width // 2, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        )
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(2 * width, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def frozen(model):
    """The model in eval mode with its parameters frozen (no gradients with respect to them)."""
    for p in model.parameters():
        p.requires_grad = False
    return model.eval()


# ---------------------------------------------------------------- the data

def which(datasets=None):
    """("squeezenet" | "embedded", folder): the real model and images when both are there, else
    the embedded ones. DatasetError-like FileNotFoundError when neither is."""
    datasets = datasets or find_datasets_dir()
    for kind, name, files in (("squeezenet", REAL_DIR, REAL_FILES), ("embedded", EMBEDDED_DIR, EMBEDDED_FILES)):
        folder = os.path.join(datasets, name) if datasets else None
        if folder and all(os.path.isfile(os.path.join(folder, f)) for f in files):
            return kind, folder
    raise FileNotFoundError("No network visualization data found (datasets/%s or datasets/%s): %s"
                            % (REAL_DIR, EMBEDDED_DIR, FETCH_HINT))


def load_pretrained_model(datasets=None):
    """(model, kind): SqueezeNet 1.1 with its ImageNet weights, or the embedded ShapesCNN; in eval
    mode, parameters frozen, float32."""
    kind, folder = which(datasets)
    if kind == "squeezenet":
        model = SqueezeNet()
        model.load_state_dict(torch.load(os.path.join(folder, SQUEEZENET_WEIGHTS), map_location="cpu",
                                         weights_only=True))
    else:
        saved = torch.load(os.path.join(folder, EMBEDDED_FILES[0]), map_location="cpu", weights_only=True)
        model = ShapesCNN(num_classes=len(saved["class_names"]), **saved.get("config", {}))
        model.load_state_dict(saved["state_dict"])
    return frozen(model), kind


def load_imagenet_val(num=None, datasets=None):
    """(X uint8 (num, H, W, 3), y (num,), class_names {index: name}) of the 25 images of the model
    load_pretrained_model gives: ImageNet validation images (224x224), or the embedded ones (64x64)."""
    kind, folder = which(datasets)
    with np.load(os.path.join(folder, REAL_FILES[1] if kind == "squeezenet" else EMBEDDED_FILES[1]),
                 allow_pickle=kind == "squeezenet") as f:  # the course's file keeps its label map pickled
        X, y, label_map = f["X"], f["y"], f["label_map"]
    class_names = label_map.item() if label_map.dtype == object else dict(enumerate(label_map.tolist()))
    if num is not None:
        X, y = X[:num], y[:num]
    return X, y, class_names


# ---------------------------------------------------------------- image helpers

def preprocess(img, size=None):
    """uint8 (H, W, 3) image (array or PIL) -> normalised float tensor (1, 3, size, size)."""
    from PIL import Image
    if size is not None:
        img = Image.fromarray(np.asarray(img)).resize((size, size), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - SQUEEZENET_MEAN) / SQUEEZENET_STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy())[None]


def rescale(x):
    low, high = x.min(), x.max()
    return (x - low) / (high - low) if high > low else x - low


def deprocess(img, should_rescale=True):
    """Tensor (1, 3, H, W) or (3, H, W) -> uint8 (H, W, 3) image: the normalisation undone, then
    (should_rescale) stretched to [0, 1]."""
    x = img.detach().cpu().double().reshape(-1, *img.shape[-3:])[0].numpy().transpose(1, 2, 0)
    x = x * SQUEEZENET_STD + SQUEEZENET_MEAN
    if should_rescale:
        x = rescale(x)
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def jitter(X, ox, oy):
    """X (N, C, H, W) rolled by ox along W, then by oy along H."""
    return torch.roll(torch.roll(X, ox, dims=3), oy, dims=2)


def blur_image(X, sigma=1):
    """Gaussian blur of each channel of X (N, C, H, W), in place (reflected edges); returns X."""
    radius = int(4.0 * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=X.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    N, C, H, W = X.shape
    with torch.no_grad():
        y = X.reshape(N * C, 1, H, W)
        y = torch.nn.functional.pad(y, (radius, radius, 0, 0), mode="reflect")
        y = torch.nn.functional.conv2d(y, kernel.view(1, 1, 1, -1))
        y = torch.nn.functional.pad(y, (0, 0, radius, radius), mode="reflect")
        y = torch.nn.functional.conv2d(y, kernel.view(1, 1, -1, 1))
        X.copy_(y.reshape(N, C, H, W))
    return X


def create_class_visualization(target_y, model, dtype=torch.float32, class_names=None, l2_reg=1e-3,
                               learning_rate=25, num_iterations=100, blur_every=10, max_jitter=16,
                               show_every=25, size=224, seed=None, show=True):
    """Generate an image that the model scores highly for target_y, from random noise: each
    iteration jitters the image, takes one class_visualization_update_step, undoes the jitter,
    clamps each channel to the normalised [0, 1] range, and blurs every blur_every iterations.
    Returns the image as uint8 (size, size, 3)."""
    from .net_visualization_pytorch import class_visualization_update_step
    if seed is not None:
        random.seed(seed)
        torch.manual_seed(seed)
    model.type(dtype)
    img = torch.randn(1, 3, size, size).type(dtype).requires_grad_()
    for t in range(num_iterations):
        ox, oy = random.randint(0, max_jitter), random.randint(0, max_jitter)
        img.data.copy_(jitter(img.data, ox, oy))
        class_visualization_update_step(img, model, target_y, l2_reg, learning_rate)
        img.data.copy_(jitter(img.data, -ox, -oy))
        for c in range(3):
            low = float(-SQUEEZENET_MEAN[c] / SQUEEZENET_STD[c])
            high = float((1.0 - SQUEEZENET_MEAN[c]) / SQUEEZENET_STD[c])
            img.data[:, c].clamp_(min=low, max=high)
        if t % blur_every == 0:
            blur_image(img.data, sigma=0.5)
        if show and (t == 0 or (t + 1) % show_every == 0 or t == num_iterations - 1):
            import matplotlib.pyplot as plt
            plt.imshow(deprocess(img.data.clone().cpu()))
            name = class_names[target_y] if class_names else target_y
            plt.title("%s\nIteration %d / %d" % (name, t + 1, num_iterations))
            plt.gcf().set_size_inches(4, 4)
            plt.axis("off")
            plt.show()
    return deprocess(img.data.cpu())

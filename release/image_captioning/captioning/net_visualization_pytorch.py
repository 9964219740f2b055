"""Network visualization in PyTorch: saliency maps, fooling images and class visualization.

The three functions below are yours to write (the given code they use lives in
`captioning/net_visualization_utils.py`). Each gets a PyTorch model whose parameters are frozen
(`requires_grad=False`) and that maps images X of shape (N, 3, H, W) to class scores (N, C); what
you differentiate is a score with respect to the image.
"""
import torch


def compute_saliency_maps(X, y, model):
    """Saliency maps of images X for their labels y.

    Inputs:
    - X: input images, a float tensor of shape (N, 3, H, W)
    - y: their labels, a long tensor of shape (N,)
    - model: a pretrained CNN used to compute the saliency maps

    Returns a tensor of shape (N, H, W): for each image, the absolute value of the gradient of its
    correct-class (unnormalised) score with respect to its pixels, the maximum over the 3 colour
    channels. Put the model in eval ("test") mode first, and compute every image's gradient with
    one backward pass (the scores of the correct classes summed over the batch).
    """
    saliency = None
    # YOUR CODE HERE
    raise NotImplementedError()
    return saliency


def make_fooling_image(X, target_y, model):
    """A fooling image: X changed a little so that the model predicts target_y.

    Inputs:
    - X: an input image, a float tensor of shape (1, 3, H, W)
    - target_y: an integer in the range [0, num_classes)
    - model: a pretrained CNN

    Starting from a copy of X, do gradient ascent on the score of target_y (not the loss): each
    step dX = learning_rate * g / ||g||_2, where g is the gradient of that score with respect to the
    image, until the model's highest score is target_y's (at most 100 steps). Returns the image.
    """
    X_fooling = X.clone().requires_grad_()
    learning_rate = 1
    # YOUR CODE HERE
    raise NotImplementedError()
    return X_fooling


def class_visualization_update_step(img, model, target_y, l2_reg, learning_rate):
    """One step of gradient ascent that makes img look more like class target_y to the model.

    Inputs:
    - img: the image, a float leaf tensor of shape (1, 3, H, W) with requires_grad=True
    - model: a pretrained CNN
    - target_y: an integer in the range [0, num_classes)
    - l2_reg: the strength lambda of the L2 regularisation
    - learning_rate: the step size

    Ascend the regularised score s_y(I) - lambda * ||I||_2^2: with g its gradient with respect to
    img, change img in place by learning_rate * g / ||g||_2, then clear img's gradient so that the
    next step starts afresh. Returns nothing.
    """
    # YOUR CODE HERE
    raise NotImplementedError()

# ruff: noqa: E501 (patches quote lines of the solution verbatim, as in tests/mutants.py)
"""The network visualization units' typical mistakes and correct variants (tests/mutants.py adds
them to MUTANTS and ALTERNATIVES): each mistake loses exactly its unit, each variant full marks."""
from tests.mutants import Body, Patch, Submission, mutant

NV = "captioning/net_visualization_pytorch.py"
SALIENCY, FOOLING, STEP = "compute_saliency_maps", "make_fooling_image", "class_visualization_update_step"

NETVIZ_MUTANTS = [
    mutant("saliency_of_the_loss", [Patch(NV, "    correct = scores.gather(1, y.view(-1, 1)).squeeze(1)\n    correct.sum().backward()",
                                          "    torch.nn.functional.cross_entropy(scores, y).backward()")],
           {SALIENCY}, "the gradient of the loss instead of the correct class's score", units=(SALIENCY,)),
    mutant("saliency_sum_over_channels", [Patch(NV, "saliency = X.grad.abs().max(dim=1).values",
                                                "saliency = X.grad.abs().sum(dim=1)")],
           {SALIENCY}, "sums over the colour channels instead of taking the maximum", units=(SALIENCY,)),
    mutant("saliency_no_abs", [Patch(NV, "saliency = X.grad.abs().max(dim=1).values",
                                     "saliency = X.grad.max(dim=1).values")],
           {SALIENCY}, "no absolute value of the gradient", units=(SALIENCY,)),
    mutant("saliency_train_mode", [Patch(NV, "    model.eval()\n    X = X.clone()", "    X = X.clone()")],
           {SALIENCY}, "leaves the model in train mode (dropout on)", units=(SALIENCY,)),
    mutant("fooling_unnormalised_step", [Patch(NV, "X_fooling += learning_rate * g / g.norm()",
                                               "X_fooling += learning_rate * g")],
           {FOOLING}, "the step is the raw gradient, not normalised", units=(FOOLING,)),
    mutant("fooling_descent", [Patch(NV, "X_fooling += learning_rate * g / g.norm()",
                                     "X_fooling -= learning_rate * g / g.norm()")],
           {FOOLING}, "gradient descent on the target's score", units=(FOOLING,)),
    mutant("fooling_gradient_not_zeroed", [Patch(NV, "            X_fooling += learning_rate * g / g.norm()\n"
                                                 "            X_fooling.grad.zero_()\n",
                                                 "            X_fooling += learning_rate * g / g.norm()\n")],
           {FOOLING}, "the gradient accumulates over the steps (never zeroed)", units=(FOOLING,)),
    mutant("class_step_gradient_not_zeroed", [Patch(NV, "        img += learning_rate * g / g.norm()\n"
                                                    "        img.grad.zero_()\n",
                                                    "        img += learning_rate * g / g.norm()\n")],
           {STEP}, "the image's gradient is never cleared: the next step adds to it", units=(STEP,)),
    mutant("class_step_regularisation_sign", [Patch(NV, "objective = model(img)[0, target_y] - l2_reg * (img * img).sum()",
                                                    "objective = model(img)[0, target_y] + l2_reg * (img * img).sum()")],
           {STEP}, "regularises with the wrong sign (rewards a large image)", units=(STEP,)),
    mutant("class_step_descent", [Patch(NV, "img += learning_rate * g / g.norm()", "img -= learning_rate * g / g.norm()")],
           {STEP}, "descent instead of ascent", units=(STEP,)),
    mutant("class_step_unnormalised", [Patch(NV, "img += learning_rate * g / g.norm()", "img += learning_rate * g")],
           {STEP}, "the step is the raw gradient, not normalised", units=(STEP,)),
]

NETVIZ_ALTERNATIVES = [
    Submission("netviz_autograd_grad_and_one_hot", (
        Body(NV, SALIENCY, """
            model.eval()
            X = X.detach().requires_grad_(True)
            scores = model(X)
            one_hot = torch.zeros_like(scores)
            one_hot[torch.arange(len(y)), y] = 1
            (grad,) = torch.autograd.grad(scores, X, grad_outputs=one_hot)
            saliency, _ = torch.max(torch.abs(grad), dim=1)
        """),
        Body(NV, STEP, """
            score = model(img)[0, target_y]
            (g,) = torch.autograd.grad(score, img)
            g = g - 2 * l2_reg * img.detach()
            img.data.add_(learning_rate * g / torch.sqrt((g ** 2).sum()))
        """)), units=(SALIENCY, STEP)),
    Submission("netviz_course_style_data_updates", (
        Body(NV, SALIENCY, """
            model.eval()
            X.requires_grad_()
            scores = model(X)
            scores.backward(torch.nn.functional.one_hot(y, scores.shape[1]).to(scores.dtype))
            saliency = X.grad.data.abs().amax(dim=1)
        """),
        Body(NV, FOOLING, """
            for i in range(100):
                scores = model(X_fooling)
                _, predicted = scores.max(1)
                if predicted[0] == target_y:
                    break
                scores[:, target_y].sum().backward()
                dX = learning_rate * X_fooling.grad.data / X_fooling.grad.data.norm()
                X_fooling.data += dX
                X_fooling.grad.data.zero_()
        """),
        Body(NV, STEP, """
            scores = model(img)
            objective = scores[:, target_y].sum() - l2_reg * torch.norm(img) ** 2
            objective.backward()
            img.data += learning_rate * img.grad.data / torch.norm(img.grad.data)
            img.grad.data.zero_()
        """)), units=(SALIENCY, FOOLING, STEP)),
    Submission("netviz_fresh_leaf_each_step", (
        Body(NV, FOOLING, """
            X_fooling = X.detach().clone()
            for _ in range(100):
                x = X_fooling.clone().requires_grad_(True)
                scores = model(x)
                if int(torch.argmax(scores[0])) == target_y:
                    break
                g = torch.autograd.grad(scores[0, target_y], x)[0]
                X_fooling = X_fooling + learning_rate * g / g.norm(p=2)
        """),
        Body(NV, STEP, """
            img.grad = None
            loss = l2_reg * img.square().sum() - model(img)[0][target_y]
            loss.backward()
            with torch.no_grad():
                step = -img.grad
                img.add_(step, alpha=learning_rate / step.norm().item())
            img.grad = None
        """)), units=(FOOLING, STEP)),
]

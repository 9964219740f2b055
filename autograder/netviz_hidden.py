"""Hidden checks of the network visualization units (PyTorch): other images, sizes and labels,
N=1, other targets (far ones too), other l2_reg and learning rates, several steps, float32 as
well as float64.

Like hidden.py's: inputs from each grade's seed, expected values from the reference's run on the
same probe (a fooling image too: the same ascent reaches the same image), sent to the sandbox as a
public probe's name and arguments.
"""


def netviz_hidden_checks(C, s, same):
    saliency, fooling, step = C.NETVIZ_UNITS
    f32 = dict(dtype="float32", tol=1e-4, atol=1e-6)
    return [
        same(saliency, "other images and labels, N=1, 24x20", "saliency_probe", s(101), N=1, H=24, W=20),
        same(saliency, "N=5, 12x28", "saliency_probe", s(102), N=5, H=12, W=28),
        same(saliency, "float32 images and model, N=4", "saliency_probe", s(103), N=4, **f32),
        same(fooling, "other image, the runner-up class", "fooling_probe", s(104)),
        same(fooling, "the third class, 20x12", "fooling_probe", s(105), H=20, W=12, rank=-3),
        same(fooling, "float32 image and model", "fooling_probe", s(106), **dict(f32, tol=1e-3, atol=1e-5)),
        same(fooling, "the lowest-scored class, 32x32 (mostly 30 to 100 steps away)", "fooling_probe", s(110), H=32,
             W=32, rank=0),
        same(step, "3 steps, l2_reg=1e-3, learning_rate=25", "class_step_probe", s(107), s(107) % 10, 1e-3, 25.0,
             steps=3),
        same(step, "2 steps, l2_reg=0.2, learning_rate=1, 20x24", "class_step_probe", s(108), s(108) % 10, 0.2,
             1.0, steps=2, H=20, W=24),
        same(step, "float32, 2 steps", "class_step_probe", s(109), s(109) % 10, 1e-2, 10.0, steps=2, **f32),
    ]

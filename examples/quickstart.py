"""Quickstart: a tiny MLP trained by hand on synthetic data, to show the layer contract.

forward, loss gradient, backward, a plain gradient step: nothing hidden.
Run: python examples/quickstart.py
"""

import numpy as np

from npvae import nn

rng = np.random.default_rng(0)
# Points on a noisy circle, reconstructed through a 1-unit bottleneck.
angle = rng.uniform(0, 2 * np.pi, 512)
x = np.stack([np.cos(angle), np.sin(angle)], axis=1) + 0.05 * rng.standard_normal((512, 2))
x = x.astype(np.float32)

net = nn.Sequential(nn.Linear(2, 32, rng=rng), nn.Tanh(), nn.Linear(32, 1, rng=rng), nn.Tanh(),
                    nn.Linear(1, 32, rng=rng), nn.Tanh(), nn.Linear(32, 2, rng=rng))
lr = 0.1
for step in range(2001):
    y = net.forward(x)
    loss = np.mean(np.sum((y - x) ** 2, axis=1))  # squared error per example, averaged
    dy = 2 * (y - x) / len(x)  # dL/dy
    net.zero_grad()
    net.backward(dy)
    for name, p in net.params.items():
        p -= lr * net.grads[name]  # in place: the dicts hold the layers' own arrays
    if step % 500 == 0:
        print(f"step {step:5d}  reconstruction error {loss:.4f}")

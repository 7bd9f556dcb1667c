"""A chain of modules."""

from .module import Container


class Sequential(Container):
    """``y = f_k(...f_1(x))``; parameters are named ``"<index>.<name>"`` (``"0.W"``).

    Backward is the chain rule read right to left: dy flows through each child's
    backward in reverse order, each adding its own parameter gradients.
    """

    def __init__(self, *modules):
        super().__init__((str(i), m) for i, m in enumerate(modules))
        self.layers = list(modules)

    def forward(self, x):
        """Each layer in turn; an input a layer refuses is reported with its index."""
        for i, m in enumerate(self.layers):
            try:
                x = m.forward(x)
            except (TypeError, ValueError) as e:
                raise type(e)(f"layer {i} ({type(m).__name__}): {e}") from None
        self.out_shape = x.shape  # whatever the last layer keeps
        return x

    def backward(self, dy, need_dx=True):
        """Each layer's backward in reverse order; ``need_dx=False`` tells the first
        layer that nothing needs the gradient of the input (returns None)."""
        for m in reversed(self.layers[1:]):
            dy = m.backward(dy)
        return self.layers[0].backward(dy, need_dx)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        inner = "".join(f"\n  ({i}) {m!r}" for i, m in enumerate(self.layers))
        return f"Sequential({inner}\n)"

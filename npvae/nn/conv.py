"""2-D convolution and transposed convolution, NCHW, with PyTorch's shapes and sizes,
each with its activation, as the dense layer has."""

import numpy as np

from .. import kernels
from ..checks import as_rng, check_array, check_positive_int
from .activations import ACTIVATIONS
from .init import initializer
from .module import Module


def _pair(value, name, minimum):
    """An int or a pair of ints, each >= minimum, as a pair."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
    return tuple(check_positive_int(v, name, minimum) for v in pair)


class _ConvBase(Module):
    """What Conv2d and ConvTranspose2d share: arguments, parameters and input checks.

    ``activation`` names f in ``y = f(conv(x) + b)`` (a key of ``nn.activations.ACTIVATIONS``,
    with that class's default slope or alpha; "identity" by default), as for
    ``Linear``: the backend applies f in the pass that writes the output, and the
    backward reads f' from y alone (``kernels.reference.OUTPUT_DERIVATIVES``: y > 0
    exactly where h > 0 for the ReLU family, tanh' = 1 - y^2, ...), so the layer keeps
    y and not the pre-activation. ``Conv2d(1, 4, 3, activation="relu")`` computes what
    ``Sequential(Conv2d(1, 4, 3), ReLU())`` does."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, transposed, rng, init, dtype,
                 activation):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation, self.alpha = activation, ACTIVATIONS[activation]().alpha
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        k = self.kernel_size[0] * self.kernel_size[1]
        fan_in, fan_out = self.in_channels * k, self.out_channels * k
        channels = (self.in_channels, self.out_channels) if transposed else (self.out_channels, self.in_channels)
        self.add_param("W", initializer(init)(as_rng(rng), (*channels, *self.kernel_size), fan_in, fan_out, dtype))
        self.add_param("b", np.zeros(self.out_channels, dtype=dtype))

    def _check_input(self, x):
        check_array(x, "x", shape=(None, self.in_channels, None, None), dtype=self.params["W"].dtype)
        out = self.output_shape(x.shape[2:])
        if min(out) < 1:
            raise ValueError(
                f"x: spatial size {x.shape[2:]} too small for kernel {self.kernel_size}, "
                f"stride {self.stride}, padding {self.padding} (output would be {out})"
            )

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding),
                "activation": self.activation}

    def __repr__(self):
        act = "" if self.activation == "identity" else f", activation={self.activation!r}"
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}{act})"
        )


class Conv2d(_ConvBase):
    """Cross-correlation, as in PyTorch, then the activation f (``_ConvBase``)::

        h[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] * xpad[n, c, i*sh + p, j*sw + q],   y = f(h)

    ``W`` (out_channels, in_channels, kh, kw); ``xpad`` is x zero-padded by ``padding``.
    Output size per axis: ``(H + 2 pad - k) // stride + 1``. Default init: He-normal
    (ReLU conv nets), bias zeros.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None,
                 init="he_normal", dtype=np.float32, activation="identity"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding,
                         False, rng, init, dtype, activation)

    def output_shape(self, hw):
        """(Ho, Wo) for an input of spatial size ``hw``."""
        return tuple(
            kernels.ops.conv_output_size(s, k, st, p)
            for s, k, st, p in zip(hw, self.kernel_size, self.stride, self.padding)
        )

    def forward(self, x):
        self._check_input(x)
        y = kernels.ops.conv2d_forward(x, self.params["W"], self.params["b"], self.stride, self.padding,
                                       self.activation, self.alpha)
        return self.save_for_backward((x, y), y)

    def backward(self, dy, need_dx=True):
        """First ``dh = dy * f'(y)``; then each weight meets every receptive field it
        slid over, so with ``cols`` the receptive fields of x as rows (im2col), ``Y =
        cols @ Wf^T`` and ``dH`` dh as rows::

            dL/dWf = dH^T cols,   dL/db[o] = sum_{n,i,j} dh[n,o,i,j],
            dL/dx  = col2im(dH Wf)   (each field's gradient added back where it came from)
        """
        x, y = self.saved_for_backward(dy)
        return kernels.ops.conv2d_backward(x, self.params["W"], dy, self.grads["W"], self.grads["b"],
                                           self.stride, self.padding, need_dx, self.activation, self.alpha, y)


class ConvTranspose2d(_ConvBase):
    """Transposed convolution: the adjoint (the input gradient) of a Conv2d with the
    same weight, plus a bias, then the activation f (``_ConvBase``). ``W``
    (in_channels, out_channels, kh, kw) as in PyTorch::

        h[n, o, i*sh + p - ph, j*sw + q - pw] += x[n, c, i, j] * W[c, o, p, q],   y = f(h)

    Output size per axis: ``(H - 1) stride - 2 pad + k + output_padding``, where
    ``output_padding < stride`` picks among the sizes a strided Conv2d maps to H.
    Default init: He-normal with fan_in = in_channels * kh * kw, bias zeros.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 rng=None, init="he_normal", dtype=np.float32, activation="identity"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding,
                         True, rng, init, dtype, activation)
        self.output_padding = _pair(output_padding, "output_padding", 0)
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"output_padding: expected each < stride {self.stride}, got {self.output_padding}")

    def config(self):
        return {**super().config(), "output_padding": list(self.output_padding)}

    def __repr__(self):
        extra = f", output_padding={self.output_padding}" if any(self.output_padding) else ""
        return super().__repr__()[:-1] + extra + ")"

    def output_shape(self, hw):
        return tuple(
            kernels.ops.conv_output_size(s, k, st, p, op, transposed=True)
            for s, k, st, p, op in zip(hw, self.kernel_size, self.stride, self.padding, self.output_padding)
        )

    def forward(self, x):
        self._check_input(x)
        y = kernels.ops.conv_transpose2d_forward(
            x, self.params["W"], self.params["b"], self.stride, self.padding, self.output_padding,
            self.activation, self.alpha)
        return self.save_for_backward((x, y), y)

    def backward(self, dy, need_dx=True):
        """The forward is ``h = col2im(X Wf) + b`` with X the pixels of x as rows; first
        ``dh = dy * f'(y)``, then, the adjoint of col2im being im2col, with ``D`` = im2col(dh)::

            dL/dX  = D Wf^T   (a plain Conv2d of dh with W),
            dL/dWf = X^T D,   dL/db[o] = sum_{n,i,j} dh[n,o,i,j]
        """
        x, y = self.saved_for_backward(dy)
        return kernels.ops.conv_transpose2d_backward(x, self.params["W"], dy, self.grads["W"], self.grads["b"],
                                                     self.stride, self.padding, need_dx, self.activation,
                                                     self.alpha, y)


MASKS = ("A", "B")


def causal_mask(kernel_size, mask):
    """The (kh, kw) 0/1 mask of a PixelCNN kernel centred on the output pixel: 1 on
    the rows above the centre and left of it on its row; the centre itself only for
    mask "B". Output (i, j) then reads input pixels before (i, j) in raster order
    ("A"), or up to and including it ("B")."""
    if mask not in MASKS:
        raise ValueError(f"mask: expected one of {MASKS}, got {mask!r}")
    kh, kw = kernel_size
    m = np.zeros((kh, kw))
    m[: kh // 2] = 1
    m[kh // 2, : kw // 2 + (mask == "B")] = 1
    return m


class MaskedConv2d(Conv2d):
    """A PixelCNN convolution (van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel
    Recurrent Neural Networks", 2016): a stride-1, same-size Conv2d whose weight is
    multiplied by :func:`causal_mask`, so that output pixel (i, j) depends only on the
    input pixels before it in raster order (``mask="A"``, for the first layer, whose
    input is the image itself) or up to and including it (``mask="B"``, for later
    layers, whose pixel (i, j) has itself seen only what came before). On one-channel
    images the mask is spatial only. Odd kernel sizes, padding k // 2 per axis.

    Forward: ``y = conv2d(x, W * M) + b`` (``kernels.ops.masked_conv2d_forward``: the
    Numba backend forms the receptive fields over the mask's kept positions only, about
    half of them, so no work meets a masked-out weight; the others convolve with the
    masked copy of W). Backward, with ``V = W * M``::

        dL/dW = M * dL/dV     (the masked entries never touch the output: gradient 0)
        dL/dx = the input gradient of conv2d with V, as for any Conv2d: the mask is
                already in the weight x met, so it needs nothing more.
    """

    def __init__(self, in_channels, out_channels, kernel_size, mask="B", rng=None, init="he_normal",
                 dtype=np.float32, activation="identity"):
        kernel = _pair(kernel_size, "kernel_size", 1)
        if any(k % 2 == 0 for k in kernel):
            raise ValueError(f"kernel_size: expected odd sizes (a centre pixel for the mask), got {kernel}")
        if mask not in MASKS:
            raise ValueError(f"mask: expected one of {MASKS}, got {mask!r}")
        super().__init__(in_channels, out_channels, kernel, 1, (kernel[0] // 2, kernel[1] // 2), rng, init, dtype,
                         activation)
        self.mask = causal_mask(kernel, mask).astype(dtype)
        self.mask_type = mask
        self.params["W"] *= self.mask  # the masked entries start (and stay) at 0

    def forward(self, x):
        self._check_input(x)
        y = kernels.ops.masked_conv2d_forward(x, self.params["W"], self.params["b"], self.mask, self.activation,
                                              self.alpha)
        return self.save_for_backward((x, y), y)

    def backward(self, dy, need_dx=True):
        x, y = self.saved_for_backward(dy)
        return kernels.ops.masked_conv2d_backward(x, self.params["W"], dy, self.grads["W"], self.grads["b"],
                                                  self.mask, need_dx, self.activation, self.alpha, y)

    def astype(self, dtype):
        self.mask = self.mask.astype(dtype)
        return super().astype(dtype)

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "mask": self.mask_type, "activation": self.activation}

    def __repr__(self):
        act = "" if self.activation == "identity" else f", activation={self.activation!r}"
        return f"MaskedConv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
               f"mask={self.mask_type!r}{act})"

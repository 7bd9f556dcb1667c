"""Dense layers on the GPU: the forward is one product with the bias and the
activation in its epilogue (``gemm``).

The backward of a dense layer is two products, and no other pass: the weight
gradient's product loads dy and multiplies each number by f'(h) as it loads it
(dh = dy * f'(h) is never stored), and gives x^T an extra row of ones, so that its
extra output row is the bias gradient, sum_n dh[n] ([dW; db] = [x, 1]^T dh); the
input gradient's product reads dh the same way (dx = dh W^T).

A Bayesian dense layer's local reparameterisation is two products of that kind (the
means' and the variances', sigma^2 = exp(2 logsigma) made by a pass of its own) and
elementwise passes around them; its weights' KL is one pass that adds the gradient
and leaves a partial sum per block, summed on the host in a fixed order.
"""

import math

import numpy as np
from numba import config, cuda

from .. import reference
from .activations import KINDS
from .arrays import (
    THREADS, absent, block_sum, blocks, empty, flat, is_device, launch, mixed, to_device, to_host, write_back,
)
from .gemm import gemm


def matmul(a, b):
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N) by the tiled kernel."""
    if mixed(a, b) or a.ndim != 2 or b.ndim != 2 or not a.size or not b.size:
        return reference.matmul(to_host(a), to_host(b))
    host = not is_device(a)
    a, b = to_device(a), to_device(b)
    c = gemm(a, b, empty((a.shape[0], b.shape[1]), a.dtype))
    return to_host(c) if host else c


def linear_forward(x, W, b, kind="identity", alpha=0.0):
    """``h = x @ W + b`` and ``y = f(h)`` in one launch (bias and f in the epilogue).
    Returns ``(h, y)``, one array twice for "identity"."""
    if mixed(x, W, b) or not len(x):
        return reference.linear_forward(to_host(x), to_host(W), to_host(b), kind, alpha)
    reference.check_dense(x, W, b)
    host = not is_device(x)
    x, W, b = to_device(x), to_device(W), to_device(b)
    h = empty((x.shape[0], W.shape[1]), x.dtype)
    code = KINDS[kind]
    y = empty(h.shape, h.dtype) if code else h
    gemm(x, W, h, bias=b, y=y, kind=code, alpha=alpha)
    if host:
        h_host = to_host(h)
        return h_host, (to_host(y) if code else h_host)
    return h, y


def linear_backward(x, W, h, y, dy, dW, db, kind="identity", alpha=0.0, need_dx=True):
    """Two products, each reading dh = dy * f'(h) as it loads dy (no dh array, no
    pass of its own): ``[dW; db] += [x, 1]^T dh`` (db the product's row of ones) and
    ``dx = dh @ W.T``."""
    if mixed(x, W, h, y, dy, dW, db) or not len(x):
        return reference.linear_backward(*map(to_host, (x, W, h, y, dy)), dW, db, kind, alpha, need_dx)
    reference.check_dense(x, W, db, dy, dW, h, y)
    host = not is_device(dy)
    x, W, h, y, dy, dW_d, db_d = map(to_device, (x, W, h, y, dy, dW, db))
    grad = dict(h=h, y_of_h=y, grad_kind=KINDS[kind], grad_alpha=alpha)
    gemm(x, dy, dW_d, trans_a=True, beta=1, grad_of="b", ones_row_into=db_d, **grad)
    write_back(dW_d, dW)
    write_back(db_d, db)
    if not need_dx:
        return None
    dx = gemm(dy, W, empty(x.shape, x.dtype), trans_b=True, grad_of="a", **grad)
    return to_host(dx) if host else dx


@cuda.jit
def _variance(logsigma, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = math.exp(2 * logsigma[i])


@cuda.jit
def _square(a, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] * a[i]


@cuda.jit
def _local_output(mean, var, xi, y, std):
    """std = sqrt(var); y = mean + std xi (written over the means)."""
    i = cuda.grid(1)
    if i < y.size:
        std[i] = math.sqrt(var[i])
        y[i] = mean[i] + std[i] * xi[i]


@cuda.jit
def _local_dvar(dy, xi, std, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = dy[i] * xi[i] / (2 * std[i])


@cuda.jit
def _add_twice_product(acc, a, b):
    """acc += 2 a b: dlogsigma += 2 sigma^2 (x^2)^T dvar, dx += 2 x (dvar sigma^2^T)."""
    i = cuda.grid(1)
    if i < acc.size:
        acc[i] += 2 * a[i] * b[i]


def _variances(logsigma):
    out = empty(logsigma.shape, logsigma.dtype)
    launch(_variance, blocks(out.size), THREADS)(flat(logsigma), flat(out))
    return out


def _squared(a):
    out = empty(a.shape, a.dtype)
    launch(_square, blocks(out.size), THREADS)(flat(a), flat(out))
    return out


def local_reparam_forward(x, W, b, W_logsigma, b_logsigma, xi):
    """The means' product (bias in its epilogue), the variances' ((x*x) sigma_W^2 +
    sigma_b^2), then one pass for std and y: ``(y, std)`` as the reference's."""
    if mixed(x, W, b, W_logsigma, b_logsigma, xi) or not len(x):
        return reference.local_reparam_forward(*map(to_host, (x, W, b, W_logsigma, b_logsigma, xi)))
    reference.check_local_reparam(x, W, b, W_logsigma, b_logsigma, xi)
    host = not is_device(x)
    x, W, b, W_logsigma, b_logsigma, xi = map(to_device, (x, W, b, W_logsigma, b_logsigma, xi))
    y = gemm(x, W, empty(xi.shape, x.dtype), bias=b)
    var = gemm(_squared(x), _variances(W_logsigma), empty(xi.shape, x.dtype), bias=_variances(b_logsigma))
    std = var  # written over the variances
    launch(_local_output, blocks(y.size), THREADS)(flat(y), flat(var), flat(xi), flat(y), flat(std))
    return (to_host(y), to_host(std)) if host else (y, std)


def local_reparam_backward(x, W, W_logsigma, b_logsigma, xi, std, dy, dW, db, dW_logsigma, db_logsigma,
                           need_dx=True):
    """The reference's gradients: dvar in one pass, then the dense backward's products
    for (x, dy) and for (x*x, dvar) (each adding its bias row), and the 2 sigma^2 and 2 x
    factors in a pass each."""
    arrays = (x, W, W_logsigma, b_logsigma, xi, std, dy, dW, db, dW_logsigma, db_logsigma)
    if mixed(*arrays) or not len(x):
        return reference.local_reparam_backward(*map(to_host, arrays[:7]), dW, db, dW_logsigma, db_logsigma, need_dx)
    reference.check_local_reparam(x, W, db, W_logsigma, b_logsigma, xi, (std, dy, dW, dW_logsigma, db_logsigma))
    host = not is_device(dy)
    x, W, W_logsigma, b_logsigma, xi, std, dy = map(to_device, arrays[:7])
    grads = [to_device(g) for g in (dW, db, dW_logsigma, db_logsigma)]
    dvar = empty(dy.shape, dy.dtype)
    launch(_local_dvar, blocks(dvar.size), THREADS)(flat(dy), flat(xi), flat(std), flat(dvar))
    gemm(x, dy, grads[0], trans_a=True, beta=1, ones_row_into=grads[1])
    x2, var_W, var_b = _squared(x), _variances(W_logsigma), _variances(b_logsigma)
    t_W, t_b = empty(W.shape, W.dtype), empty(var_b.shape, W.dtype)  # (x*x)^T dvar and sum_n dvar
    gemm(x2, dvar, t_W, trans_a=True, ones_row_into=t_b)
    launch(_add_twice_product, blocks(t_W.size), THREADS)(flat(grads[2]), flat(var_W), flat(t_W))
    launch(_add_twice_product, blocks(t_b.size), THREADS)(flat(grads[3]), flat(var_b), flat(t_b))
    for device, given in zip(grads, (dW, db, dW_logsigma, db_logsigma)):
        write_back(device, given)
    if not need_dx:
        return None
    dx = gemm(dy, W, empty(x.shape, x.dtype), trans_b=True)
    dx_var = gemm(dvar, var_W, empty(x.shape, x.dtype), trans_b=True)
    launch(_add_twice_product, blocks(dx.size), THREADS)(flat(dx), flat(x), flat(dx_var))
    return to_host(dx) if host else dx


@cuda.jit
def _weight_kl(mean, logsigma, log_prior_std, inv_s2, scale, dmean, dlogsigma, partials):
    """Block k sums the KL terms of entries k, k + B T, ... (B blocks of T threads) in
    float64 and, with gradients given, adds ``scale`` times dKL into them."""
    shared = cuda.shared.array(THREADS, np.float64)
    total = 0.0
    for i in range(cuda.grid(1), mean.size, cuda.gridsize(1)):
        m, ls = mean[i], logsigma[i]
        var = math.exp(2.0 * ls)
        total += log_prior_std - ls + (var + m * m) * inv_s2 / 2 - 0.5
        if dmean.size:
            dmean[i] += scale * m * inv_s2
            dlogsigma[i] += scale * (var * inv_s2 - 1)
    total = block_sum(total, shared)
    if cuda.threadIdx.x == 0:
        partials[cuda.blockIdx.x] = total


# The partial sums read back: a fixed number of them, so the sum's order is fixed (few in
# the simulator, which runs every thread of a launch as a Python thread).
KL_BLOCKS = 2 if config.ENABLE_CUDASIM else 32


def gaussian_weight_kl(mean, logsigma, prior_std, scale=0.0, dmean=None, dlogsigma=None):
    """The reference's KL (a float: the blocks' partial sums read and added on the host)
    and gradients, one launch."""
    arrays = (mean, logsigma) if dmean is None else (mean, logsigma, dmean, dlogsigma)
    if mixed(*arrays) or not mean.size:
        return reference.gaussian_weight_kl(to_host(mean), to_host(logsigma), prior_std, scale, dmean, dlogsigma)
    if any(a.shape != mean.shape for a in arrays):
        reference.refuse_shapes("mean, logsigma, dmean, dlogsigma"[: 15 if dmean is None else None], "equal",
                                arrays)
    device = [to_device(a) for a in arrays]
    partials, none = empty(KL_BLOCKS, np.float64), absent(device[0].dtype, 1)
    grads = [flat(g) for g in device[2:]] or [none, none]
    launch(_weight_kl, KL_BLOCKS, THREADS)(flat(device[0]), flat(device[1]), math.log(prior_std),
                                           1.0 / prior_std**2, float(scale), *grads, partials)
    for d, given in zip(device[2:], arrays[2:]):
        write_back(d, given)
    return float(np.sum(to_host(partials)))

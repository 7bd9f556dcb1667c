"""Figures (matplotlib, PNG, written atomically): sample grids, reconstructions, latent
scatter, the 2-D manifold, decoder mean +/- sigma panels, training curves."""

import os

import matplotlib

matplotlib.use("Agg")  # files only: no screen needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from .checks import check_positive_int  # noqa: E402
from .files import atomic_write  # noqa: E402


IMAGE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


def check_image_path(path, name="path"):
    """The image format that ``path``'s suffix names, or a ValueError."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in IMAGE_FORMATS:
        raise ValueError(f"{name}: expected a file ending in {', '.join(IMAGE_FORMATS)}, got {path}")
    return IMAGE_FORMATS[suffix]


def save(fig, path):
    """Write ``fig`` atomically as PNG or JPEG (by the suffix) and close it."""
    try:
        image_format = check_image_path(path)
        atomic_write(path, lambda f: fig.savefig(f, format=image_format, dpi=100, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return path


def tile(images, n_cols, image_shape=(28, 28)):
    """(N, H*W) or (N, 1, H, W) images as one (rows*H, cols*W) mosaic."""
    if isinstance(n_cols, bool) or not isinstance(n_cols, (int, np.integer)) or n_cols < 1:
        raise ValueError(f"n_cols: expected an integer >= 1, got {n_cols!r}")
    images = np.asarray(images)
    if images.size != len(images) * image_shape[0] * image_shape[1]:
        raise ValueError(f"images: expected (N, {image_shape[0] * image_shape[1]}) or (N, 1, {image_shape[0]}, "
                         f"{image_shape[1]}) for image_shape={image_shape}, got shape {images.shape}")
    images = images.reshape(len(images), *image_shape)
    n_rows = -(-len(images) // n_cols)
    h, w = image_shape
    canvas = np.ones((n_rows * h, n_cols * w))
    for i, im in enumerate(images):
        r, c = divmod(i, n_cols)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = im
    return canvas


def image_grid(images, path, n_cols=10, title=None, image_shape=(28, 28)):
    """``images`` (N, ...) as a grid of ``n_cols`` columns, saved to ``path``."""
    n_cols = check_positive_int(n_cols, "n_cols")
    size = 1.0 if n_cols <= 10 else 0.6  # inches per image: a digit or a face stays legible in the large grids too
    fig, ax = plt.subplots(figsize=(n_cols * size * image_shape[1] / 28, -(-len(images) // n_cols) * size + 0.4))
    ax.imshow(tile(images, n_cols, image_shape), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return save(fig, path)


def image_panels(panels, path, n_cols=10, title=None, image_shape=(28, 28), panels_per_row=3, inches=0.6):
    """Image grids side by side, one per ``(title, images)``, ``panels_per_row`` to a
    row, for comparing models; ``inches``: the height of one image."""
    n_rows = max(-(-len(images) // n_cols) for _, images in panels)
    fig, axes = _panel_grid(len(panels), panels_per_row, 1.0)
    rows, cols = axes.reshape(-1, min(panels_per_row, len(panels))).shape
    fig.set_size_inches(cols * n_cols * inches * image_shape[1] / image_shape[0], rows * (n_rows * inches + 0.5) + 0.4)
    for ax, (name, images) in zip(axes, panels):
        ax.imshow(tile(images, n_cols, image_shape), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def reconstructions(x, x_rec, path, n=10, image_shape=(28, 28)):
    """Inputs on the top row, their reconstructions beneath."""
    both = np.concatenate([np.asarray(x[:n]).reshape(n, -1), np.asarray(x_rec[:n]).reshape(n, -1)])
    return image_grid(both, path, n_cols=n, title="input (top) / reconstruction (bottom)", image_shape=image_shape)


def latent_scatter(z, labels, path, title="posterior means"):
    """Points coloured by label; more than two dimensions are projected on their first
    two principal components (and the axes say so)."""
    z = np.asarray(z, dtype=np.float64)
    z = z[:, None] if z.ndim == 1 else z
    if z.ndim != 2 or len(z) != len(labels):
        raise ValueError(f"z, labels: expected (N, d) points and N labels, got shapes {z.shape}, {np.shape(labels)}")
    axes = ("z1", "z2")
    if z.shape[1] > 2:
        centred = z - z.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        z, axes = centred @ vt[:2].T, ("PC 1 of z", "PC 2 of z")
    elif z.shape[1] == 1:
        z, axes = np.column_stack([z[:, 0], np.zeros(len(z))]), ("z", "")
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=4)
    fig.colorbar(sc, ax=ax)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title)
    return save(fig, path)


def manifold_grid(n=20):
    """z for a 2-D manifold figure: a linear grid over the unit square (avoiding its
    edges) mapped through the Gaussian inverse CDF, so that the grid has equal
    probability mass per cell under p(z) = N(0, I)."""
    u = np.linspace(0.5 / n, 1 - 0.5 / n, n)
    z1, z2 = np.meshgrid(norm.ppf(u), norm.ppf(u)[::-1])
    return np.column_stack([z1.ravel(), z2.ravel()])


def manifold(decode_mean, path, n=20, image_shape=(28, 28), dtype=np.float32):
    """The learned 2-D manifold: ``decode_mean(z)`` on :func:`manifold_grid`."""
    images = decode_mean(manifold_grid(n).astype(dtype))
    return image_grid(images, path, n_cols=n, title="learned manifold (z = inverse CDF of a grid)",
                      image_shape=image_shape)


def mean_and_sigma(mean, std, path, ks=(-2, -1, 0, 1, 2), image_shape=(28, 28)):
    """Rows of decoder means shifted by k sigma, k in ``ks``: what a learned-variance
    decoder says about each pixel's spread."""
    rows = [np.clip(np.asarray(mean) + k * np.asarray(std), 0, 1) for k in ks]
    h, w = image_shape
    n = len(mean)
    fig, ax = plt.subplots(figsize=(1.1 * n * w / h + 1.6, 1.1 * len(ks) + 0.9))
    ax.imshow(tile(np.concatenate(rows), n, image_shape), cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([(i + 0.5) * h for i in range(len(ks))],
                  ["mean" if k == 0 else f"mean {'+' if k > 0 else '-'} {abs(k)} sigma" for k in ks])
    ax.set_xticks([(j + 0.5) * w for j in range(n)], [str(j + 1) for j in range(n)])
    ax.set_xlabel("decoded z (one column each)")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("decoder mean shifted by k sigma per pixel (clipped to [0, 1])")
    fig.tight_layout()
    return save(fig, path)


def training_curves(history, path):
    """ELBO, reconstruction term and KL per epoch, train and validation."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for ax, key, label in zip(axes, ("elbo", "log_px", "kl"), ("ELBO", "E[log p(x|z)]", "KL(q || p)")):
        for split, style in (("train", "-"), ("val", "--")):
            values = history[f"{split}_{key}"]
            if any(v is not None for v in values):
                ax.plot(history["epoch"], values, style, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{label} (nats)")
        ax.legend()
    fig.tight_layout()
    return save(fig, path)


def _panel_grid(n, n_cols, size):
    n_cols = min(n_cols, n)
    n_rows = -(-n // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def scatter_panels(panels, path, n_cols=3, cmap="tab10", xlabel="z1", ylabel="z2"):
    """One scatter per ``(title, points (N, 1 or 2), labels)``; 1-D points are drawn
    against a jitter-free zero line."""
    fig, axes = _panel_grid(len(panels), n_cols, 3.2)
    for ax, (title, points, labels) in zip(axes, panels):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel if points.shape[1] > 1 else "")
        points = np.asarray(points, dtype=np.float64)
        y = points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))
        sc = ax.scatter(points[:, 0], y, c=labels, cmap=cmap, s=3, vmin=0, vmax=max(int(np.max(labels)), 1))
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.colorbar(sc, ax=list(axes), label="label", shrink=0.8)
    return save(fig, path)


def line_panels(panels, path, xlabel, ylabel, n_cols=3, logx=False, size=4.0, bottom=None, logy=False):
    """One panel per ``(title, {label: (x, y)})``, a line per label (a lone point drawn
    as a large dot); ``xlabel``, ``ylabel`` and ``logy`` one for all panels or a list,
    one per panel; ``bottom``: the y axis's lower limit (a first point far below the
    rest would otherwise flatten every curve)."""
    fig, axes = _panel_grid(len(panels), n_cols, size)
    per_panel = lambda v: v if isinstance(v, (list, tuple)) else [v] * len(panels)  # noqa: E731
    for ax, (title, lines), xlabel, ylabel, log_y in zip(axes, panels, per_panel(xlabel), per_panel(ylabel),
                                                        per_panel(logy)):
        for label, (x, y) in lines.items():
            ax.plot(x, y, label=label, marker="o" if len(x) == 1 else "." if len(x) < 30 else None)
        if log_y:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if bottom is not None:
            ax.set_ylim(bottom=bottom)
        if logx:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels overlap on short spans
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def heatmaps(panels, path, label, title=None, n_cols=4):
    """One image per ``(title, values (H, W))`` on one colour scale, with its colour bar
    labelled ``label``: for a number per pixel (a sigma, a filter's weights)."""
    fig, axes = _panel_grid(len(panels), n_cols, 3.4)
    values = np.concatenate([np.ravel(v) for _, v in panels])
    low, high = float(np.min(values)), float(np.max(values))
    for ax, (name, v) in zip(axes, panels):
        im = ax.imshow(v, cmap="viridis", vmin=low, vmax=high)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.colorbar(im, ax=list(axes), label=label, shrink=0.8)
    return save(fig, path)


def bar_panels(panels, path, xlabel, ylabel, n_cols=3, title=None):
    """One bar chart per ``(title, heights)``, on a shared y axis so panels compare."""
    fig, axes = _panel_grid(len(panels), n_cols, 4.0)
    top = max(float(np.max(h)) for _, h in panels) * 1.05 or 1.0
    for ax, (name, heights) in zip(axes, panels):
        ax.bar(np.arange(1, len(heights) + 1), heights, width=0.8)
        ax.set_ylim(0, top)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def box_panels(panels, path, xlabel, ylabel, n_cols=3):
    """One box plot per ``(title, {label: values})``: a box per label."""
    fig, axes = _panel_grid(len(panels), n_cols, 3.6)
    for ax, (title, groups) in zip(axes, panels):
        ax.boxplot(list(groups.values()), showfliers=False)
        ax.set_xticks(range(1, len(groups) + 1), list(groups))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    return save(fig, path)

"""Datasets: MNIST and Fashion-MNIST from the original gzip IDX files and Frey faces
from its MAT-file, each with checksum and header checks; the synthetic 2-D uniform
square and Gaussian-mixture samples; binarisation; train/validation splits.

Where the files come from: an explicit ``path`` (a folder holding the files), else
``$NPVAE_DATA/<name>/`` if that variable is set, else (MNIST and Frey faces) the copy
that ships inside npvae.
"""

import gzip
import hashlib
import io
import os

import numpy as np
from scipy.io import loadmat

from .checks import check_array, check_positive_int, check_unit_interval

BUNDLED = os.path.join(os.path.dirname(__file__), "data")

# sha256 of the official gzip files (see shared/data/README.md and npvae/data/README.md).
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "frey": {"frey_rawface.mat": "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64"},
}
SHIPPED = ("mnist", "frey")


def _read_checked(path, sha256):
    """The bytes of ``path``, refused with a clear error if their sha256 differs."""
    with open(path, "rb") as f:
        raw = f.read()
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise ValueError(f"{path}: checksum mismatch: expected sha256 {sha256}, got {hashlib.sha256(raw).hexdigest()}")
    return raw


def read_idx(path, expected_count, images, sha256=None):
    """Read a gzip IDX file: images (magic 2051, count, 28, 28) or labels (magic 2049,
    count), checking the checksum, the header and the payload's length."""
    raw = _read_checked(path, sha256)
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: not a valid gzip file ({e})") from e
    header = np.frombuffer(data[: 16 if images else 8], dtype=">u4")
    want = [2051, expected_count, 28, 28] if images else [2049, expected_count]
    if header.tolist() != want:
        raise ValueError(f"{path}: expected IDX header {want} (magic, count, rows, cols), got {header.tolist()}")
    payload = np.frombuffer(data, dtype=np.uint8, offset=len(header) * 4)
    size = expected_count * (784 if images else 1)
    if payload.size != size:
        raise ValueError(f"{path}: expected {size} bytes of data after the header, got {payload.size}")
    return payload.reshape((expected_count, 28, 28) if images else (expected_count,))


def _folder(name, path):
    if path is not None:
        return os.fspath(path)
    if os.environ.get("NPVAE_DATA"):
        return os.path.join(os.environ["NPVAE_DATA"], name)
    if name in SHIPPED:
        return os.path.join(BUNDLED, name)
    raise FileNotFoundError(f"path: {name} does not ship with npvae; pass path= (npvae train: --data-path) or set NPVAE_DATA, got neither")


def _load_idx_dataset(name, split, path, flatten, dtype):
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    folder = _folder(name, path)
    prefix, count = ("train", 60000) if split == "train" else ("t10k", 10000)
    files = {kind: os.path.join(folder, f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz")
             for kind in ("images", "labels")}
    for f in files.values():
        if not os.path.isfile(f):
            raise FileNotFoundError(f"{name}: missing file {f}")
    sums = CHECKSUMS[name]
    images = read_idx(files["images"], count, True, sums[os.path.basename(files["images"])])
    labels = read_idx(files["labels"], count, False, sums[os.path.basename(files["labels"])])
    if labels.max() > 9:
        raise ValueError(f"{files['labels']}: expected labels 0..9, got a {labels.max()}")
    x = images.astype(dtype) / dtype(255)
    return (x.reshape(count, 784) if flatten else x.reshape(count, 1, 28, 28)), labels.astype(np.int64)


def load_mnist(split="train", path=None, flatten=True, dtype=np.float32):
    """MNIST ``(x, y)``: x grey levels in [0, 1], (N, 784) or (N, 1, 28, 28); y ints 0..9."""
    return _load_idx_dataset("mnist", split, path, flatten, dtype)


def load_fashion_mnist(split="train", path=None, flatten=True, dtype=np.float32):
    """Fashion-MNIST, as :func:`load_mnist`; loaded from ``path`` or ``$NPVAE_DATA`` only."""
    return _load_idx_dataset("fashion-mnist", split, path, flatten, dtype)


def load_frey_faces(path=None, flatten=True, dtype=np.float32):
    """Frey faces: 1965 grey images of 28x20 (Kingma & Welling's Gaussian-decoder data),
    grey levels scaled to [0, 1]; (1965, 560) or (1965, 1, 28, 20). No labels."""
    f = os.path.join(_folder("frey", path), "frey_rawface.mat")
    if not os.path.isfile(f):
        raise FileNotFoundError(f"frey: missing file {f}")
    try:
        ff = loadmat(io.BytesIO(_read_checked(f, CHECKSUMS["frey"]["frey_rawface.mat"])))["ff"]
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise ValueError(f"{f}: expected a MAT-file holding 'ff' of shape (560, 1965), could not read it ({e})") from e
    if ff.shape != (560, 1965) or ff.dtype != np.uint8:
        raise ValueError(f"{f}: expected 'ff' uint8 of shape (560, 1965), got {ff.dtype} {ff.shape}")
    x = ff.T.astype(dtype) / dtype(255)  # one image per column, rows of 20 pixels
    return x if flatten else x.reshape(-1, 1, 28, 20)


def uniform_square(n, seed=0, dtype=np.float32):
    """``n`` points uniform on [-1, 1]^2 and their quadrant labels 0..3 (counter-clockwise
    from x > 0, y > 0), for colouring what an encoder does with them."""
    n = check_positive_int(n, "n")
    x = np.random.default_rng(seed).uniform(-1, 1, size=(n, 2))
    quadrant = np.select([(x[:, 0] >= 0) & (x[:, 1] >= 0), (x[:, 0] < 0) & (x[:, 1] >= 0), (x[:, 0] < 0)], [0, 1, 2], 3)
    return x.astype(dtype), quadrant


def gaussian_mixture_sample(n, weights, means, covariances, seed=0):
    """``n`` draws from sum_k weights[k] N(means[k], covariances[k]) and their component
    labels. ``covariances`` is (K, D, D)."""
    weights, means, covariances = (np.asarray(a, dtype=np.float64) for a in (weights, means, covariances))
    K, D = means.shape
    if weights.shape != (K,) or covariances.shape != (K, D, D):
        raise ValueError(f"weights, covariances: expected shapes ({K},) and ({K}, {D}, {D}) to match means {means.shape}, "
                         f"got {weights.shape} and {covariances.shape}")
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
        raise ValueError(f"weights: expected non-negative numbers summing to 1, got {weights}")
    n, rng = check_positive_int(n, "n"), np.random.default_rng(seed)
    if not np.isfinite(means).all() or not np.isfinite(covariances).all():
        raise ValueError("means, covariances: expected finite values, got NaN or inf")
    try:
        chol = np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError:
        raise ValueError("covariances: expected symmetric positive-definite matrices, got one whose Cholesky "
                         "factorisation fails") from None
    labels = rng.choice(K, size=n, p=weights)
    x = means[labels] + np.einsum("nij,nj->ni", chol[labels], rng.standard_normal((n, D)))
    return x, labels


def train_val_split(n_val, *arrays, seed=0):
    """Split arrays that share their first axis into (train..., val...) after one seeded
    shuffle; ``n_val`` rows go to validation."""
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays: expected the same length, got {[len(a) for a in arrays]}")
    if not 0 < n_val < n:
        raise ValueError(f"n_val: expected 0 < n_val < {n}, got {n_val}")
    order = np.random.default_rng(seed).permutation(n)
    train, val = order[n_val:], order[:n_val]
    return tuple(a[train] for a in arrays) + tuple(a[val] for a in arrays)


def binarize_static(x, seed=0, threshold=None):
    """A fixed binarisation: pixels > ``threshold``, or one Bernoulli draw per pixel from
    a seeded generator (the same data every epoch)."""
    if threshold is not None:
        return (x > threshold).astype(x.dtype)
    return binarize_dynamic(x, np.random.default_rng(seed))


CORRUPTIONS = ("none", "mask", "gaussian")


def corrupt(x, kind, level, rng):
    """A corrupted copy of ``x`` for a denoising model's encoder (Vincent, Larochelle,
    Bengio & Manzagol 2008): "mask" sets each entry to 0 with probability ``level``
    (their masking noise), "gaussian" adds N(0, level^2) to each entry; "none" returns
    ``x``. The model still scores the clean ``x``, so it learns to undo the corruption."""
    check_array(x, "x")
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind: expected one of {CORRUPTIONS}, got {kind!r}")
    if not (np.isfinite(level) and level >= 0 and (kind != "mask" or level <= 1)):
        raise ValueError(f"level: expected a number in [0, 1] for masking, >= 0 for Gaussian noise, got {level!r}")
    if kind == "mask":
        return x * (rng.random(x.shape) >= level).astype(x.dtype)
    if kind == "gaussian":
        return x + (level * rng.standard_normal(x.shape)).astype(x.dtype)
    return x


def binarize_dynamic(x, rng):
    """A fresh Bernoulli draw of the grey levels ``x`` in [0, 1] (call once per epoch or batch)."""
    check_unit_interval(x, "x", "(grey levels) to binarise")
    return (rng.random(x.shape) < x).astype(x.dtype)

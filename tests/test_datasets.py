"""Loaders against the bundled files, corrupted and truncated copies, synthetic data."""

import gzip
import os
import shutil

import numpy as np
import pytest

from npvae import datasets

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
FASHION = os.path.join(os.environ.get("NPVAE_DATA", SHARED), "fashion-mnist")


@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_bundled_mnist_shapes_ranges_and_label_counts(split, n):
    x, y = datasets.load_mnist(split)
    assert x.shape == (n, 784) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    counts = np.bincount(y, minlength=10)
    assert counts.sum() == n and counts.min() > 0.08 * n  # every digit well represented
    if split == "test":  # the published test-set class counts
        assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    x4, _ = datasets.load_mnist(split, flatten=False, dtype=np.float64)
    assert x4.shape == (n, 1, 28, 28) and x4.dtype == np.float64
    np.testing.assert_array_equal(x4.reshape(n, 784).astype(np.float32), x)


def test_bundled_frey_faces():
    x = datasets.load_frey_faces()
    assert x.shape == (1965, 560) and x.dtype == np.float32
    assert 0 < x.min() < 0.05 and 0.9 < x.max() < 1  # the file's grey levels are 8..238
    assert datasets.load_frey_faces(flatten=False).shape == (1965, 1, 28, 20)


@pytest.mark.skipif(not os.path.isdir(FASHION),
                    reason="Fashion-MNIST is not bundled: put its four IDX files (github.com/zalandoresearch/"
                           "fashion-mnist, data/fashion) in $NPVAE_DATA/fashion-mnist/ to run this test")
def test_fashion_mnist_from_a_path():
    x, y = datasets.load_fashion_mnist("test", path=FASHION)
    assert x.shape == (10000, 784) and np.bincount(y).tolist() == [1000] * 10


def test_fashion_mnist_without_a_path_says_where_to_put_it(monkeypatch):
    monkeypatch.delenv("NPVAE_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="NPVAE_DATA"):
        datasets.load_fashion_mnist()


def test_npvae_data_variable_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("NPVAE_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "mnist")):
        datasets.load_mnist("test")


def _copy_test_split(tmp_path):
    src = os.path.join(datasets.BUNDLED, "mnist")
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(os.path.join(src, f), tmp_path / f)
    return tmp_path / "t10k-labels-idx1-ubyte.gz"


def test_corrupted_file_fails_its_checksum_naming_the_file(tmp_path):
    labels = _copy_test_split(tmp_path)
    raw = bytearray(labels.read_bytes())
    raw[100] ^= 0xFF
    labels.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        datasets.load_mnist("test", path=tmp_path)


def test_truncated_file_is_refused(tmp_path):
    labels = _copy_test_split(tmp_path)
    labels.write_bytes(labels.read_bytes()[:-50])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz"):
        datasets.load_mnist("test", path=tmp_path)


def test_read_idx_checks_gzip_header_and_length_without_a_checksum(tmp_path):
    labels = _copy_test_split(tmp_path)
    data = gzip.decompress(labels.read_bytes())
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a valid gzip"):
        datasets.read_idx(bad, 10000, images=False)
    bad.write_bytes(gzip.compress(data[:-3]))  # payload shorter than its header says
    with pytest.raises(ValueError, match="expected 10000 bytes"):
        datasets.read_idx(bad, 10000, images=False)
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + data[4:]))  # the images magic on a labels file
    with pytest.raises(ValueError, match="expected IDX header"):
        datasets.read_idx(bad, 10000, images=False)


def test_corrupted_frey_file(tmp_path):
    f = tmp_path / "frey_rawface.mat"
    f.write_bytes(open(os.path.join(datasets.BUNDLED, "frey", "frey_rawface.mat"), "rb").read()[:1000])
    with pytest.raises(ValueError, match="frey_rawface.mat: checksum mismatch"):
        datasets.load_frey_faces(path=tmp_path)


def test_uniform_square_labels_are_quadrants():
    x, q = datasets.uniform_square(2000, seed=3)
    assert x.shape == (2000, 2) and np.all(np.abs(x) <= 1)
    signs = {0: (1, 1), 1: (-1, 1), 2: (-1, -1), 3: (1, -1)}
    for k, (sx, sy) in signs.items():
        pts = x[q == k]
        assert len(pts) > 400 and np.all(np.sign(pts[:, 0]) == sx) and np.all(np.sign(pts[:, 1]) == sy)


def test_gaussian_mixture_sample_moments():
    means = np.array([[0.0, 0.0], [10.0, -5.0]])
    cov = np.array([[[1.0, 0.5], [0.5, 2.0]], [[0.3, 0.0], [0.0, 0.3]]])
    x, labels = datasets.gaussian_mixture_sample(20000, [0.3, 0.7], means, cov, seed=1)
    assert abs((labels == 0).mean() - 0.3) < 0.02
    for k in range(2):
        np.testing.assert_allclose(x[labels == k].mean(0), means[k], atol=0.06)
        np.testing.assert_allclose(np.cov(x[labels == k].T), cov[k], atol=0.08)
    with pytest.raises(ValueError, match="weights"):
        datasets.gaussian_mixture_sample(10, [0.5, 0.6], means, cov)
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        datasets.gaussian_mixture_sample(0, [0.3, 0.7], means, cov)
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        datasets.uniform_square(-5)


def test_train_val_split_is_a_seeded_partition():
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    xt, yt, xv, yv = datasets.train_val_split(3, x, y, seed=0)
    assert len(xv) == 3 and len(xt) == 7
    np.testing.assert_array_equal(np.sort(np.concatenate([yt, yv])), y)
    np.testing.assert_array_equal(xt[:, 0] // 2, yt)  # rows stay together
    np.testing.assert_array_equal(datasets.train_val_split(3, y, seed=0)[1], yv)
    with pytest.raises(ValueError, match="n_val"):
        datasets.train_val_split(10, y)


def test_binarisation():
    x = np.full((1000, 50), 0.3, dtype=np.float32)
    a, b = datasets.binarize_static(x, seed=1), datasets.binarize_static(x, seed=1)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 1.0} and abs(a.mean() - 0.3) < 0.01
    assert datasets.binarize_static(x, threshold=0.5).sum() == 0
    d = datasets.binarize_dynamic(x, np.random.default_rng(0))
    assert abs(d.mean() - 0.3) < 0.01 and not np.array_equal(d, a)
    with pytest.raises(ValueError, match=r"x: expected values in \[0, 1\] \(grey levels\) to binarise, got range"):
        datasets.binarize_dynamic(x + 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="x: expected finite values"):
        datasets.binarize_static(np.full((2, 2), np.nan, dtype=np.float32), seed=0)

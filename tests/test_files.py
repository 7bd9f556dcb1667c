"""Files: written atomically with ordinary permissions; a process killed while writing
a checkpoint leaves the previous one loadable; a write that fails (a full disk,
simulated by a file-size limit) leaves no temporary file behind."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np

from npvae import files, io
from npvae.models import VAE

WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from npvae import io
    from npvae.models import VAE
    model = VAE.mlp(784, (2000,), 50, rng=0)  # ~13 MB of parameters: each write takes a while
    print("ready", flush=True)
    for i in range(1000):
        model.params["encoder.0.b"][0] = i
        io.save_checkpoint(sys.argv[1], model, state={"i": i})
""")


def test_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        files.save_json(tmp_path / "a.json", {"x": 1})
        io.save_checkpoint(tmp_path / "c.npz", VAE.mlp(4, (3,), 2, rng=0))
    finally:
        os.umask(old)
    for name in ("a.json", "c.npz"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name


def test_a_process_killed_while_writing_a_checkpoint_leaves_a_loadable_one(tmp_path):
    path = tmp_path / "checkpoint.npz"
    io.save_checkpoint(path, VAE.mlp(4, (3,), 2, rng=0), state={"i": -1})
    for delay in (0.3, 0.7, 1.1):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        params, _, meta = io.load_checkpoint(path)  # the old file or a whole new one, never half of one
        assert meta["state"]["i"] == -1 or params["encoder.0.b"][0] == meta["state"]["i"]


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    """A file-size limit makes the write fail with EFBIG, as a full disk would with ENOSPC."""
    path = tmp_path / "checkpoint.npz"
    io.save_checkpoint(path, VAE.mlp(4, (3,), 2, rng=0))
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        from npvae import io
        from npvae.models import VAE
        try:
            io.save_checkpoint({str(path)!r}, VAE.mlp(784, (500,), 20, rng=0))
        except OSError as e:
            print("refused", e.errno)
            sys.exit(0)
        sys.exit("the write should have failed")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("refused"), run.stderr
    assert os.listdir(tmp_path) == ["checkpoint.npz"]
    assert path.read_bytes() == before
    np.testing.assert_array_equal(io.load_checkpoint(path)[0]["encoder.0.W"],
                                  VAE.mlp(4, (3,), 2, rng=0).params["encoder.0.W"])

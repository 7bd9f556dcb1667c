"""The command line never loses a run and never ends in a traceback: every flag is
checked before data is loaded or a file written, an existing run is only touched when
asked, Ctrl-C leaves a checkpoint to resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from npvae import __version__, io
from npvae.cli import main

TINY = ["--hidden", "8", "--latent", "2", "--train-size", "200", "--epochs", "1"]


def npvae(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "npvae", *args], capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("good")
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("flags, error", [
    (["--epochs", "-1"], "argument --epochs: expected an integer >= 1, got '-1'"),
    (["--train-size", "0"], "argument --train-size: expected an integer >= 1, got '0'"),
    (["--train-size", "-5"], "argument --train-size: expected an integer >= 1, got '-5'"),
    (["--beta", "-1"], "argument --beta: expected a number >= 0, got '-1'"),
    (["--anneal-steps", "-5"], "argument --anneal-steps: expected an integer >= 0, got '-5'"),
    (["--latent", "0"], "argument --latent: expected an integer >= 1, got '0'"),
    (["--hidden", "0"], "argument --hidden: expected comma-separated integers >= 1 like 32,64, got '0'"),
    (["--hidden", "8", "8"], "unrecognized arguments: 8"),
    (["--momentum", "1"], "argument --momentum: expected a number in [0, 1), got '1'"),
    (["--lr-gamma", "0"], "argument --lr-gamma: expected a number in (0, 1], got '0'"),
    (["--lr-schedule", "exponential"], "lr_gamma: goes with lr_schedule 'exponential' and only with it"),
    (["--momentum", "0.9"], "momentum: only the sgd optimiser takes it, got optimizer 'adam'"),
    (["--optimizer", "sgd", "--nesterov"], "nesterov: needs a momentum > 0, got momentum=0"),
    (["--clip-norm", "0"], "argument --clip-norm: expected a number > 0, got '0'"),
    (["--objective", "iwae", "--k", "2", "--beta", "0.5"], "the IWAE bound takes none of them"),
    (["--lr", "0"], "argument --lr: expected a number > 0, got '0'"),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["--channels", "32,x"], "argument --channels: expected comma-separated integers >= 1"),
    (["--anneal", "cyclical"], "anneal_steps: cyclical annealing needs a period of at least 1 step, got 0"),
])
def test_a_refused_run_leaves_an_existing_run_and_the_disk_as_they_were(good_run, tmp_path, capsys, flags, error):
    """`train --out good --epochs -1` overwrote good/run.json, after which eval failed;
    every failed run left a folder holding only run.json."""
    before = {f: (good_run / f).read_bytes() for f in os.listdir(good_run)}
    args = ["train", *TINY, *flags]
    assert main([*args, "--out", str(good_run), "--overwrite"]) == 2
    assert main([*args, "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert error in err and len(err.strip().splitlines()) == 2, err
    assert {f: (good_run / f).read_bytes() for f in os.listdir(good_run)} == before
    assert not (tmp_path / "new").exists()
    assert main(["eval", str(good_run / "checkpoint.npz"), "--k", "2", "--n", "5"]) == 0


def test_an_existing_run_is_refused_unless_resumed_or_overwritten(good_run, tmp_path, capsys):
    before = (good_run / "checkpoint.npz").read_bytes()
    assert main(["train", *TINY, "--out", str(good_run)]) == 2
    assert "holds a run (checkpoint.npz, run.json); pass --resume to continue it, --overwrite" in capsys.readouterr().err
    assert (good_run / "checkpoint.npz").read_bytes() == before
    assert main(["train", "--resume", "--epochs", "2", "--out", str(good_run)]) == 0  # the run's settings, one more epoch
    history = json.loads((good_run / "history.json").read_text())
    assert history["epoch"] == [1, 2]
    assert main(["train", "--resume", "--out", str(tmp_path)]) == 2
    assert "--resume: no checkpoint.npz in" in capsys.readouterr().err


def test_out_that_is_a_file_or_below_one(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", *TINY, "--out", str(tmp_path / "file")]) == 2
    assert main(["train", *TINY, "--out", str(tmp_path / "file" / "run")]) == 2
    assert main(["demo", "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "is a file; expected a folder" in err[0] and "is a file, so" in err[1] and len(err) == 3


def test_bad_eval_sample_and_demo_flags_are_refused_at_once(good_run, tmp_path, capsys):
    """In process: ``python -m npvae`` exits and words its errors as ``main`` does
    (the version and Ctrl-C tests run it as a process)."""
    ckpt = str(good_run / "checkpoint.npz")
    for args, error in ((["eval", ckpt, "--n", "-3"], "argument --n: expected an integer >= 1, got '-3'"),
                        (["eval", ckpt, "--k", "0"], "argument --k: expected an integer >= 1"),
                        (["sample", ckpt, "--out", str(tmp_path / "s.gif")], "--out: expected a file ending in .png"),
                        (["demo", "--k", "0"], "argument --k: expected an integer >= 1, got '0'"),
                        (["demo", "--train-size", "60000"], "--train-size: expected at most 50,000")):
        t0 = time.perf_counter()
        try:
            status = main(args)
        except SystemExit as e:  # argparse's own refusals exit with 2
            status = e.code
        err = capsys.readouterr().err
        assert status == 2 and error in err and "Traceback" not in err, err
        assert time.perf_counter() - t0 < 30  # refused before any training
    assert main(["sample", ckpt, "--n", "4", "--out", str(tmp_path / "s.jpg")]) == 0
    assert (tmp_path / "s.jpg").read_bytes()[:2] == b"\xff\xd8"  # a JPEG


def test_random_bytes_are_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "r.npz").write_bytes(os.urandom(3000))
    assert main(["eval", str(tmp_path / "r.npz")]) == 2
    err = capsys.readouterr().err
    assert "is not an npvae checkpoint" in err and "pickle" not in err


def test_version_and_a_bad_backend_variable():
    assert npvae("--version").stdout.strip() == f"npvae {__version__}"
    run = npvae("train", "--help", env={**os.environ, "NPVAE_BACKEND": "bogus"})
    assert run.returncode == 0 and "Traceback" not in run.stderr and "--backend" in run.stdout


def test_ctrl_c_leaves_a_checkpoint_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "npvae", "train", "--hidden", "16", "--train-size", "3000",
                             "--epochs", "200", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    for line in proc.stdout:  # lines arrive as they are printed (line-buffered even in a pipe)
        if line.startswith("epoch   1/"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted (stopped at epoch" in err and f"npvae train --resume --out {out}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    params, _, meta = io.load_checkpoint(out / "checkpoint.npz")
    assert meta["state"]["epoch"] >= 1 and params


def test_a_mistyped_flag_or_command_gets_a_did_you_mean_from_the_commands_help(capsys):
    assert main(["train", "--lattent", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("npvae train: error: unrecognized arguments: --lattent 2; did you mean --latent? "
                   "(see npvae train --help)"), err
    assert main(["trian"]) == 2
    assert "did you mean train?" in capsys.readouterr().err


def test_a_run_folder_or_its_run_json_stands_for_its_checkpoint(good_run, tmp_path, capsys):
    assert main(["sample", str(good_run), "--n", "4", "--out", str(tmp_path / "a.png")]) == 0
    assert main(["tour", str(good_run / "run.json"), "--n", "4", "--fd-entries", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "freshly initialised" not in out and (tmp_path / "tour.json").exists()
    assert main(["eval", str(tmp_path / "empty")]) == 2  # a folder without a run
    assert "no such file" in capsys.readouterr().err

"""Checkpoint chains of the shared training loop: resume bit for bit, reproduce from scratch, sha256 manifest.

A tiny model whose epochs use all three random generators (torch dropout and noise, numpy, Python
``random``), so a checkpoint that failed to carry any of their states would not reproduce.
"""

import hashlib
import json
import random
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gravbench.providers._train import CheckpointChain, fit  # noqa: E402


def _data():
    g = torch.Generator().manual_seed(5)
    X = torch.randn(40, 6, generator=g)
    y = X @ torch.randn(6, 1, generator=g) + 0.1 * torch.randn(40, 1, generator=g)
    return (X[:32], y[:32]), (X[32:], y[32:])


def _model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))


def _loss(net, x, y):
    jitter = float(np.random.normal()) * 1e-3 + random.random() * 1e-3
    return torch.mean((net(x + 0.01 * torch.randn_like(x)) - y) ** 2) * (1.0 + jitter)


def _run(cdir, stop_after, resume_from=None, resume=False):
    tr, va = _data()
    return fit(_model(), tr, va, loss_fn=_loss, epochs=4, batch_size=8, lr=1e-2, seed=3, progress=False,
               patience=100, checkpoint_dir=cdir, chain_key={"test": 1}, stop_after=stop_after,
               resume_from=resume_from, resume=resume)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    d = tmp_path_factory.mktemp("chain-full")
    _run(d, 4)
    return d


def test_manifest_records_the_sha256_of_every_checkpoint(full):
    man = json.loads((full / "chain.json").read_text())
    assert [e["epoch"] for e in man["chain"]] == [1, 2, 3, 4]
    for e in man["chain"]:
        assert e["sha256"] == _sha(full / e["file"])
    assert len({e["sha256"] for e in man["chain"]}) == 4   # each epoch changed the state


@pytest.mark.parametrize("k", [1, 2])
def test_resume_from_k_gives_checkpoint_k_plus_1_bit_for_bit(full, tmp_path, k):
    d = tmp_path / "c"
    shutil.copytree(full, d)
    for e in range(k + 1, 5):
        (d / CheckpointChain.name(e)).unlink()   # only checkpoints <= k survive
    _run(d, k + 1, resume_from=k)
    assert _sha(d / CheckpointChain.name(k + 1)) == _sha(full / CheckpointChain.name(k + 1))
    man = json.loads((d / "chain.json").read_text())
    assert [e["epoch"] for e in man["chain"]] == list(range(1, k + 2))


def test_same_command_resumes_the_last_checkpoint(full, tmp_path):
    d = tmp_path / "c"
    _run(d, 2)                        # "interrupted" after two epochs
    hist = _run(d, 4, resume=True)    # the same call, resuming
    assert hist["epochs_run"] == 4
    for e in (3, 4):
        assert _sha(d / CheckpointChain.name(e)) == _sha(full / CheckpointChain.name(e))


def test_first_epoch_from_scratch_reproduces_checkpoint_1(full, tmp_path):
    _run(tmp_path, 1)
    assert _sha(tmp_path / CheckpointChain.name(1)) == _sha(full / CheckpointChain.name(1))


def test_a_changed_checkpoint_or_configuration_is_refused(full, tmp_path):
    d = tmp_path / "c"
    shutil.copytree(full, d)
    with pytest.raises(ValueError, match="different training configuration"):
        CheckpointChain(d, key={"test": 2})
    f = d / CheckpointChain.name(4)
    f.write_bytes(f.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match="integrity check"):
        _run(d, 4, resume=True)
    with pytest.raises(ValueError, match="has no epoch 9"):
        _run(d, 4, resume_from=9)

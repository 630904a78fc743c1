"""NCF pieces: negative sampler, losses, pre-trained fusion, training loop and its callback."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from models_synthetic import make_blocks

from recs_assets.core.models._helpers import holdout_split
from recs_assets.core.models.base import RecommenderError
from recs_assets.core.models.ncf import EpochReport, NCFRecommender, TrainConfig
from recs_assets.core.models.ncf.losses import bce_loss, bpr_loss, get_loss
from recs_assets.core.models.ncf.networks import GMF, MLP, NeuMF
from recs_assets.core.models.ncf.training import sample_negatives, train_network, validation_ndcg


def test_negative_sampler_never_returns_a_positive() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((20, 15)) < 0.6).astype(np.float32)
    dense[0, :14], dense[0, 14] = 1.0, 0.0  # user 0 has a single negative left: item 14
    train = sp.csr_matrix(dense)
    users = np.repeat(np.arange(20), 30)
    neg = sample_negatives(np.random.default_rng(1), users, train, 3)
    assert neg.shape == (600, 3)
    assert not dense[users[:, None], neg].any()
    assert (neg[users == 0] == 14).all()


def test_negative_sampler_rejects_a_user_with_every_item() -> None:
    train = sp.csr_matrix(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(RecommenderError, match="every item"):
        sample_negatives(np.random.default_rng(0), np.array([0]), train, 1)


def test_losses_at_zero_logits_are_log_two() -> None:
    # sigmoid(0) = 1/2, so every positive and negative term is -log(1/2) = log 2.
    zero, zeros = torch.zeros(4), torch.zeros(4, 3)
    assert math.isclose(bce_loss(zero, zeros).item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(bpr_loss(zero, zeros).item(), math.log(2), rel_tol=1e-6)
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("nope")


def test_neumf_fusion_of_pretrained_parts() -> None:
    # The fused output layer is [alpha w_gmf, (1 - alpha) w_mlp] with bias alpha b_g + (1-alpha) b_m,
    # so the fused logit equals alpha * gmf logit + (1 - alpha) * mlp logit exactly.
    torch.manual_seed(0)
    gmf, mlp = GMF(5, 7, 4), MLP(5, 7, (8, 4))
    net = NeuMF(5, 7, 4, (8, 4))
    net.load_pretrained(gmf, mlp, alpha=0.3)
    u, i = torch.tensor([0, 1, 4]), torch.tensor([6, 2, 3])
    with torch.no_grad():
        expected = 0.3 * gmf(u, i) + 0.7 * mlp(u, i)
        torch.testing.assert_close(net(u, i), expected)


def test_training_reports_every_epoch_and_restores_the_best() -> None:
    blocks = make_blocks(seed=1)
    fit_x, val_x = holdout_split(blocks.train.matrix, 0.25, seed=0)
    torch.manual_seed(0)
    net = GMF(blocks.train.n_users, blocks.train.n_items, 8)
    reports: list[EpochReport] = []
    cfg = TrainConfig(epochs=8, batch_size=64, learning_rate=0.01, loss="bpr", patience=2)
    result = train_network(net, fit_x, cfg, validation=val_x, callback=reports.append)
    assert [r.epoch for r in reports] == list(range(1, len(reports) + 1))
    assert all(np.isfinite(r.loss) and r.validation_ndcg is not None for r in reports)
    best = max(reports, key=lambda r: r.validation_ndcg or 0.0)
    assert result.best_epoch == best.epoch
    # The weights left in the network are those of the best epoch.
    assert validation_ndcg(net, fit_x, val_x, 10, torch.device("cpu")) == pytest.approx(
        best.validation_ndcg, abs=1e-12
    )


def test_neumf_pretraining_stages_reach_the_callback() -> None:
    blocks = make_blocks(seed=2)
    stages: list[str] = []
    model = NCFRecommender(
        "neumf",
        factors=4,
        layers=(8, 4),
        epochs=2,
        batch_size=128,
        validation_fraction=0.2,
        patience=0,
        refit=False,
    )
    model.fit(blocks.train, callback=lambda r: stages.append(r.stage))
    assert stages == ["gmf", "gmf", "mlp", "mlp", "main", "main"]
    assert set(model.best_epochs_) == {"gmf", "mlp", "main"}


def test_nan_loss_raises() -> None:
    blocks = make_blocks(seed=3)
    net = GMF(blocks.train.n_users, blocks.train.n_items, 4)
    with torch.no_grad():
        net.user.weight[0] = float("nan")
    with pytest.raises(RecommenderError, match="loss became nan"):
        train_network(net, blocks.train.matrix, TrainConfig(epochs=1, batch_size=1_000_000))


def test_holdout_split_partitions_each_user() -> None:
    rng = np.random.default_rng(0)
    m = sp.csr_matrix((rng.random((10, 30)) < 0.4).astype(np.float32))
    kept, held = holdout_split(m, 0.25, seed=3)
    assert (kept + held != m).nnz == 0
    assert kept.multiply(held).nnz == 0
    n = np.diff(m.indptr)
    np.testing.assert_array_equal(np.diff(held.indptr), np.round(0.25 * n).astype(int))


def test_bad_configuration_raises() -> None:
    with pytest.raises(RecommenderError, match="unknown architecture"):
        NCFRecommender("transformer")
    with pytest.raises(RecommenderError, match="validation_fraction"):
        NCFRecommender(validation_fraction=1.0)

"""The NCF training loop: negative sampling, mini-batch Adam, early stopping on validation NDCG.

Progress goes to a plain callback (``Callable[[EpochReport], None]``), never to a Dagster context,
so the loop runs and is tested without Dagster.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recs_assets.core.metrics import ndcg_at_k
from recs_assets.core.models.base import RecommenderError, top_k
from recs_assets.core.models.ncf.losses import get_loss


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did.

    Attributes:
        epoch: 1-based epoch number.
        loss: mean training loss over the epoch's mini-batches.
        validation_ndcg: NDCG@k on the validation matrix, or None without validation.
        seconds: wall time of the epoch (training and validation).
        stage: which network was trained (``gmf``/``mlp`` pre-training or the final one).
    """

    epoch: int
    loss: float
    validation_ndcg: float | None
    seconds: float
    stage: str = "main"


ProgressCallback = Callable[[EpochReport], None]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run.

    Attributes:
        epochs: maximum number of passes over the positives.
        batch_size: positives per mini-batch (each with ``n_negatives`` sampled negatives).
        learning_rate: Adam step size.
        weight_decay: Adam L2 penalty.
        n_negatives: negatives sampled per positive, uniformly among the user's non-items.
        loss: ``bce`` (pointwise, He et al.), ``bpr`` or ``hinge``.
        patience: stop after this many epochs without a better validation NDCG (0: never stop early).
        k: cut-off of the validation NDCG.
        seed: seed of torch and of the negative sampler.
    """

    epochs: int = 20
    batch_size: int = 1024
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    n_negatives: int = 4
    loss: str = "bce"
    patience: int = 3
    k: int = 10
    seed: int = 42


@dataclass
class TrainResult:
    """Outcome of ``train_network``: the best epoch (weights restored to it) and the history."""

    best_epoch: int
    best_ndcg: float | None
    history: list[EpochReport] = field(default_factory=list)


def sample_negatives(
    rng: np.random.Generator, users: np.ndarray, train: sp.csr_matrix, n_negatives: int
) -> np.ndarray:
    """(len(users), n_negatives) items drawn uniformly among items each user has not interacted with.

    Rejection sampling against the sorted keys user * n_items + item of ``train``; a user who has
    interacted with every item cannot get negatives and raises.
    """
    n_items = train.shape[1]
    counts = np.diff(train.indptr)
    if np.any(counts[users] >= n_items):
        raise RecommenderError("a user has interacted with every item: no negatives to sample")
    coo = train.tocoo()
    keys = np.sort(coo.row.astype(np.int64) * n_items + coo.col)
    neg = rng.integers(0, n_items, size=(len(users), n_negatives))
    uu = np.repeat(users.astype(np.int64)[:, None], n_negatives, axis=1)

    def hits(cand: np.ndarray, u: np.ndarray) -> np.ndarray:
        k = u * n_items + cand
        pos = np.searchsorted(keys, k)
        pos[pos == len(keys)] = 0
        return keys[pos] == k

    bad = hits(neg, uu)
    while bad.any():
        neg[bad] = rng.integers(0, n_items, size=int(bad.sum()))
        bad[bad] = hits(neg[bad], uu[bad])
    return neg


@torch.no_grad()
def score_users(
    net: nn.Module, users: np.ndarray, n_items: int, device: torch.device, chunk: int = 262_144
) -> np.ndarray:
    """Dense (len(users), n_items) logits of ``net`` for every item."""
    net.eval()
    out = np.empty((len(users), n_items), dtype=np.float32)
    items = torch.arange(n_items, device=device)
    rows = max(1, chunk // n_items)
    for start in range(0, len(users), rows):
        block = torch.as_tensor(users[start : start + rows], device=device)
        u = block.repeat_interleave(n_items)
        i = items.repeat(len(block))
        out[start : start + len(block)] = net(u, i).view(len(block), n_items).cpu().numpy()
    return out


def validation_ndcg(
    net: nn.Module, train: sp.csr_matrix, validation: sp.csr_matrix, k: int, device: torch.device
) -> float:
    """NDCG@k of ``net`` on ``validation`` users, ranking all items minus their train items."""
    users = np.flatnonzero(np.diff(validation.indptr) > 0)
    scores = score_users(net, users, train.shape[1], device).astype(np.float64)
    ex = train[users]
    scores[np.repeat(np.arange(len(users)), np.diff(ex.indptr)), ex.indices] = -np.inf
    top, _ = top_k(scores, k)
    return ndcg_at_k(top, sp.csr_matrix(validation[users]))


def train_network(
    net: nn.Module,
    train: sp.csr_matrix,
    config: TrainConfig,
    *,
    validation: sp.csr_matrix | None = None,
    callback: ProgressCallback | None = None,
    device: torch.device | None = None,
    stage: str = "main",
) -> TrainResult:
    """Train ``net`` in place on the positives of ``train`` (n_users x n_items CSR).

    With ``validation`` the weights of the epoch with the best NDCG@k are restored at the end and
    training stops after ``config.patience`` epochs without improvement. A NaN/inf loss raises
    ``RecommenderError``.
    """
    device = device or torch.device("cpu")
    loss_fn = get_loss(config.loss)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    net.to(device)
    opt = torch.optim.Adam(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    coo = train.tocoo()
    pos_users, pos_items = coo.row.astype(np.int64), coo.col.astype(np.int64)
    if len(pos_users) == 0:
        raise RecommenderError("NCF: no positive interactions to train on")
    result = TrainResult(best_epoch=0, best_ndcg=None)
    best_state: dict[str, torch.Tensor] | None = None
    since_best = 0
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        order = rng.permutation(len(pos_users))
        negs = sample_negatives(rng, pos_users[order], train, config.n_negatives)
        total, batches = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            sel = order[start : start + config.batch_size]
            u = torch.as_tensor(pos_users[sel], device=device)
            i = torch.as_tensor(pos_items[sel], device=device)
            n = torch.as_tensor(negs[start : start + config.batch_size], device=device)
            pos_logit = net(u, i)
            neg_logit = net(u.unsqueeze(1).expand_as(n).reshape(-1), n.reshape(-1)).view(n.shape)
            loss = loss_fn(pos_logit, neg_logit)
            if not torch.isfinite(loss):
                raise RecommenderError(
                    f"NCF ({stage}): loss became {loss.item()} at epoch {epoch}; lower the "
                    "learning rate or add weight decay"
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.item())
            batches += 1
        ndcg = None
        if validation is not None:
            ndcg = validation_ndcg(net, train, validation, config.k, device)
        report = EpochReport(epoch, total / batches, ndcg, time.perf_counter() - t0, stage)
        result.history.append(report)
        if callback is not None:
            callback(report)
        if ndcg is None:
            result.best_epoch = epoch
            continue
        if result.best_ndcg is None or ndcg > result.best_ndcg:
            result.best_epoch, result.best_ndcg, since_best = epoch, ndcg, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            since_best += 1
            if config.patience and since_best >= config.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return result

"""Losses over positive logits (batch,) and sampled negative logits (batch, n_negatives)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def bce_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Pointwise log loss of He et al.: positives labelled 1, each sampled negative labelled 0."""
    pos = F.binary_cross_entropy_with_logits(positive, torch.ones_like(positive), reduction="sum")
    neg = F.binary_cross_entropy_with_logits(negative, torch.zeros_like(negative), reduction="sum")
    return (pos + neg) / (positive.numel() + negative.numel())


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Bayesian personalized ranking: -log sigmoid(pos - neg), averaged over sampled pairs."""
    return -F.logsigmoid(positive.unsqueeze(-1) - negative).mean()


def hinge_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Pairwise hinge with margin 1."""
    return torch.clamp(1.0 - positive.unsqueeze(-1) + negative, min=0.0).mean()


LOSSES: dict[str, LossFn] = {"bce": bce_loss, "bpr": bpr_loss, "hinge": hinge_loss}


def get_loss(name: str) -> LossFn:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None

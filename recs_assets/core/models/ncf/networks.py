"""The three NCF networks of He et al. (WWW 2017) as torch modules.

Every network maps (user index batch, item index batch) -> logits of shape (batch,), and exposes
``features`` (the last hidden layer) so NeuMF can fuse a pre-trained GMF and MLP.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _init_embedding(emb: nn.Embedding) -> nn.Embedding:
    nn.init.normal_(emb.weight, std=0.01)
    return emb


class GMF(nn.Module):
    """Generalized matrix factorization: logit = h^T (p_u * q_i) + b."""

    def __init__(self, n_users: int, n_items: int, factors: int) -> None:
        super().__init__()
        self.user = _init_embedding(nn.Embedding(n_users, factors))
        self.item = _init_embedding(nn.Embedding(n_items, factors))
        self.out = nn.Linear(factors, 1)
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.zeros_(self.out.bias)

    @property
    def feature_dim(self) -> int:
        return self.out.in_features

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user(users) * self.item(items)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(users, items)).squeeze(-1)


class MLP(nn.Module):
    """Multi-layer perceptron over [p_u, q_i]; ``layers[0]`` is the concatenated embedding size."""

    def __init__(self, n_users: int, n_items: int, layers: Sequence[int]) -> None:
        super().__init__()
        if len(layers) < 2 or layers[0] % 2:
            raise ValueError(
                f"MLP layers must have >= 2 sizes and an even first size, got {layers}"
            )
        self.user = _init_embedding(nn.Embedding(n_users, layers[0] // 2))
        self.item = _init_embedding(nn.Embedding(n_items, layers[0] // 2))
        tower: list[nn.Module] = []
        for d_in, d_out in zip(layers[:-1], layers[1:], strict=True):
            tower += [nn.Linear(d_in, d_out), nn.ReLU()]
        self.tower = nn.Sequential(*tower)
        self.out = nn.Linear(layers[-1], 1)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def feature_dim(self) -> int:
        return self.out.in_features

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.tower(torch.cat([self.user(users), self.item(items)], dim=-1))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(users, items)).squeeze(-1)


class NeuMF(nn.Module):
    """Fusion of GMF and MLP: logit = h^T [gmf features, mlp features] + b."""

    def __init__(self, n_users: int, n_items: int, factors: int, layers: Sequence[int]) -> None:
        super().__init__()
        self.gmf = GMF(n_users, n_items, factors)
        self.mlp = MLP(n_users, n_items, layers)
        self.out = nn.Linear(factors + layers[-1], 1)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def load_pretrained(self, gmf: GMF, mlp: MLP, alpha: float = 0.5) -> None:
        """Initialize from pre-trained parts; the output layer is [alpha h_gmf, (1-alpha) h_mlp]."""
        self.gmf.load_state_dict(gmf.state_dict())
        self.mlp.load_state_dict(mlp.state_dict())
        with torch.no_grad():
            w = torch.cat([alpha * gmf.out.weight, (1 - alpha) * mlp.out.weight], dim=1)
            self.out.weight.copy_(w)
            self.out.bias.copy_(alpha * gmf.out.bias + (1 - alpha) * mlp.out.bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.gmf.features(users, items), self.mlp.features(users, items)], dim=-1)
        return self.out(h).squeeze(-1)


def build_network(
    architecture: str, n_users: int, n_items: int, factors: int, layers: Sequence[int]
) -> nn.Module:
    """A fresh network by name: ``gmf``, ``mlp`` or ``neumf``."""
    if architecture == "gmf":
        return GMF(n_users, n_items, factors)
    if architecture == "mlp":
        return MLP(n_users, n_items, layers)
    if architecture == "neumf":
        return NeuMF(n_users, n_items, factors, layers)
    raise ValueError(f"unknown NCF architecture {architecture!r} (gmf, mlp, neumf)")

"""``NCFRecommender``: GMF, MLP or NeuMF (optionally GMF/MLP pre-trained) behind ``Recommender``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recs_assets.core.models._helpers import holdout_split, positive
from recs_assets.core.models.base import InteractionMatrix, Recommender, RecommenderError, SideInfo
from recs_assets.core.models.ncf.networks import GMF, MLP, NeuMF, build_network
from recs_assets.core.models.ncf.training import (
    ProgressCallback,
    TrainConfig,
    score_users,
    train_network,
)


class NCFRecommender(Recommender):
    """Neural collaborative filtering; ``architecture`` is ``gmf``, ``mlp`` or ``neumf``.

    ``fit`` early-stops on validation NDCG@10: on the ``validation`` matrix when given, otherwise on
    ``validation_fraction`` of ``train`` held out per user (0 disables early stopping). With
    ``refit`` the model is then retrained on all of ``train`` for the best number of epochs.
    NeuMF with ``pretrain`` first trains a GMF and an MLP (``pretrain_epochs`` each, default
    ``epochs``) and fuses them (He et al. 2017, 3.4.1).
    """

    name = "ncf"

    def __init__(
        self,
        architecture: str = "neumf",
        factors: int = 64,
        layers: Sequence[int] = (128, 64, 32),
        epochs: int = 30,
        batch_size: int = 512,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-6,
        n_negatives: int = 16,
        loss: str = "bpr",
        patience: int = 3,
        validation_fraction: float = 0.1,
        refit: bool = True,
        pretrain: bool = True,
        pretrain_epochs: int | None = None,
        pretrain_alpha: float = 0.5,
        finetune_lr_scale: float = 0.1,
        seed: int = 42,
        num_threads: int = 1,
        device: str = "auto",
    ) -> None:
        super().__init__()
        if architecture not in ("gmf", "mlp", "neumf"):
            raise RecommenderError(f"{self.name}: unknown architecture {architecture!r}")
        positive(
            self.name,
            factors=factors,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            n_negatives=n_negatives,
            num_threads=num_threads,
        )
        if not 0.0 <= validation_fraction < 1.0:
            raise RecommenderError(f"{self.name}: validation_fraction must be in [0, 1)")
        self.architecture = architecture
        self.factors = int(factors)
        self.layers = tuple(int(x) for x in layers)
        self.config = TrainConfig(
            epochs=int(epochs),
            batch_size=int(batch_size),
            learning_rate=float(learning_rate),
            weight_decay=float(weight_decay),
            n_negatives=int(n_negatives),
            loss=loss,
            patience=int(patience),
            seed=int(seed),
        )
        self.validation_fraction = float(validation_fraction)
        self.refit = bool(refit)
        self.pretrain = bool(pretrain)
        self.pretrain_epochs = None if pretrain_epochs is None else int(pretrain_epochs)
        self.pretrain_alpha = float(pretrain_alpha)
        self.finetune_lr_scale = float(finetune_lr_scale)
        self.seed = int(seed)
        self.num_threads = int(num_threads)
        self.device = device
        self.net_: nn.Module | None = None
        self.best_epochs_: dict[str, int] = {}

    def _device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _train(
        self,
        n_users: int,
        n_items: int,
        train: sp.csr_matrix,
        validation: sp.csr_matrix | None,
        callback: ProgressCallback | None,
        epochs: dict[str, int] | None,
    ) -> nn.Module:
        """Train the networks (pre-training first for NeuMF); record best epochs per stage."""
        dev = self._device()

        def run(net: nn.Module, stage: str, cfg: TrainConfig) -> None:
            if epochs is not None:
                cfg = dataclasses.replace(cfg, epochs=max(epochs[stage], 1))
            res = train_network(
                net, train, cfg, validation=validation, callback=callback, device=dev, stage=stage
            )
            self.best_epochs_[stage] = res.best_epoch

        torch.manual_seed(self.seed)
        if self.architecture == "neumf" and self.pretrain:
            gmf = GMF(n_users, n_items, self.factors)
            mlp = MLP(n_users, n_items, self.layers)
            pre = self.config
            if self.pretrain_epochs is not None:
                pre = dataclasses.replace(pre, epochs=self.pretrain_epochs)
            run(gmf, "gmf", pre)
            run(mlp, "mlp", pre)
            net = NeuMF(n_users, n_items, self.factors, self.layers)
            net.load_pretrained(gmf, mlp, self.pretrain_alpha)
            fine = dataclasses.replace(
                self.config, learning_rate=self.config.learning_rate * self.finetune_lr_scale
            )
            run(net, "main", fine)
        else:
            net = build_network(self.architecture, n_users, n_items, self.factors, self.layers)
            run(net, "main", self.config)
        return net

    def fit(
        self,
        train: InteractionMatrix,
        side: SideInfo | None = None,
        *,
        validation: InteractionMatrix | None = None,
        callback: ProgressCallback | None = None,
    ) -> Self:
        """Train on ``train``; ``validation`` (same id maps) drives early stopping when given."""
        self._check_train(train)
        X = sp.csr_matrix(train.matrix, dtype=np.float32)
        X.data[:] = 1.0
        internal = validation is None and self.validation_fraction > 0
        if validation is not None:
            if validation.matrix.shape != X.shape:
                raise RecommenderError(
                    f"{self.name}: validation shape {validation.matrix.shape} != train {X.shape}"
                )
            fit_x, val_x = X, sp.csr_matrix(validation.matrix)
        elif internal:
            fit_x, val_x = holdout_split(X, self.validation_fraction, self.seed)
        else:
            fit_x, val_x = X, None
        threads = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            self.best_epochs_ = {}
            net = self._train(train.n_users, train.n_items, fit_x, val_x, callback, None)
            if internal and self.refit:
                best = dict(self.best_epochs_)
                net = self._train(train.n_users, train.n_items, X, None, callback, best)
                self.best_epochs_ = best
        finally:
            torch.set_num_threads(threads)
        self.net_ = net.cpu().eval()
        self._fitted = True
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = self._check_users(users)
        assert self.net_ is not None
        s = score_users(self.net_, users, self.n_items_, torch.device("cpu"))
        return s if items is None else s[:, self._check_items(items)]

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        assert self.net_ is not None
        embs = [m.item.weight for m in self.net_.modules() if isinstance(m, GMF | MLP)]
        return torch.cat(embs, dim=1).detach().numpy()

    def params(self) -> dict[str, Any]:
        c = self.config
        return {
            "architecture": self.architecture,
            "factors": self.factors,
            "layers": list(self.layers),
            "epochs": c.epochs,
            "batch_size": c.batch_size,
            "learning_rate": c.learning_rate,
            "weight_decay": c.weight_decay,
            "n_negatives": c.n_negatives,
            "loss": c.loss,
            "patience": c.patience,
            "validation_fraction": self.validation_fraction,
            "refit": self.refit,
            "pretrain": self.pretrain,
            "pretrain_epochs": self.pretrain_epochs,
            "pretrain_alpha": self.pretrain_alpha,
            "finetune_lr_scale": self.finetune_lr_scale,
            "seed": self.seed,
            "num_threads": self.num_threads,
            "device": self.device,
        }

    def _state(self) -> dict[str, np.ndarray]:
        assert self.net_ is not None
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        net = build_network(
            self.architecture, self.n_users_, self.n_items_, self.factors, self.layers
        )
        net.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in state.items()})
        self.net_ = net.eval()

"""Synthetic block-diagonal data whose right answer is known, shared by the model tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recs_assets.core.models.base import InteractionMatrix, SideInfo

N_BLOCKS = 4
USERS_PER_BLOCK = 20
ITEMS_PER_BLOCK = 12
ITEMS_PER_USER = 8
HELD_OUT = 2


@dataclass(frozen=True)
class Blocks:
    """Users interact only with the items of their own block (random 8 of 12).

    Two of each user's items are held out as ``test``. A user's unseen own-block items are exactly
    12 - 6 = 6, so a perfect model's top 6 (train items excluded) holds both test items: recall@6
    is 1.0, whereas a random ranking over the 42 unseen items reaches about 6/42 = 0.14.
    """

    train: InteractionMatrix
    test: sp.csr_matrix
    side: SideInfo
    user_block: np.ndarray
    item_block: np.ndarray


def make_blocks(seed: int = 0) -> Blocks:
    rng = np.random.default_rng(seed)
    n_users, n_items = N_BLOCKS * USERS_PER_BLOCK, N_BLOCKS * ITEMS_PER_BLOCK
    user_block = np.repeat(np.arange(N_BLOCKS), USERS_PER_BLOCK)
    item_block = np.repeat(np.arange(N_BLOCKS), ITEMS_PER_BLOCK)
    tr_rows, tr_cols, te_rows, te_cols = [], [], [], []
    for u in range(n_users):
        items = user_block[u] * ITEMS_PER_BLOCK + rng.choice(
            ITEMS_PER_BLOCK, ITEMS_PER_USER, replace=False
        )
        tr_rows += [u] * (ITEMS_PER_USER - HELD_OUT)
        tr_cols += list(items[HELD_OUT:])
        te_rows += [u] * HELD_OUT
        te_cols += list(items[:HELD_OUT])
    shape = (n_users, n_items)
    train = sp.csr_matrix((np.ones(len(tr_rows), np.float32), (tr_rows, tr_cols)), shape=shape)
    test = sp.csr_matrix((np.ones(len(te_rows), np.float32), (te_rows, te_cols)), shape=shape)
    onehot_items = sp.csr_matrix(np.eye(N_BLOCKS, dtype=np.float32)[item_block])
    onehot_users = sp.csr_matrix(np.eye(N_BLOCKS, dtype=np.float32)[user_block])
    side = SideInfo(
        user_features=onehot_users,
        item_features=None,
        item_categories=onehot_items,
        category_names=tuple(f"g{b}" for b in range(N_BLOCKS)),
        item_titles=tuple(f"item {i} of block {item_block[i]}" for i in range(n_items)),
    )
    matrix = InteractionMatrix(
        train,
        np.array([f"u{u}" for u in range(n_users)], dtype=object),
        np.array([f"i{i}" for i in range(n_items)], dtype=object),
    )
    return Blocks(matrix, test, side, user_block, item_block)


def recall_at(model_top: np.ndarray, test: sp.csr_matrix) -> float:
    """Mean over users of |top ∩ test| / |test| (slow, obvious loop)."""
    out = []
    for u in range(test.shape[0]):
        rel = set(test[u].indices.tolist())
        out.append(len(rel & set(model_top[u].tolist())) / len(rel))
    return float(np.mean(out))

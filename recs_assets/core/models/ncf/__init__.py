"""Neural collaborative filtering (He et al. 2017): GMF, MLP and NeuMF, spotlight-style layout.

``networks`` holds the torch modules, ``losses`` the pairwise/pointwise losses, ``training`` the
loop (negative sampling, early stopping on validation NDCG, a progress callback) and ``model`` the
``Recommender`` wrapper.
"""

from recs_assets.core.models.ncf.model import NCFRecommender
from recs_assets.core.models.ncf.training import EpochReport, TrainConfig

__all__ = ["EpochReport", "NCFRecommender", "TrainConfig"]

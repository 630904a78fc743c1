"""One documented feature: the unit of the feature catalog (see ``catalog``)."""

from __future__ import annotations

from dataclasses import dataclass

OWNER = "features"


@dataclass(frozen=True)
class FeatureSpec:
    """One documented feature.

    Attributes:
        name: column name in the feature table (a ``<...>`` part stands for a family of columns).
        dtype: Spark SQL type name (``bigint``, ``double``, ``string``, ``timestamp``, ``int``).
        definition: what the value means, precisely enough to recompute it.
        entity: the key the feature belongs to (``user``, ``item`` or ``event``).
        owner: team or helper responsible for it.
    """

    name: str
    dtype: str
    definition: str
    entity: str
    owner: str = OWNER

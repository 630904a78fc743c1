"""The Feast repository of recs: entity and feature-view definitions and the generated config.

Definitions are Python (``feature_views.py``); the ``feature_store.yaml`` is generated at run time by
``FeastResource`` into the data dir, so no machine path is committed.
"""

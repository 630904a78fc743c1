"""Evaluation report: the fitted model assets on their held-out splits, side by side (group ``evaluation``)."""

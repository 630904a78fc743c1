"""Evaluation report: every pipeline family evaluated on the held-out splits, with gate checks (group ``evaluation``)."""

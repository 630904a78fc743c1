"""Monitoring: feature and prediction drift, online quality, trending items (group ``monitoring``)."""

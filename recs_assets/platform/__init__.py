"""Shared Dagster infrastructure: the default IO manager (tables and artifacts on storage), the Spark session and the data-dir resources."""

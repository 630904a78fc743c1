"""Training datasets: evaluation-protocol splits with point-in-time features joined."""

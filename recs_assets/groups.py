"""Asset group names, defined once and attached when a domain is loaded."""

RAW = "raw"
FEATURES = "features"
DATASETS = "datasets"
MODELS = "models"
EVALUATION = "evaluation"
SERVING = "serving"
MONITORING = "monitoring"

"""Training of the LSTM models, tracked in MLflow, with checkpoints and resume."""

"""Optuna tuning of the LSTM, tracked as nested MLflow runs."""

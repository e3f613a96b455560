"""The model package (MLflow pyfunc), the model registry and serving."""

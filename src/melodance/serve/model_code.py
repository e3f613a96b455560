"""The logged model's code file (MLflow *models from code*).

:func:`melodance.serve.pyfunc.log_model` hands MLflow this file's path, not a
Python object: MLflow copies it into the model and, when the model is loaded
(``mlflow.pyfunc.load_model``, ``mlflow models serve``), runs it to get the
model. Nothing of ours is cloudpickled, so loading a registered model unpickles
no code; the weights come from the bundle artifact, read with
``torch.load(weights_only=True)``.
"""

import mlflow.models

from melodance.serve.pyfunc import DancePyfunc

mlflow.models.set_model(DancePyfunc())

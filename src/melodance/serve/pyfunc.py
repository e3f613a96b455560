"""The logged model: a self-contained MLflow pyfunc around a :class:`DanceBundle`.

It carries the weights, the feature settings and the normalisers fitted at
training time (all in the bundle artifact, plain tensors and data) and the
``melodance`` package (``code_paths``), so it loads without the training
code's working directory and accepts songs of any length.

It is logged as *models from code*: MLflow stores the code file
:mod:`melodance.serve.model_code` (which calls ``mlflow.models.set_model``)
instead of a cloudpickled object, so loading it unpickles nothing of ours.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
from mlflow.exceptions import MlflowException

MODEL_CODE = Path(__file__).with_name("model_code.py")
"""The code file MLflow stores and runs to build the model (models from code)."""


class DancePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from melodance.models.bundle import DanceBundle

        self.bundle = DanceBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None):
        from melodance.serve.predict import RequestError, predict

        try:
            return predict(self.bundle, model_input)
        except RequestError as e:
            raise MlflowException.invalid_parameter_value(str(e)) from e


def pip_requirements() -> list[str]:
    """What the served model needs (the versions this package pins)."""
    from importlib.metadata import version

    pkgs = ["torch", "numpy", "librosa", "soundfile", "soxr", "scipy", "pydantic", "pyyaml",
            "mlflow"]
    return [f"{p}=={version(p)}" for p in pkgs]


def log_model(bundle_path: Path, name: str = "model"):
    """Log the bundle as a pyfunc model in the active run; returns the ModelInfo."""
    import melodance

    pkg = Path(melodance.__file__).parent
    return mlflow.pyfunc.log_model(
        name=name, python_model=str(MODEL_CODE), artifacts={"bundle": str(bundle_path)},
        code_paths=[str(pkg)], pip_requirements=pip_requirements(),
    )

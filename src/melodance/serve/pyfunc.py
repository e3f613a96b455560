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

import warnings
from pathlib import Path

import mlflow.pyfunc
from mlflow.exceptions import MlflowException

MODEL_CODE = Path(__file__).with_name("model_code.py")
"""The code file MLflow stores and runs to build the model (models from code)."""


class DancePyfunc(mlflow.pyfunc.PythonModel):
    # The request is one JSON object whose fields depend on its kind (a song or its features):
    # the signature (below) documents it and MLflow checks requests against it. Type hints on
    # ``predict`` would make MLflow coerce the request, and without them MLflow asks for them
    # on every import; this MLflow switch skips its type-hint wrapper.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        from melodance.models.bundle import DanceBundle

        self.bundle = DanceBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None):
        from melodance.serve.predict import RequestError, predict

        try:
            return predict(self.bundle, _plain_cells(model_input))
        except RequestError as e:
            raise MlflowException.invalid_parameter_value(str(e)) from e


def _plain_cells(model_input):
    """MLflow's schema check turns the request into a one-row DataFrame whose array cells are
    object arrays of rows: back to nested lists, which the request parser reads."""
    import numpy as np

    if not (hasattr(model_input, "columns") and hasattr(model_input, "iloc")):
        return model_input
    out = model_input.copy()
    for c in out.columns:
        out[c] = [[np.asarray(r).tolist() for r in v] if isinstance(v, np.ndarray) and v.dtype == object
                  else v.tolist() if isinstance(v, np.ndarray) else v for v in out[c]]
    return out


def signature():
    """The request and answer of ``/invocations`` (README "Model registry and serving"):
    either a song (``audio_base64``, optional ``start_s``, ``duration_s``) or its raw features
    (``music`` [frames, 16] with ``temporal`` [frames, 3]); the answer is the motion in cm."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    matrix = Array(Array("double"))
    inputs = Schema([ColSpec("string", "audio_base64", required=False),
                     ColSpec("double", "start_s", required=False),
                     ColSpec("double", "duration_s", required=False),
                     ColSpec(matrix, "music", required=False),
                     ColSpec(matrix, "temporal", required=False),
                     ColSpec(Array("double"), "root_start", required=False),
                     ColSpec("long", "seed", required=False)])  # sampling seed (generative families)
    outputs = Schema([ColSpec(Array(Array(Array("float"))), "joints"), ColSpec(Array(Array("float")), "root"),
                      ColSpec("double", "fps"), ColSpec("long", "frames")])
    return ModelSignature(inputs=inputs, outputs=outputs)


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
    with warnings.catch_warnings():
        # An input example would be a whole song in every model version; the signature says it.
        warnings.filterwarnings("ignore", message=".*An input example was not provided")
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(MODEL_CODE), artifacts={"bundle": str(bundle_path)},
            code_paths=[str(pkg)], pip_requirements=pip_requirements(), signature=signature(),
        )


def log_dance_model(bundle_path: str | Path, name: str = "model"):
    """Log a trained bundle as the run's MLflow pyfunc model (see serve.pyfunc)."""
    from melodance import tracking

    return tracking.retry(lambda: log_model(Path(bundle_path), name=name))

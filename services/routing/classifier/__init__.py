"""Ticket classification that learns from labelled history (issue 4).

An offline Chinese text classifier with calibrated confidence and an abstain threshold:

    from services.routing.classifier import load_model
    model = load_model("models/classifier")
    [p] = model.predict_batch(["标题\\n正文"])
    p.label, p.confidence, p.runner_up, p.abstained, p.model_version

A label becomes a category of the responsibility list through ``label_map.LabelMap``
(data/label_map.json). ``retrain`` learns from the office's decisions and promotes a new
model only when it beats the current one on recent decisions.

Training, evaluation, prediction and retraining from the command line: ``hotline classify --help``.
How it works and how well: docs/classifier.md.
"""

from typing import TYPE_CHECKING, Any

from services.routing.classifier.errors import ClassifierError, DataError, ModelFormatError
from services.routing.classifier.strings import compose

if TYPE_CHECKING:
    from services.routing.classifier.model import FORMAT_VERSION, Prediction, TicketClassifier, load_model

__all__ = ["FORMAT_VERSION", "ClassifierError", "DataError", "ModelFormatError", "Prediction",
           "TicketClassifier", "compose", "load_model"]


def __getattr__(name: str) -> Any:
    """The model's names load numpy and scipy (~35 MB): only when asked for (issue 21), so routing
    without a trained model, and the label map, never import them."""
    if name in ("FORMAT_VERSION", "Prediction", "TicketClassifier", "load_model"):
        from services.routing.classifier import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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

from services.routing.classifier.errors import ClassifierError, DataError, ModelFormatError
from services.routing.classifier.model import FORMAT_VERSION, Prediction, TicketClassifier, load_model
from services.routing.classifier.text import compose

__all__ = ["FORMAT_VERSION", "ClassifierError", "DataError", "ModelFormatError", "Prediction",
           "TicketClassifier", "compose", "load_model"]

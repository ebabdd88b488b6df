"""Ticket classification that learns from labelled history (issue 4).

An offline Chinese text classifier with calibrated confidence and an abstain threshold:

    from services.routing.classifier import load_model
    model = load_model("models/classifier")
    [p] = model.predict_batch(["标题\\n正文"])
    p.label, p.confidence, p.runner_up, p.abstained, p.model_version

Training, evaluation and prediction from the command line: ``hotline classify --help``.
How it works and how well: docs/classifier.md.
"""

from services.routing.classifier.errors import ClassifierError, DataError, ModelFormatError
from services.routing.classifier.model import FORMAT_VERSION, Prediction, TicketClassifier, load_model
from services.routing.classifier.text import compose

__all__ = ["FORMAT_VERSION", "ClassifierError", "DataError", "ModelFormatError", "Prediction",
           "TicketClassifier", "compose", "load_model"]

"""One thin resource class per area of the API, each over the client's request path."""

from .account import Account
from .collections import Collections
from .deployments import Deployments
from .files import Files
from .hardware import Hardware
from .models import Models
from .predictions import Predictions
from .trainings import Trainings
from .webhooks import Webhooks

__all__ = [
    "Account",
    "Collections",
    "Deployments",
    "Files",
    "Hardware",
    "Models",
    "Predictions",
    "Trainings",
    "Webhooks",
]

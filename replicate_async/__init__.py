"""replicate_async: an asyncio-native client for Replicate's HTTP API."""

from ._transport import Timeouts
from ._version import __version__
from .client import AsyncReplicate, ClientConfig
from .errors import (
    InputValidationError,
    PredictionCanceled,
    PredictionFailed,
    RateLimitError,
    ReplicateError,
)
from .fanout import Progress, RunResult
from .files import FileOutput, SavedFile
from .journal import Journal, JournalError
from .limiter import RateLimiter
from .protocol.limits import RateLimits
from .protocol.polling import PollPolicy
from .protocol.retry import RetryPolicy
from .protocol.sse import ServerSentEvent
from .receiver import Receiver
from .redis_limits import RedisRateLimits
from .streaming import PredictionStream, StreamPolicy
from .types import (
    Account,
    Collection,
    Deployment,
    File,
    Hardware,
    Model,
    Page,
    Prediction,
    Status,
    Training,
    Version,
    WebhookSecret,
)
from .use import OutputIterator, RemoteModel, Run

__all__ = [
    "Account",
    "AsyncReplicate",
    "ClientConfig",
    "Collection",
    "Deployment",
    "File",
    "FileOutput",
    "Hardware",
    "InputValidationError",
    "Journal",
    "JournalError",
    "Model",
    "OutputIterator",
    "Page",
    "PollPolicy",
    "Prediction",
    "PredictionCanceled",
    "PredictionFailed",
    "PredictionStream",
    "Progress",
    "RateLimitError",
    "RateLimiter",
    "RateLimits",
    "Receiver",
    "RedisRateLimits",
    "RemoteModel",
    "ReplicateError",
    "RetryPolicy",
    "Run",
    "RunResult",
    "SavedFile",
    "ServerSentEvent",
    "Status",
    "StreamPolicy",
    "Timeouts",
    "Training",
    "Version",
    "WebhookSecret",
    "__version__",
]

"""mnv4suite: an MLPerf-Mobile-style benchmark suite for the MobileNetV4 models.

Importing this package is cheap: no framework is imported until a run needs it.
"""

from mnv4suite.api import (
    Availability,
    Backend,
    BackendSpec,
    Dataset,
    DeviceProfile,
    ModelSpec,
    Requirement,
    Runtime,
    Session,
    Task,
    TaskSpec,
    hookimpl,
)

__version__ = "0.1.0"

__all__ = [
    "Availability",
    "Backend",
    "BackendSpec",
    "Dataset",
    "DeviceProfile",
    "ModelSpec",
    "Requirement",
    "Runtime",
    "Session",
    "Task",
    "TaskSpec",
    "hookimpl",
    "__version__",
]

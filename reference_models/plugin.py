"""Built-in plugin: the MobileNetV4 reference models (specs only; builders load on use)."""

from mnv4suite.api import hookimpl
from mnv4suite.reference_models.catalog import model_specs


@hookimpl
def register_models():
    return model_specs()

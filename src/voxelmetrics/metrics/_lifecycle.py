"""What every public metric and loss shares as a Keras object: its config and its docstring.

`ConstructorConfig` (`constructor_config`) is the one config rule, `documented` the one
docstring generator (and the Keras registration); every metric and loss uses both.
"""

import functools
import inspect

import keras

from voxelmetrics._docs import insert_before
from voxelmetrics.ops.criterion import Criterion

# Keras writes these itself (`Metric.get_config`: name, dtype; `Loss.get_config`: name,
# reduction): the rule leaves them, and what Keras leaves out (a loss's dtype), to Keras.
KERAS_ARGUMENTS = ("name", "dtype", "reduction")
_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@functools.cache
def constructor_arguments(cls: type) -> dict:
    """`{name: default}` of the arguments `cls(...)` takes by name, Keras' own left out.

    The constructor's named parameters and, where it ends in `**kwargs` (the base's
    arguments passed on), those of the next constructor up the class hierarchy, until one
    without `**kwargs`. Another `**name` (`OptimalThreshold`'s `**options`) is the class's
    own and ends the walk.

    Example:
        >>> from voxelmetrics.metrics import SurfaceDice
        >>> list(constructor_arguments(SurfaceDice))[:4]
        ['tolerance', 'spacing', 'spatial_dims', 'convention']
    """
    arguments: dict = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = list(inspect.signature(init).parameters.values())[1:]  # less self
        for p in parameters:
            if p.kind in _NAMED and p.name not in KERAS_ARGUMENTS:
                arguments.setdefault(p.name, p.default)
        if not any(p.kind is p.VAR_KEYWORD and p.name == "kwargs" for p in parameters):
            break
    return arguments


def config_value(value):
    """A stored option as the config holds it: a `Criterion` as its text spelling
    (`str(criterion)`, which `Criterion.parse` and `Criterion.of` read back exactly)."""
    return str(value) if isinstance(value, Criterion) else value


def constructor_config(obj, keras_config: dict) -> dict:
    r"""The config of a metric or loss: Keras' own keys plus each constructor argument.

    $config = keras \cup \{a: obj.a \mid a \in constructor\_arguments(type(obj))\}$: every
    argument is read from the attribute of its name (the validated value `__init__`
    stored), so `type(obj).from_config(obj.get_config())` rebuilds the same object. An
    argument whose default is `()` is written only when not empty (configs from before it
    existed stay as they were).

    Args:
        obj: a metric or loss whose attributes are named as its constructor's arguments.
        keras_config: what the Keras base class's `get_config` returned (name, dtype, ...).

    Returns:
        A new dict: `keras_config` updated with the arguments.

    Example:
        >>> from voxelmetrics.metrics import FBetaScore
        >>> config = FBetaScore(beta=2.0, num_classes=2).get_config()
        >>> config["beta"], config["num_classes"], "exclude_from_average" in config
        (2.0, 2, False)
    """
    config = dict(keras_config)
    for name, default in constructor_arguments(type(obj)).items():
        value = getattr(obj, name)
        if default == () and not value:
            continue
        config[name] = config_value(value)
    return config


class ConstructorConfig:
    """Mixin before a Keras base class (`class Recall(ConstructorConfig, keras.metrics.Metric)`):
    `get_config` is `constructor_config`; `from_config` drops `retired_arguments`, the keys
    configs of earlier versions carry that the class no longer takes, then calls Keras'."""

    retired_arguments: tuple[str, ...] = ()

    def get_config(self):
        return constructor_config(self, super().get_config())

    @classmethod
    def from_config(cls, config):
        kept = {k: v for k, v in config.items() if k not in cls.retired_arguments}
        return super().from_config(kept)


def documented(*sections: str):
    """Class decorator of every public metric and loss: the one way their docstrings are
    completed. Puts `sections` (the Args a family shares, notes on a peer library), in
    order, before the class docstring's own "Standalone usage:" examples, and registers the
    class with Keras' serialization (package "voxelmetrics").

    Example:
        >>> from voxelmetrics.metrics import Dice
        >>> doc = Dice.__doc__  # its own summary, the counting family's Args, its examples
        >>> doc.index("Dice `2 tp") < doc.index("class_weights:") < doc.index("Standalone")
        True
    """

    def decorate(cls):
        if sections:
            cls.__doc__ = insert_before(cls.__doc__, "\n    Standalone usage:", "".join(sections))
        return keras.saving.register_keras_serializable(package="voxelmetrics")(cls)

    return decorate

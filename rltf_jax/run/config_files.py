"""Config files: how they extend each other, and where their typed blocks get their defaults.

ml_collections loads a config file by its path, so a config cannot rely on ``configs`` being an
importable package; it loads its base with `sibling_config(__file__, "default")` instead.

A block that maps onto a dataclass (``config.ppo`` onto `PPOConfig`, ``config.rewards`` onto
`RewardConfig`, ...) is built by `dataclass_block` from the dataclass's own defaults plus the
fields the config changes, so every default lives in one place: the dataclass.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import types
import typing

import ml_collections


def load_config_file(path: str) -> ml_collections.ConfigDict:
    """``get_config()`` of the config file at ``path``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no config file at {path}")
    name = "rltf_config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path} defines no get_config()")
    return module.get_config()


def sibling_config(this_file: str, name: str) -> ml_collections.ConfigDict:
    """The config ``<name>.py`` next to ``this_file`` (pass ``__file__``)."""
    return load_config_file(os.path.join(os.path.dirname(os.path.abspath(this_file)), f"{name}.py"))


def dataclass_block(cls, *, exclude: tuple[str, ...] = (), **changes) -> ml_collections.ConfigDict:
    """A ConfigDict of every field of dataclass ``cls`` (but ``exclude``): its default, or ``changes``.

    A field whose value is None becomes a typed placeholder, so ``--config.block.field=VALUE`` still
    parses on the command line. A change that names no field raises KeyError.
    """
    unknown = set(changes) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise KeyError(f"{cls.__name__} has no field {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    block = ml_collections.ConfigDict()
    for field in dataclasses.fields(cls):
        if field.name in exclude:
            continue
        value = changes.get(field.name, field.default)
        if value is None:
            value = ml_collections.config_dict.placeholder(_without_none(hints[field.name]))
        block[field.name] = value
    return block


def _without_none(hint):
    """``float`` from ``float | None``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (kind,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return kind
    return hint

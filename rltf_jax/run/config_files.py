"""Config files that extend each other: `configs/tiny.py` starts from `configs/default.py`.

ml_collections loads a config file by its path, so a config cannot rely on ``configs`` being an
importable package; it loads its base with `sibling_config(__file__, "default")` instead.
"""

from __future__ import annotations

import importlib.util
import os

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

"""`python -m rltf_jax.train`: the command line is `rltf_jax.cli.train` (absl prints its docstring for --help)."""

from rltf_jax.cli import train as _cli
from rltf_jax.cli.train import run

__doc__ = _cli.__doc__

if __name__ == "__main__":
    run()

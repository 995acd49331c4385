"""`python -m rltf_jax.generate`: the command line is `rltf_jax.cli.generate`."""

from rltf_jax.cli.generate import run

if __name__ == "__main__":
    run()

"""`python -m rltf_jax.evaluate`: the command line is `rltf_jax.cli.evaluate`."""

from rltf_jax.cli.evaluate import run

if __name__ == "__main__":
    run()

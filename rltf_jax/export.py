"""`python -m rltf_jax.export`: the command line is `rltf_jax.cli.export`."""

from rltf_jax.cli.export import run

if __name__ == "__main__":
    run()

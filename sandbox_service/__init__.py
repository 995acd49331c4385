"""Sandbox service: runs untrusted Python against unit tests in a jail (see README.md).

Never imports rltf_jax or JAX; the trainer talks to it over HTTP only.
"""

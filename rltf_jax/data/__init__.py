"""Problem records, loaders for HumanEval / MBPP / APPS / CodeContests / the starter set, and
seqio tasks (`rltf_jax.evaluation.seqio_tasks`, imported on demand: it pulls in TensorFlow)."""

from rltf_jax.data.problem import BadRowError, Problem, validate_problem
from rltf_jax.data.registry import load_problems, parse_spec

__all__ = ["BadRowError", "Problem", "load_problems", "parse_spec", "validate_problem"]

"""Jitted generation: prompt and row bucketing, the token draw, the decode loop, conversation caches.

`Sampler.generate(prompts, SamplingParams, rng) -> Rollout` is what the rollouts and the evaluation use.
"""

from rltf_jax.sampling.sampler import Sampler
from rltf_jax.sampling.types import Rollout, SamplingParams

__all__ = ["Rollout", "Sampler", "SamplingParams"]

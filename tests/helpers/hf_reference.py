"""transformers' SmolLM2 (the test reference), converted from the wheel's GGUF once per test session.

transformers dequantizes a GGUF in Python (~30 s for SmolLM2). The first test process to ask saves
the converted float32 model's config and state dict into the session's shared folder (set up by
conftest.py, shared with the xdist workers); every later request rebuilds the model from them
(~3 s). (`save_pretrained` refuses models loaded from a GGUF, hence the state dict.)"""

import os
from pathlib import Path

import torch
import transformers
from filelock import FileLock

from rltf_jax.models.registry import smollm2_gguf_path


def smollm2_transformers():
    """transformers' SmolLM2-135M-Instruct in float32, eval mode, weights as the GGUF dequantizes them."""
    saved = Path(os.environ["RLTF_JAX_TEST_SHARED_DIR"]) / "hf_smollm2_f32.pt"
    with FileLock(str(saved) + ".lock"):
        if not saved.is_file():
            folder, fname = os.path.split(smollm2_gguf_path())
            model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
            config = {k: v for k, v in model.config.to_dict().items() if k != "quantization_config"}
            torch.save({"config": config, "state_dict": model.state_dict()}, saved)
            return model.eval()
    contents = torch.load(saved, weights_only=True)
    config = transformers.AutoConfig.for_model(**contents["config"])
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(contents["state_dict"])
    return model.eval()

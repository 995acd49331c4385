"""A byte-level BPE tokenizer (transformers) as GGUF metadata: llama.cpp's `tokenizer.ggml.*` keys.

The vocabulary is written by id (tokens the model has but the tokenizer lacks become `[PAD<i>]`,
type UNUSED, as llama.cpp's converter pads them); special added tokens are CONTROL, other added
tokens USER_DEFINED, the rest NORMAL. `tokenizer.ggml.pre` names how text is split before BPE:
taken from the GGUF the tokenizer came from when there is one, else recognised from the
tokenizer's own pre-tokenizer (the split regexes transformers maps GGUF names to).
"""

from __future__ import annotations

import json

from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

from rltf_jax.models.config import ModelConfig
from rltf_jax.models.export_hf import ExportError


def _tokenizer_json(tokenizer) -> dict:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ExportError(f"tokenizer {type(tokenizer).__name__} has no tokenizers backend (tokenizer.json)")
    return json.loads(backend.to_str())


def bpe_merges(tokenizer) -> list[str]:
    """The BPE merges as llama.cpp stores them: 'left right' strings, in rank order."""
    model = _tokenizer_json(tokenizer)["model"]
    if model.get("type") != "BPE":
        raise ExportError(f"only BPE tokenizers can be written to GGUF here, not {model.get('type')!r}")
    return [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]


def token_list(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    """(tokens by id, their gguf.TokenType) for a model with `vocab_size` embeddings."""
    from gguf import TokenType

    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size or max(vocab.values()) >= vocab_size:
        raise ExportError(f"the tokenizer has {len(vocab)} tokens, more than the model's {vocab_size} embeddings")
    by_id = {index: token for token, index in vocab.items()}
    added = {index: token.special for index, token in tokenizer.added_tokens_decoder.items()}
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(TokenType.UNUSED)
            continue
        tokens.append(by_id[index])
        if index in added:
            types.append(TokenType.CONTROL if added[index] else TokenType.USER_DEFINED)
        else:
            types.append(TokenType.NORMAL)
    return tokens, [int(t) for t in types]


def pre_tokenizer_name(tokenizer, tokenizer_gguf: str | None) -> str:
    """llama.cpp's `tokenizer.ggml.pre` for this tokenizer (see the module docstring)."""
    if tokenizer_gguf:
        from gguf import GGUFReader

        field = GGUFReader(tokenizer_gguf).fields.get("tokenizer.ggml.pre")
        if field is not None:
            return field.contents()
    pre = _tokenizer_json(tokenizer).get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    regexes = [p.get("pattern", {}).get("Regex") for p in parts if p.get("type") == "Split"]
    if not regexes:
        if any(p.get("type") == "ByteLevel" and p.get("use_regex", True) for p in parts):
            return "gpt2"
        raise ExportError(f"cannot name the tokenizer's pre-tokenizer for llama.cpp: {json.dumps(pre)[:200]}")

    for name, regex in GGUF_PRE_TOKENIZER_SPLITS.items():
        if regex == regexes[0]:
            return name
    raise ExportError(f"the tokenizer's split regex has no llama.cpp pre-tokenizer name: {regexes[0][:120]!r}")


def add_tokenizer(writer, tokenizer, config: ModelConfig, tokenizer_gguf: str | None = None) -> None:
    """Adds the tokenizer, its special token ids and its chat template to a GGUFWriter."""
    tokens, types = token_list(tokenizer, config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer, tokenizer_gguf))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(bpe_merges(tokenizer))
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else config.bos_token_id
    eos = config.eos_token_ids[0] if config.eos_token_ids else tokenizer.eos_token_id
    for add, token_id in ((writer.add_bos_token_id, bos), (writer.add_eos_token_id, eos),
                          (writer.add_unk_token_id, tokenizer.unk_token_id),
                          (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            add(int(token_id))
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    writer.add_add_space_prefix(False)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)

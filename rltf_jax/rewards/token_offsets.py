"""Character offsets of each *sampled* response token in the decoded response text.

The sampled ids can differ from the canonical re-encoding of the text, so offsets are computed
from the ids themselves, never by re-tokenising, and never by decoding growing prefixes (O(T²),
what RLTF's `find_position` did). Two linear-time paths:

- byte-level BPE (GPT-2 / SmolLM2 / Llama-3 / Qwen): each token string maps to its bytes through
  the GPT-2 bytes↔unicode table; bytes are fed to an incremental UTF-8 decoder, token by token, so
  a character split across tokens belongs to every token holding one of its bytes.
- any other tokenizer (SentencePiece, ...): a sliding-window incremental detokeniser (as used by
  streaming servers): token i's text is ``decode(ids[i-w:i+1])`` minus ``decode(ids[i-w:i])``,
  held back while the window ends in an incomplete character. O(T·w) decode calls of ≤ w+1 tokens.

Both check that the joined pieces equal ``tokenizer.decode(ids, skip_special_tokens=True)`` and
raise a ValueError naming the mismatch otherwise, so offsets are exact or loudly absent.
"""

from __future__ import annotations

import codecs
import functools
from typing import Sequence

import numpy as np

WINDOW = 6


@functools.lru_cache(maxsize=1)
def unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's `bytes_to_unicode` table (printable stand-ins for the 256 bytes)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes)}


def _special_ids(tokenizer) -> set[int]:
    return set(getattr(tokenizer, "all_special_ids", ()) or ())


def _byte_level_pieces(tokenizer, ids: Sequence[int]) -> list[bytes] | None:
    """Bytes of each token under byte-level BPE, or None if the tokenizer is not byte-level."""
    table = unicode_to_byte()
    special = _special_ids(tokenizer)
    pieces = []
    for token_id, token in zip(ids, tokenizer.convert_ids_to_tokens(list(ids))):
        if token_id in special or token is None:
            pieces.append(b"")
            continue
        try:
            pieces.append(bytes(table[ch] for ch in token))
        except KeyError:
            return None
    return pieces


def _offsets_from_bytes(pieces: list[bytes]) -> tuple[str, np.ndarray]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    chunks, offsets, emitted = [], np.zeros((len(pieces), 2), np.int64), 0
    for i, piece in enumerate(pieces):
        start = emitted
        text = decoder.decode(piece)
        chunks.append(text)
        emitted += len(text)
        pending = 1 if decoder.getstate()[0] else 0  # bytes of a character not yet complete
        offsets[i] = (start, emitted + pending)
    tail = decoder.decode(b"", final=True)
    chunks.append(tail)
    if pieces:
        offsets[-1, 1] = emitted + len(tail)
    return "".join(chunks), offsets


def _offsets_by_window(tokenizer, ids: Sequence[int]) -> tuple[str, np.ndarray]:
    ids = list(ids)
    chunks, offsets, emitted = [], np.zeros((len(ids), 2), np.int64), 0
    held_from = None  # first token whose text is still held back
    for i in range(len(ids)):
        start_window = max(0, i - WINDOW) if held_from is None else max(0, min(held_from, i) - WINDOW)
        first_new = i if held_from is None else held_from
        before = tokenizer.decode(ids[start_window:first_new], skip_special_tokens=True)
        after = tokenizer.decode(ids[start_window:i + 1], skip_special_tokens=True)
        if after.endswith("\ufffd") and i + 1 < len(ids) or not after.startswith(before):
            held_from = first_new
            continue
        new_text = after[len(before):]
        chunks.append(new_text)
        for j in range(first_new, i + 1):
            offsets[j] = (emitted, emitted + len(new_text))
        emitted += len(new_text)
        held_from = None
    if held_from is not None:
        offsets[held_from:] = (emitted, emitted)
    return "".join(chunks), offsets


def token_char_offsets(tokenizer, ids: Sequence[int]) -> tuple[str, np.ndarray]:
    """Decoded text of `ids` and each token's character span in it.

    Args:
      tokenizer: a Hugging Face tokenizer.
      ids: the sampled response token ids (no padding), length N.
    Returns:
      (text, offsets): text == tokenizer.decode(ids, skip_special_tokens=True); offsets [N, 2]
      int64, token i covers text[offsets[i, 0]:offsets[i, 1]] (empty for special tokens; a
      character whose bytes span several tokens is covered by each of them).
    Raises:
      ValueError if the pieces do not reproduce the tokenizer's own decoding.
    """
    ids = [int(i) for i in ids]
    expected = tokenizer.decode(ids, skip_special_tokens=True)
    pieces = _byte_level_pieces(tokenizer, ids)
    if pieces is not None:
        text, offsets = _offsets_from_bytes(pieces)
        if text == expected:
            return text, offsets
    text, offsets = _offsets_by_window(tokenizer, ids)
    if text != expected:
        raise ValueError(
            "token_char_offsets: per-token pieces do not reproduce tokenizer.decode(ids) "
            f"({text[:60]!r}... vs {expected[:60]!r}...); the tokenizer's decoding is not "
            "prefix-stable (e.g. clean_up_tokenization_spaces=True)")
    return text, offsets


def span_token_mask(offsets: np.ndarray, start: int, end: int) -> np.ndarray:
    """[N] bool: tokens whose character span overlaps [start, end) (a non-empty overlap)."""
    if end <= start:
        return np.zeros(len(offsets), bool)
    return (offsets[:, 0] < end) & (offsets[:, 1] > start) & (offsets[:, 1] > offsets[:, 0])

"""Character offsets of sampled tokens (byte-level path and windowed fallback) on the real
SmolLM2 tokenizer, including non-canonical token sequences and characters split across tokens."""


import numpy as np

from rltf_jax.rewards.token_offsets import (_offsets_by_window, span_token_mask, token_char_offsets,
                                            unicode_to_byte)


TEXT = "def f(x):\n    return x+1  # héllo 日本語 🙂\n\tprint(  x )\n"


def test_gpt2_byte_table_is_a_bijection():
    table = unicode_to_byte()
    assert sorted(table.values()) == list(range(256)) and len(table) == 256
    assert table["Ġ"] == ord(" ") and table["Ċ"] == ord("\n") and table["a"] == ord("a")


def test_offsets_cover_the_decoded_text_exactly(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    text, offsets = token_char_offsets(tokenizer, ids)
    assert text == tokenizer.decode(ids, skip_special_tokens=True) == TEXT
    assert offsets.shape == (len(ids), 2) and offsets[0, 0] == 0 and offsets[-1, 1] == len(text)
    assert (np.diff(offsets[:, 0]) >= 0).all() and (offsets[:, 1] >= offsets[:, 0]).all()
    # every token that holds a whole character sequence decodes to exactly its span
    for token_id, (a, b) in zip(ids, offsets):
        piece = tokenizer.decode([token_id])
        if "\ufffd" not in piece:
            assert text[a:b] == piece


def test_character_split_across_tokens_is_covered_by_each_piece(tokenizer):
    ids = tokenizer.encode("x = '日'", add_special_tokens=False)
    text, offsets = token_char_offsets(tokenizer, ids)
    k = text.index("日")
    holders = [i for i, (a, b) in enumerate(offsets) if a <= k < b]
    assert len(holders) >= 2  # 日 is 3 UTF-8 bytes; SmolLM2 splits it
    assert span_token_mask(offsets, k, k + 1).sum() == len(holders)


def test_non_canonical_sampled_ids(tokenizer):
    """A sampler can emit 'r','e','t','urn' where the tokenizer would write 'return'."""
    pieces = ["def", " g", "():", "\n", "   ", " r", "et", "urn", " ", "1"]
    ids = [tokenizer.convert_tokens_to_ids(p.replace(" ", "Ġ").replace("\n", "Ċ")) for p in pieces]
    assert tokenizer.unk_token_id not in ids
    text, offsets = token_char_offsets(tokenizer, ids)
    assert text == "def g():\n    return 1"
    assert [text[a:b] for a, b in offsets] == pieces


def test_special_tokens_are_skipped_and_empty(tokenizer):
    ids = tokenizer.encode("x = 1", add_special_tokens=False) + [tokenizer.eos_token_id]
    text, offsets = token_char_offsets(tokenizer, ids)
    assert text == "x = 1" and offsets[-1, 0] == offsets[-1, 1] == len(text)


def test_windowed_fallback_agrees_on_text_and_spans(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    text, offsets = _offsets_by_window(tokenizer, ids)
    fast_text, fast = token_char_offsets(tokenizer, ids)
    assert text == fast_text
    whole = [i for i, (a, b) in enumerate(fast) if "\ufffd" not in tokenizer.decode([ids[i]])]
    np.testing.assert_array_equal(offsets[whole], fast[whole])


def test_span_token_mask_selects_overlapping_tokens(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    text, offsets = token_char_offsets(tokenizer, ids)
    start = text.index("return")
    end = text.index("\n", start)
    mask = span_token_mask(offsets, start, end)
    decoded = tokenizer.decode([i for i, m in zip(ids, mask) if m])
    assert decoded.strip() == text[start:end].strip()
    assert not span_token_mask(offsets, 5, 5).any()

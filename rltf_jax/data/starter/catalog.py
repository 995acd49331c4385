"""Every starter family, in generation order, with its variant count and calibration tier.

The first 63 (`families.FAMILIES`) come first, so their problems keep their ids, tests and
train / heldout assignment; the families added for issue 29 (`families_call`, `families_stdio`)
follow. Variant counts and tiers come from calibration (SmolLM2-135M-Instruct greedy, chat; see
docs/data.md): ``easy`` families it solved every time, ``medium`` sometimes, ``hard`` never.
"""

from __future__ import annotations

from rltf_jax.data.starter.families import DEFAULT_VARIANTS, FAMILIES, TOPICS, VARIANTS, Family
from rltf_jax.data.starter.families_call import CALL_FAMILIES, WORD_LEVEL as CALL_WORD_LEVEL
from rltf_jax.data.starter.families_stdio import STDIO_FAMILIES

ALL_FAMILIES: tuple[Family, ...] = FAMILIES + CALL_FAMILIES + STDIO_FAMILIES

# Families whose inputs are texts of several words (a one-word text would make the task the identity
# or a constant); their tests hold texts of several words.
WORD_LEVEL = ("reverse_words", "capitalize_words", "count_words", "stdio_count_words") + CALL_WORD_LEVEL

NEW_VARIANTS = 3
# Tiers of the new families from their calibration (families not listed: "medium").
NEW_TIERS: dict[str, str] = {}


def variants(family: Family) -> int:
    """How many variants (name × phrasing × constant) of `family` the set holds."""
    if family in FAMILIES:
        return VARIANTS.get(family.key, DEFAULT_VARIANTS)
    return NEW_VARIANTS


def tier(family: Family) -> str:
    """The family's calibration tier, the problems' `difficulty`: easy / medium / hard."""
    if family in FAMILIES:
        return {2: "easy", 4: "medium"}.get(variants(family), "hard")
    return NEW_TIERS.get(family.key, "medium")


def _check() -> None:
    keys = [f.key for f in ALL_FAMILIES]
    assert len(keys) == len(set(keys)), "duplicate family keys"
    assert all(f.topic in TOPICS and f.mode in ("call", "stdio") for f in ALL_FAMILIES)


_check()

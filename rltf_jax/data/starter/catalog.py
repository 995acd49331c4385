"""Every starter family, in generation order, with its variant count and calibration tier.

The first 63 (`families.FAMILIES`) come first, so their problems keep their ids, tests and
train / heldout assignment; the wider second set (`families_call`, `families_stdio`)
follow. Variant counts and tiers come from calibration (SmolLM2-135M-Instruct greedy, chat; see
docs/data.md): ``easy`` families it solved every time, ``medium`` sometimes, ``hard`` never.
"""

from __future__ import annotations

from rltf_jax.data.starter.families import DEFAULT_VARIANTS, FAMILIES, TOPICS, VARIANTS, Family
from rltf_jax.data.starter.families_call import CALL_FAMILIES
from rltf_jax.data.starter.families_call import WORD_LEVEL as CALL_WORD_LEVEL
from rltf_jax.data.starter.families_stdio import STDIO_FAMILIES

ALL_FAMILIES: tuple[Family, ...] = FAMILIES + CALL_FAMILIES + STDIO_FAMILIES

# Families whose inputs are texts of several words (a one-word text would make the task the identity
# or a constant); their tests hold texts of several words.
WORD_LEVEL = ("reverse_words", "capitalize_words", "count_words", "stdio_count_words") + CALL_WORD_LEVEL

# Tiers of the new families from their calibration (greedy pass of their first 3 variants, 2026-12-06):
# easy = all passed, medium = some, hard = none. Every new family not listed is medium.
_EASY = ("remove_spaces", "first_word", "last_word", "list_length", "last_item", "reverse_list",
         "contains_value", "average", "double_all", "pairwise_sum", "get_or_zero", "sum_values",
         "unique_count", "dict_from_lists", "absolute", "cube", "is_positive", "floor_divide",
         "last_digit", "num_digits", "average_two", "max_three", "in_range", "sort_by_length", "sum_csv",
         "parse_numbers", "file_extension")
_HARD = ("count_spaces", "initials", "append_k", "count_value", "count_negative", "remove_value",
         "first_k_items", "drop_first", "chunks", "word_counts", "has_duplicates", "k_largest",
         "index_of", "sort_words", "parse_pairs", "split_csv", "month_of", "email_domain", "run_counter",
         "bank_balance", "robot_position", "final_floor") + tuple(f.key for f in STDIO_FAMILIES)
_OLD_KEYS = frozenset(f.key for f in FAMILIES)
NEW_TIERS: dict[str, str] = {**{key: "easy" for key in _EASY}, **{key: "hard" for key in _HARD}}
# Variants per tier of a new family: always-solved families get fewer (as the first 63 do).
NEW_VARIANTS = {"easy": 2, "medium": 3, "hard": 3}


def variants(family: Family) -> int:
    """How many variants (name × phrasing × constant) of `family` the set holds."""
    if family.key in _OLD_KEYS:
        return VARIANTS.get(family.key, DEFAULT_VARIANTS)
    return NEW_VARIANTS[tier(family)]


def tier(family: Family) -> str:
    """The family's calibration tier, the problems' `difficulty`: easy / medium / hard."""
    if family.key in _OLD_KEYS:
        return {2: "easy", 4: "medium"}.get(variants(family), "hard")
    return NEW_TIERS.get(family.key, "medium")


def _check() -> None:
    keys = [f.key for f in ALL_FAMILIES]
    assert len(keys) == len(set(keys)), "duplicate family keys"
    assert all(f.topic in TOPICS and f.mode in ("call", "stdio") for f in ALL_FAMILIES)


_check()

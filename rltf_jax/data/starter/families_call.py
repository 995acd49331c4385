"""Function (``mode="call"``) families (a second set, wider topics): strings, lists, dicts and sets, numbers,
sorting and searching, small text formats, and few-step simulations.

Mostly at the level of `add` / `reverse_string` / `is_even` (what SmolLM2-135M-Instruct passes),
some a step harder. Tests come from running each reference body (see `generate.py`).
"""

from __future__ import annotations

import dataclasses

from rltf_jax.data.starter.families import WORDS, Family, _ints, _lists, _naturals, _pairs, _sentences, _strings


def _f(key, topic, names, params, requests, body, inputs, ks=(None,)):
    return Family(key, tuple(names), params, tuple(requests), body, inputs, tuple(ks), topic=topic)


def _word_pairs(rng, n=6):
    return [rng.sample(WORDS, 2) for _ in range(n)]


def _list_and_value(rng, n=6, lo=0, hi=6, present=True):
    """``[items, x]`` rows; ``x`` is drawn from the list half the time."""
    rows = []
    for i in range(n):
        items = [rng.randint(lo, hi) for _ in range(rng.randint(1, 7))]
        x = rng.choice(items) if present and i % 2 == 0 else rng.randint(lo, hi + 3)
        rows.append([items, x])
    return rows


KEYS = ["a", "b", "c", "x", "y", "apple", "pear", "red", "blue", "cat"]


def _dicts(rng, n=6, lo=0, hi=20, min_len=1):
    return [[{k: rng.randint(lo, hi) for k in rng.sample(KEYS, rng.randint(min_len, 4))}] for _ in range(n)]


def _two_lists(rng, n=6, lo=0, hi=9):
    return [[[rng.randint(lo, hi) for _ in range(rng.randint(0, 6))],
             [rng.randint(lo, hi) for _ in range(rng.randint(0, 6))]] for _ in range(n)]


def _kv_texts(rng, n=6):
    rows = []
    for _ in range(n):
        keys = rng.sample(KEYS, rng.randint(1, 4))
        rows.append([";".join(f"{k}={rng.randint(0, 99)}" for k in keys)])
    return rows


def _csv_lines(rng, n=6, lo=0, hi=50):
    return [[",".join(str(rng.randint(lo, hi)) for _ in range(rng.randint(1, 6)))] for _ in range(n)]


def _times(rng, n=6):
    return [[f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"] for _ in range(n)]


def _dates(rng, n=6):
    return [[f"{rng.randint(1950, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"] for _ in range(n)]


def _commands(rng, choices, n=6, max_len=8):
    return [[[rng.choice(choices) for _ in range(rng.randint(0, max_len))]] for _ in range(n)]


def _moves(rng, letters, n=6, max_len=10):
    return [["".join(rng.choice(letters) for _ in range(rng.randint(0, max_len)))] for _ in range(n)]


FILENAMES = ["report.txt", "photo.jpeg", "data.csv", "main.py", "archive.tar.gz", "notes.md",
             "index.html", "song.mp3"]
EMAILS = ["ann@example.com", "bob@mail.org", "carol@school.edu", "dave@company.net", "eve@site.io",
          "frank@example.com"]

CALL_FAMILIES: tuple[Family, ...] = (
    # -- strings ------------------------------------------------------------------------------
    _f("concat", "string", ("concat", "join_two", "combine_strings"), "a, b",
       ("Write a Python function `{name}(a, b)` that returns the string a followed by the string b.",
        "Write a function `{name}(a, b)` that concatenates two strings and returns the result."),
       "    return a + b", lambda r, k: _word_pairs(r)),
    _f("starts_with", "string", ("starts_with_{k}", "begins_with_{k}"), "s",
       ("Write a Python function `{name}(s)` that returns True if the string s starts with the letter '{k}', else False.",),
       "    return s.startswith('{k}')",
       lambda r, k: [[w] for w in r.sample(WORDS + [k + "lpha", k + "x"], 6)], ks=("a", "p", "r")),
    _f("ends_with", "string", ("ends_with_{k}", "finishes_with_{k}"), "s",
       ("Write a Python function `{name}(s)` that returns True if the string s ends with the letter '{k}', else False.",),
       "    return s.endswith('{k}')",
       lambda r, k: [[w] for w in r.sample(WORDS + ["omeg" + k, "x" + k], 6)], ks=("a", "e", "n")),
    _f("remove_spaces", "string", ("remove_spaces", "strip_spaces", "no_spaces"), "s",
       ("Write a Python function `{name}(s)` that returns s with every space removed.",
        "Write a function `{name}(s)` that deletes all the space characters from the string s."),
       "    return s.replace(' ', '')", lambda r, k: _sentences(r)),
    _f("remove_vowels", "string", ("remove_vowels", "drop_vowels", "strip_vowels"), "s",
       ("Write a Python function `{name}(s)` that returns s without its vowels (a, e, i, o, u, lower or upper case).",),
       "    return ''.join(c for c in s if c.lower() not in 'aeiou')", lambda r, k: _strings(r)),
    _f("first_word", "string", ("first_word", "get_first_word", "opening_word"), "text",
       ("Write a Python function `{name}(text)` that returns the first word of text (words are separated by spaces).",),
       "    return text.split()[0]", lambda r, k: _sentences(r, 6, 0)),
    _f("last_word", "string", ("last_word", "get_last_word", "final_word"), "text",
       ("Write a Python function `{name}(text)` that returns the last word of text (words are separated by spaces).",),
       "    return text.split()[-1]", lambda r, k: _sentences(r, 6, 0)),
    _f("spaces_to_underscores", "string", ("snake_spaces", "spaces_to_underscores", "underscore_spaces"), "s",
       ("Write a Python function `{name}(s)` that returns s with every space replaced by an underscore '_'.",),
       "    return s.replace(' ', '_')", lambda r, k: _sentences(r)),
    _f("lower", "string", ("to_lower", "make_lowercase", "lowercase"), "s",
       ("Write a Python function `{name}(s)` that returns s in lower case.",
        "Write a function `{name}(s)` that converts a string to lowercase."),
       "    return s.lower()", lambda r, k: _strings(r)),
    _f("first_k_chars", "string", ("first_{k}_chars", "prefix_{k}"), "s",
       ("Write a Python function `{name}(s)` that returns the first {k} characters of s (all of s if it is shorter).",),
       "    return s[:{k}]", lambda r, k: _strings(r), ks=(2, 3, 4)),
    _f("count_spaces", "string", ("count_spaces", "space_count", "num_spaces"), "s",
       ("Write a Python function `{name}(s)` that returns how many space characters are in s.",),
       "    return s.count(' ')", lambda r, k: _sentences(r)),
    _f("double_chars", "string", ("double_chars", "double_letters", "stutter"), "s",
       ("Write a Python function `{name}(s)` that returns s with every character repeated twice, e.g. 'ab' -> 'aabb'.",),
       "    return ''.join(c * 2 for c in s)", lambda r, k: _strings(r)),
    _f("initials", "string", ("initials", "acronym", "first_letters"), "text",
       ("Write a Python function `{name}(text)` that returns the first letter of every word of text, joined together and in upper case.",),
       "    return ''.join(w[0] for w in text.split()).upper()", lambda r, k: _sentences(r)),
    _f("add_suffix", "string", ("exclaim", "shout_it", "add_bang"), "s",
       ("Write a Python function `{name}(s)` that returns s followed by an exclamation mark '!'.",),
       "    return s + '!'", lambda r, k: _strings(r)),
    _f("wrap_brackets", "string", ("in_brackets", "bracket", "wrap"), "s",
       ("Write a Python function `{name}(s)` that returns s wrapped in square brackets, e.g. 'hi' -> '[hi]'.",),
       "    return '[' + s + ']'", lambda r, k: _strings(r)),
    # -- lists --------------------------------------------------------------------------------
    _f("list_length", "list", ("list_length", "count_items", "size"), "items",
       ("Write a Python function `{name}(items)` that returns the number of elements in the list items.",),
       "    return len(items)", lambda r, k: _lists(r, 6, min_len=0)),
    _f("first_item", "list", ("first_item", "head", "first_element"), "items",
       ("Write a Python function `{name}(items)` that returns the first element of a non-empty list.",),
       "    return items[0]", lambda r, k: _lists(r)),
    _f("last_item", "list", ("last_item", "tail_item", "last_element"), "items",
       ("Write a Python function `{name}(items)` that returns the last element of a non-empty list.",),
       "    return items[-1]", lambda r, k: _lists(r)),
    _f("reverse_list", "list", ("reverse_list", "reversed_items", "backwards_list"), "items",
       ("Write a Python function `{name}(items)` that returns a new list with the elements of items in reverse order.",),
       "    return items[::-1]", lambda r, k: _lists(r, 6, min_len=0)),
    _f("append_k", "list", ("append_{k}", "add_{k}_at_end"), "items",
       ("Write a Python function `{name}(items)` that returns a new list: items followed by the number {k}.",),
       "    return items + [{k}]", lambda r, k: _lists(r, 6, min_len=0), ks=(0, 7, 99)),
    _f("contains_value", "list", ("contains", "is_in_list", "has_value"), "items, x",
       ("Write a Python function `{name}(items, x)` that returns True if x is an element of the list items, else False.",),
       "    return x in items", lambda r, k: _list_and_value(r)),
    _f("count_value", "list", ("count_occurrences", "count_value", "how_many"), "items, x",
       ("Write a Python function `{name}(items, x)` that returns how many times x occurs in the list items.",),
       "    return items.count(x)", lambda r, k: _list_and_value(r)),
    _f("average", "list", ("average", "mean", "list_average"), "nums",
       ("Write a Python function `{name}(nums)` that returns the average (the sum divided by the count) of a non-empty list of numbers.",),
       "    return sum(nums) / len(nums)", lambda r, k: _lists(r)),
    _f("double_all", "list", ("double_all", "doubled", "times_two_each"), "nums",
       ("Write a Python function `{name}(nums)` that returns a new list with every number of nums multiplied by 2.",),
       "    return [x * 2 for x in nums]", lambda r, k: _lists(r, 6, min_len=0)),
    _f("sum_squares", "list", ("sum_of_squares", "square_sum", "squares_total"), "nums",
       ("Write a Python function `{name}(nums)` that returns the sum of the squares of the numbers in nums.",),
       "    return sum(x * x for x in nums)", lambda r, k: _lists(r, 6, -5, 9, 0, 5)),
    _f("count_negative", "list", ("count_negatives", "negatives", "num_negative"), "nums",
       ("Write a Python function `{name}(nums)` that returns how many numbers in nums are less than zero.",),
       "    return sum(1 for x in nums if x < 0)", lambda r, k: _lists(r, 6, min_len=0)),
    _f("remove_value", "list", ("remove_all", "without", "drop_value"), "items, x",
       ("Write a Python function `{name}(items, x)` that returns a new list of the elements of items that are not equal to x, in order.",),
       "    return [v for v in items if v != x]", lambda r, k: _list_and_value(r)),
    _f("pairwise_sum", "list", ("add_lists", "pairwise_sum", "elementwise_sum"), "a, b",
       ("Write a Python function `{name}(a, b)` that returns a list whose i-th element is a[i] + b[i], for two lists of equal length.",),
       "    return [x + y for x, y in zip(a, b)]",
       lambda r, k: [[[r.randint(-5, 9) for _ in range(n)], [r.randint(-5, 9) for _ in range(n)]] for n in (1, 2, 3, 3, 4, 5)]),
    _f("first_k_items", "list", ("first_{k}_items", "take_{k}"), "items",
       ("Write a Python function `{name}(items)` that returns a list of the first {k} elements of items (all of them if there are fewer).",),
       "    return items[:{k}]", lambda r, k: _lists(r, 6, min_len=0), ks=(2, 3)),
    _f("drop_first", "list", ("drop_first", "without_first", "rest"), "items",
       ("Write a Python function `{name}(items)` that returns the list items without its first element (an empty list stays empty).",),
       "    return items[1:]", lambda r, k: _lists(r, 6, min_len=0)),
    _f("abs_all", "list", ("abs_all", "absolute_values", "make_positive"), "nums",
       ("Write a Python function `{name}(nums)` that returns a new list with the absolute value of every number in nums.",),
       "    return [abs(x) for x in nums]", lambda r, k: _lists(r, 6, -20, 20, 0, 7)),
    _f("chunks", "list", ("chunks_of_{k}", "split_into_{k}s"), "items",
       ("Write a Python function `{name}(items)` that splits items into consecutive chunks of {k} elements (the last chunk may be shorter) and returns the list of chunks.",),
       "    return [items[i:i + {k}] for i in range(0, len(items), {k})]",
       lambda r, k: _lists(r, 6, 0, 9, 0, 7), ks=(2, 3)),
    # -- dicts and sets -----------------------------------------------------------------------
    _f("get_or_zero", "dict_set", ("get_or_zero", "lookup", "value_or_zero"), "d, key",
       ("Write a Python function `{name}(d, key)` that returns d[key] if key is in the dict d, and 0 otherwise.",),
       "    return d.get(key, 0)",
       lambda r, k: [[d[0], r.choice(list(d[0]) + ["zzz"])] for d in _dicts(r, 6, 1, 20)]),
    _f("sorted_keys", "dict_set", ("sorted_keys", "keys_in_order", "key_list"), "d",
       ("Write a Python function `{name}(d)` that returns the keys of the dict d as a sorted list.",),
       "    return sorted(d)", lambda r, k: _dicts(r)),
    _f("sum_values", "dict_set", ("sum_values", "total_of_values", "values_sum"), "d",
       ("Write a Python function `{name}(d)` that returns the sum of the values of the dict d.",),
       "    return sum(d.values())", lambda r, k: _dicts(r)),
    _f("word_lengths", "dict_set", ("word_lengths", "length_map", "lengths_of_words"), "text",
       ("Write a Python function `{name}(text)` that returns a dict mapping each word of text (split on spaces) to its length.",),
       "    return {{w: len(w) for w in text.split()}}", lambda r, k: _sentences(r)),
    _f("word_counts", "dict_set", ("word_counts", "word_frequency", "count_each_word"), "text",
       ("Write a Python function `{name}(text)` that returns a dict mapping each word of text (split on spaces) to the number of times it occurs.",),
       "    counts = {{}}\n    for w in text.split():\n        counts[w] = counts.get(w, 0) + 1\n    return counts",
       lambda r, k: [[" ".join(r.choice(["a", "b", "cat", "dog"]) for _ in range(r.randint(2, 6)))] for _ in range(6)]),
    _f("unique_count", "dict_set", ("count_unique", "distinct_count", "num_distinct"), "items",
       ("Write a Python function `{name}(items)` that returns the number of distinct values in the list items.",),
       "    return len(set(items))", lambda r, k: _lists(r, 6, 0, 5, 0, 8)),
    _f("common_elements", "dict_set", ("common_elements", "intersection", "in_both"), "a, b",
       ("Write a Python function `{name}(a, b)` that returns a sorted list of the distinct values that occur in both lists a and b.",),
       "    return sorted(set(a) & set(b))", lambda r, k: _two_lists(r)),
    _f("has_duplicates", "dict_set", ("has_duplicates", "any_repeats", "contains_duplicate"), "items",
       ("Write a Python function `{name}(items)` that returns True if some value occurs more than once in the list items, else False.",),
       "    return len(set(items)) != len(items)", lambda r, k: _lists(r, 6, 0, 9, 1, 5)),
    _f("key_of_max", "dict_set", ("key_of_max", "best_key", "argmax_key"), "d",
       ("Write a Python function `{name}(d)` that returns the key of the non-empty dict d whose value is largest (values are distinct).",),
       "    return max(d, key=d.get)",
       lambda r, k: [[dict(zip(r.sample(KEYS, n), r.sample(range(50), n)))] for n in (1, 2, 3, 3, 4, 4)]),
    _f("only_in_first", "dict_set", ("only_in_first", "set_difference", "missing_from_second"), "a, b",
       ("Write a Python function `{name}(a, b)` that returns a sorted list of the distinct values of a that do not occur in b.",),
       "    return sorted(set(a) - set(b))", lambda r, k: _two_lists(r)),
    _f("dict_from_lists", "dict_set", ("make_dict", "zip_to_dict", "pair_up"), "keys, values",
       ("Write a Python function `{name}(keys, values)` that returns a dict mapping keys[i] to values[i] for two lists of equal length.",),
       "    return dict(zip(keys, values))",
       lambda r, k: [[r.sample(KEYS, n), [r.randint(0, 9) for _ in range(n)]] for n in (0, 1, 2, 3, 3, 4)]),
    # -- numbers ------------------------------------------------------------------------------
    _f("absolute", "number", ("absolute", "abs_value", "magnitude"), "n",
       ("Write a Python function `{name}(n)` that returns the absolute value of n.",),
       "    return n if n >= 0 else -n", lambda r, k: [[v] for v in _ints(r, 6, -30, 30)]),
    _f("cube", "number", ("cube", "cubed", "third_power"), "x",
       ("Write a Python function `{name}(x)` that returns x cubed (x * x * x).",),
       "    return x * x * x", lambda r, k: [[v] for v in _ints(r, 6, -9, 12)]),
    _f("is_positive", "number", ("is_positive", "positive", "above_zero"), "n",
       ("Write a Python function `{name}(n)` that returns True if n is greater than zero, else False.",),
       "    return n > 0", lambda r, k: [[v] for v in _ints(r, 6, -10, 10)]),
    _f("floor_divide", "number", ("divide_by_{k}", "floor_div_{k}"), "n",
       ("Write a Python function `{name}(n)` that returns n divided by {k}, rounded down to an integer (n // {k}).",),
       "    return n // {k}", lambda r, k: [[v] for v in _ints(r, 6, 0, 60)], ks=(2, 3, 10)),
    _f("mod_k", "number", ("mod_{k}", "remainder_{k}"), "n",
       ("Write a Python function `{name}(n)` that returns the remainder of n divided by {k}.",),
       "    return n % {k}", lambda r, k: [[v] for v in _ints(r, 6, 0, 60)], ks=(3, 7, 10)),
    _f("last_digit", "number", ("last_digit", "ones_digit", "final_digit"), "n",
       ("Write a Python function `{name}(n)` that returns the last decimal digit of a non-negative integer n.",),
       "    return n % 10", lambda r, k: [[v] for v in _ints(r, 6, 0, 9999)]),
    _f("num_digits", "number", ("num_digits", "count_digits", "digit_count"), "n",
       ("Write a Python function `{name}(n)` that returns how many decimal digits the non-negative integer n has.",),
       "    return len(str(n))", lambda r, k: [[r.randint(0, 10 ** r.randint(1, 6))] for _ in range(6)]),
    _f("average_two", "number", ("average_of_two", "mean_of_two", "midpoint"), "a, b",
       ("Write a Python function `{name}(a, b)` that returns the average of the two numbers a and b, (a + b) / 2.",),
       "    return (a + b) / 2", lambda r, k: _pairs(r)),
    _f("max_three", "number", ("max_of_three", "largest_of_three", "biggest_of_three"), "a, b, c",
       ("Write a Python function `{name}(a, b, c)` that returns the largest of the three numbers a, b and c.",),
       "    return max(a, b, c)", lambda r, k: [[r.randint(-20, 50) for _ in range(3)] for _ in range(6)]),
    _f("celsius", "number", ("celsius_to_fahrenheit", "to_fahrenheit", "c_to_f"), "c",
       ("Write a Python function `{name}(c)` that converts a temperature from Celsius to Fahrenheit: c * 9 / 5 + 32.",),
       "    return c * 9 / 5 + 32", lambda r, k: [[v] for v in _ints(r, 6, -40, 100)]),
    _f("reverse_number", "number", ("reverse_digits", "reverse_number", "flip_number"), "n",
       ("Write a Python function `{name}(n)` that returns the non-negative integer n with its decimal digits reversed, e.g. 123 -> 321 and 120 -> 21.",),
       "    return int(str(n)[::-1])", lambda r, k: _naturals(r, 6, 0, 9999)),
    _f("in_range", "number", ("in_range", "is_between", "within"), "x, lo, hi",
       ("Write a Python function `{name}(x, lo, hi)` that returns True if lo <= x <= hi, else False.",),
       "    return lo <= x <= hi", lambda r, k: [[r.randint(0, 20), r.randint(0, 8), r.randint(8, 16)] for _ in range(6)]),
    # -- sorting and searching ----------------------------------------------------------------
    _f("sort_list", "sort_search", ("sort_list", "sorted_numbers", "ascending"), "nums",
       ("Write a Python function `{name}(nums)` that returns the numbers of nums sorted from smallest to largest.",),
       "    return sorted(nums)", lambda r, k: _lists(r, 6, min_len=0)),
    _f("sort_descending", "sort_search", ("sort_descending", "descending", "largest_first"), "nums",
       ("Write a Python function `{name}(nums)` that returns the numbers of nums sorted from largest to smallest.",),
       "    return sorted(nums, reverse=True)", lambda r, k: _lists(r, 6, min_len=0)),
    _f("sort_by_length", "sort_search", ("sort_by_length", "shortest_first", "order_by_length"), "words",
       ("Write a Python function `{name}(words)` that returns the list of strings sorted by length, shortest first (words of equal length keep their order).",),
       "    return sorted(words, key=len)", lambda r, k: [[r.sample(WORDS, r.randint(0, 5))] for _ in range(6)]),
    _f("k_smallest", "sort_search", ("smallest_{k}", "lowest_{k}"), "nums",
       ("Write a Python function `{name}(nums)` that returns a sorted list of the {k} smallest numbers of nums.",),
       "    return sorted(nums)[:{k}]", lambda r, k: _lists(r, 6, min_len=3), ks=(2, 3)),
    _f("k_largest", "sort_search", ("largest_{k}", "top_{k}"), "nums",
       ("Write a Python function `{name}(nums)` that returns a list of the {k} largest numbers of nums, largest first.",),
       "    return sorted(nums, reverse=True)[:{k}]", lambda r, k: _lists(r, 6, min_len=3), ks=(2, 3)),
    _f("index_of", "sort_search", ("index_of", "find_index", "position_of"), "items, x",
       ("Write a Python function `{name}(items, x)` that returns the index of the first occurrence of x in items, or -1 if x is not there.",),
       "    for i, v in enumerate(items):\n        if v == x:\n            return i\n    return -1",
       lambda r, k: _list_and_value(r)),
    _f("median_odd", "sort_search", ("median", "middle_value", "median_of"), "nums",
       ("Write a Python function `{name}(nums)` that returns the median of a list with an odd number of numbers (the middle one after sorting).",),
       "    return sorted(nums)[len(nums) // 2]",
       lambda r, k: [[[r.randint(-9, 30) for _ in range(n)]] for n in (1, 3, 3, 5, 5, 7)]),
    _f("sort_words", "sort_search", ("sort_words", "alphabetical_words", "order_words"), "text",
       ("Write a Python function `{name}(text)` that returns the words of text (split on spaces) sorted alphabetically and joined by single spaces.",),
       "    return ' '.join(sorted(text.split()))", lambda r, k: _sentences(r)),
    # -- small text formats -------------------------------------------------------------------
    _f("parse_pairs", "parse", ("parse_pairs", "parse_settings", "to_dict"), "text",
       ("Write a Python function `{name}(text)` that parses a string like 'a=1;b=22' into a dict mapping each key to its integer value, e.g. {{'a': 1, 'b': 22}}.",),
       "    out = {{}}\n    for part in text.split(';'):\n        key, value = part.split('=')\n        out[key] = int(value)\n    return out",
       lambda r, k: _kv_texts(r)),
    _f("sum_csv", "parse", ("sum_csv", "csv_total", "add_csv"), "line",
       ("Write a Python function `{name}(line)` that takes a line of integers separated by commas, like '3,4,5', and returns their sum.",),
       "    return sum(int(x) for x in line.split(','))", lambda r, k: _csv_lines(r)),
    _f("split_csv", "parse", ("split_csv", "csv_fields", "parse_csv_line"), "line",
       ("Write a Python function `{name}(line)` that splits a comma-separated line like 'a,b,c' into the list of its fields ['a', 'b', 'c'].",),
       "    return line.split(',')",
       lambda r, k: [[",".join(r.sample(KEYS, r.randint(1, 4)))] for _ in range(6)]),
    _f("time_to_minutes", "parse", ("to_minutes", "minutes_since_midnight", "time_in_minutes"), "t",
       ("Write a Python function `{name}(t)` that takes a time 'HH:MM' (24-hour clock) and returns the number of minutes since midnight, e.g. '01:30' -> 90.",),
       "    hours, minutes = t.split(':')\n    return int(hours) * 60 + int(minutes)", lambda r, k: _times(r)),
    _f("year_of", "parse", ("year_of", "get_year", "date_year"), "date",
       ("Write a Python function `{name}(date)` that takes a date 'YYYY-MM-DD' and returns the year as an integer.",),
       "    return int(date.split('-')[0])", lambda r, k: _dates(r)),
    _f("month_of", "parse", ("month_of", "get_month", "date_month"), "date",
       ("Write a Python function `{name}(date)` that takes a date 'YYYY-MM-DD' and returns the month as an integer (1 to 12).",),
       "    return int(date.split('-')[1])", lambda r, k: _dates(r)),
    _f("parse_numbers", "parse", ("parse_numbers", "read_ints", "numbers_from_text"), "text",
       ("Write a Python function `{name}(text)` that takes integers separated by spaces, like '4 -2 10', and returns them as a list of ints.",),
       "    return [int(x) for x in text.split()]",
       lambda r, k: [[" ".join(str(r.randint(-9, 40)) for _ in range(r.randint(1, 5)))] for _ in range(6)]),
    _f("file_extension", "parse", ("file_extension", "get_extension", "extension_of"), "filename",
       ("Write a Python function `{name}(filename)` that returns the part of filename after its last dot, e.g. 'notes.txt' -> 'txt'.",),
       "    return filename.rsplit('.', 1)[1]", lambda r, k: [[f] for f in r.sample(FILENAMES, 6)]),
    _f("email_domain", "parse", ("email_domain", "domain_of", "get_domain"), "email",
       ("Write a Python function `{name}(email)` that returns the part of an email address after the '@'.",),
       "    return email.split('@')[1]", lambda r, k: [[e] for e in r.sample(EMAILS, 5)]),
    # -- simulations of a few steps -----------------------------------------------------------
    _f("run_counter", "simulate", ("run_counter", "final_count", "apply_commands"), "commands",
       ("Write a Python function `{name}(commands)` where a counter starts at 0 and each command in the list is 'inc' (add 1) or 'dec' (subtract 1); return the final value.",),
       "    value = 0\n    for c in commands:\n        value += 1 if c == 'inc' else -1\n    return value",
       lambda r, k: _commands(r, ["inc", "dec"])),
    _f("bank_balance", "simulate", ("final_balance", "bank_account", "balance_after"), "start, changes",
       ("Write a Python function `{name}(start, changes)` for a bank account that starts with the balance start; each number in changes is a deposit (positive) or a withdrawal (negative). A withdrawal larger than the balance is skipped. Return the final balance.",),
       "    balance = start\n    for c in changes:\n        if balance + c >= 0:\n            balance += c\n    return balance",
       lambda r, k: [[r.randint(0, 20), [r.randint(-15, 10) for _ in range(r.randint(0, 6))]] for _ in range(6)]),
    _f("robot_position", "simulate", ("robot_position", "walk", "final_position"), "moves",
       ("Write a Python function `{name}(moves)` for a robot that starts at [0, 0]; each letter of moves is 'U' (y + 1), 'D' (y - 1), 'L' (x - 1) or 'R' (x + 1). Return its final position as a list [x, y].",),
       "    x = y = 0\n    for m in moves:\n        if m == 'U':\n            y += 1\n        elif m == 'D':\n            y -= 1\n        elif m == 'L':\n            x -= 1\n        elif m == 'R':\n            x += 1\n    return [x, y]",
       lambda r, k: _moves(r, "UDLR")),
    _f("final_floor", "simulate", ("final_floor", "elevator", "which_floor"), "moves",
       ("Write a Python function `{name}(moves)` for an elevator that starts on floor 0; each character of moves is '+' (up one floor) or '-' (down one floor). Return the final floor.",),
       "    return moves.count('+') - moves.count('-')", lambda r, k: _moves(r, "+-")),
)


WORD_LEVEL = ("first_word", "last_word", "initials", "word_lengths", "sort_words", "remove_spaces",
              "spaces_to_underscores", "count_spaces")

# A hint appended to every phrasing of families that the first calibration found too hard for the
# base model (0 of 3 greedy); it names the idiom. Kept where the hint brought them into reach (46
# were tried; the rest were left without a hint or dropped, see docs/data.md).
HINTS = {
    "first_word": "Hint: text.split() gives the list of words.",
    "last_word": "Hint: text.split() gives the list of words.",
    "spaces_to_underscores": "Hint: use the string method replace.",
    "double_chars": "Hint: build the result in a loop over the characters of s.",
    "last_item": "Hint: items[-1] is the last element.",
    "key_of_max": "Hint: use max with key=d.get.",
    "median_odd": "Hint: sort the list and take the element at index len(nums) // 2.",
    "year_of": "Hint: date.split('-') gives the year, the month and the day as strings.",
}
CALL_FAMILIES = tuple(
    dataclasses.replace(f, requests=tuple(f"{r} {HINTS[f.key]}" for r in f.requests)) if f.key in HINTS else f
    for f in CALL_FAMILIES)

"""Parameterised families of small function problems for the starter set.

Each `Family` yields variants that differ in function name, constant and phrasing. A variant's
tests are computed later by running its reference solution (see `generate.py`), never written by
hand, so every reference solution passes by construction.

Template fields: ``{name}`` function name, ``{k}`` the variant's constant, ``{params}`` parameters.

This module holds the `Family` record, the input helpers and the first 63 families (call mode);
`families_call.py` and `families_stdio.py` hold the wider second set of families (more topics,
and stdin/stdout programs as APPS and CodeContests pose them); `catalog.py` joins them.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Family:
    """A problem template: names × phrasings × constants, with an input generator.

    ``mode="call"``: ``body`` is the reference function's body (indented 4 spaces) and ``inputs``
    yields argument lists. ``mode="stdio"``: ``names`` is ``("",)``, ``body`` is a whole program
    reading stdin and printing, and ``inputs`` yields stdin texts. ``topic`` is what the family
    exercises (one of `TOPICS`), used to stratify the unseen split.
    """

    key: str
    names: tuple[str, ...]
    params: str
    requests: tuple[str, ...]          # task statements
    body: str                          # reference function body, or the whole stdio program
    inputs: Callable[[random.Random, object], list]   # (rng, k) -> argument lists / stdin texts
    ks: tuple = (None,)
    topic: str = ""
    mode: str = "call"


TOPICS = ("string", "list", "dict_set", "number", "sort_search", "parse", "simulate")


def _ints(rng, n=6, lo=-20, hi=50):
    return [rng.randint(lo, hi) for _ in range(n)]


def _lists(rng, count=5, lo=-9, hi=30, min_len=1, max_len=7):
    return [[[rng.randint(lo, hi) for _ in range(rng.randint(min_len, max_len))]] for _ in range(count)]


WORDS = ["apple", "banana", "kiwi", "hello world", "python", "racecar", "level", "Data Science",
         "OpenAI", "abc", "Mississippi", "queue", "rhythm", "noon", "a quick brown fox", "zebra",
         "Programming", "madam", "test case", "AEIOU"]


def _strings(rng, n=6):
    return [[w] for w in rng.sample(WORDS, n)]


SENTENCES = ["hello world", "a quick brown fox", "the cat sat down", "Data Science is fun",
             "one two three", "keep it simple", "red green blue", "open the door please",
             "good morning", "we love python code"]
SINGLE_WORDS = ["python", "zebra", "banana", "rhythm", "noon"]


def _sentences(rng, n=6, single=1):
    """``n`` texts for word-level tasks: ``n - single`` of several words, ``single`` of one word."""
    texts = rng.sample(SENTENCES, n - single) + rng.sample(SINGLE_WORDS, single)
    rng.shuffle(texts)
    return [[t] for t in texts]


def _pairs(rng, n=6, lo=-20, hi=60):
    return [[rng.randint(lo, hi), rng.randint(lo, hi)] for _ in range(n)]


def _naturals(rng, n=6, lo=0, hi=12):
    return [[v] for v in rng.sample(range(lo, hi + 1), n)]


FAMILIES: tuple[Family, ...] = (
    Family("add", ("add", "add_numbers", "sum_two", "plus"), "a, b",
           ("Write a Python function `{name}(a, b)` that returns the sum of a and b.",
            "Write a function `{name}(a, b)` that adds two numbers and returns the result."),
           "    return a + b", lambda r, k: _pairs(r)),
    Family("subtract", ("subtract", "difference", "minus"), "a, b",
           ("Write a Python function `{name}(a, b)` that returns a minus b.",
            "Write a function `{name}(a, b)` that subtracts b from a."),
           "    return a - b", lambda r, k: _pairs(r)),
    Family("times_k", ("multiply_by_{k}", "times_{k}", "scale_by_{k}"), "x",
           ("Write a Python function `{name}(x)` that returns x multiplied by {k}.",
            "Write a function `{name}(x)` that multiplies the number x by {k}."),
           "    return x * {k}", lambda r, k: [[v] for v in _ints(r)], ks=(2, 3, 4, 5, 7, 10)),
    Family("add_k", ("add_{k}", "plus_{k}", "increase_by_{k}"), "x",
           ("Write a Python function `{name}(x)` that returns x plus {k}.",
            "Write a function `{name}(x)` that adds {k} to the number x."),
           "    return x + {k}", lambda r, k: [[v] for v in _ints(r)], ks=(1, 3, 5, 10, 42, 100)),
    Family("is_even", ("is_even", "even", "check_even"), "n",
           ("Write a Python function `{name}(n)` that returns True if n is even and False otherwise.",
            "Write a function `{name}(n)` that checks whether the integer n is even."),
           "    return n % 2 == 0", lambda r, k: [[v] for v in _ints(r)]),
    Family("is_odd", ("is_odd", "odd", "check_odd"), "n",
           ("Write a Python function `{name}(n)` that returns True if n is odd and False otherwise.",
            "Write a function `{name}(n)` that checks whether the integer n is odd."),
           "    return n % 2 == 1", lambda r, k: [[v] for v in _ints(r)]),
    Family("divisible", ("divisible_by_{k}", "is_multiple_of_{k}"), "n",
           ("Write a Python function `{name}(n)` that returns True if n is divisible by {k}, else False.",
            "Write a function `{name}(n)` that checks whether n is a multiple of {k}."),
           "    return n % {k} == 0", lambda r, k: [[v] for v in _ints(r, 7, 0, 60)], ks=(3, 4, 5, 7, 9)),
    Family("square", ("square", "squared", "square_number"), "x",
           ("Write a Python function `{name}(x)` that returns the square of x.",
            "Write a function `{name}(x)` that returns x times x."),
           "    return x * x", lambda r, k: [[v] for v in _ints(r)]),
    Family("power_k", ("power_{k}", "to_the_{k}"), "x",
           ("Write a Python function `{name}(x)` that returns x raised to the power {k}.",),
           "    return x ** {k}", lambda r, k: [[v] for v in _ints(r, 6, -5, 9)], ks=(3, 4, 5)),
    Family("max_two", ("max_of_two", "larger", "bigger_number"), "a, b",
           ("Write a Python function `{name}(a, b)` that returns the larger of a and b.",
            "Write a function `{name}(a, b)` that returns the maximum of two numbers."),
           "    return a if a > b else b", lambda r, k: _pairs(r)),
    Family("min_two", ("min_of_two", "smaller", "smaller_number"), "a, b",
           ("Write a Python function `{name}(a, b)` that returns the smaller of a and b.",
            "Write a function `{name}(a, b)` that returns the minimum of two numbers."),
           "    return a if a < b else b", lambda r, k: _pairs(r)),
    Family("reverse_string", ("reverse_string", "reverse", "backwards"), "s",
           ("Write a Python function `{name}(s)` that returns the string s reversed.",
            "Write a function `{name}(s)` that reverses a string."),
           "    return s[::-1]", lambda r, k: _strings(r)),
    Family("palindrome", ("is_palindrome", "palindrome", "reads_same_backwards"), "s",
           ("Write a Python function `{name}(s)` that returns True if the string s is a palindrome.",
            "Write a function `{name}(s)` that checks whether s reads the same forwards and backwards."),
           "    return s == s[::-1]", lambda r, k: _strings(r)),
    Family("count_vowels", ("count_vowels", "vowel_count", "num_vowels"), "s",
           ("Write a Python function `{name}(s)` that returns the number of vowels (a, e, i, o, u, lower or upper case) in s.",
            "Write a function `{name}(s)` that counts the vowels aeiou in the string s, ignoring case."),
           "    return sum(1 for c in s.lower() if c in 'aeiou')", lambda r, k: _strings(r)),
    Family("count_char", ("count_{k}", "number_of_{k}"), "s",
           ("Write a Python function `{name}(s)` that returns how many times the letter '{k}' occurs in s.",),
           "    return s.count('{k}')", lambda r, k: _strings(r), ks=("a", "e", "s", "o")),
    Family("upper", ("to_upper", "shout", "make_uppercase"), "s",
           ("Write a Python function `{name}(s)` that returns s in upper case.",
            "Write a function `{name}(s)` that converts a string to uppercase."),
           "    return s.upper()", lambda r, k: _strings(r)),
    Family("first_char", ("first_char", "first_letter", "initial"), "s",
           ("Write a Python function `{name}(s)` that returns the first character of the string s.",),
           "    return s[0]", lambda r, k: _strings(r)),
    Family("last_char", ("last_char", "last_letter", "final_char"), "s",
           ("Write a Python function `{name}(s)` that returns the last character of the string s.",),
           "    return s[-1]", lambda r, k: _strings(r)),
    Family("repeat", ("repeat_{k}_times", "repeat_string_{k}"), "s",
           ("Write a Python function `{name}(s)` that returns the string s repeated {k} times.",),
           "    return s * {k}", lambda r, k: _strings(r, 4), ks=(2, 3, 4)),
    Family("length", ("string_length", "length_of", "count_chars"), "s",
           ("Write a Python function `{name}(s)` that returns the number of characters in s.",),
           "    return len(s)", lambda r, k: _strings(r)),
    Family("sum_list", ("sum_list", "total", "list_sum"), "nums",
           ("Write a Python function `{name}(nums)` that returns the sum of a list of numbers.",
            "Write a function `{name}(nums)` that adds up all the numbers in the list nums."),
           "    return sum(nums)", lambda r, k: _lists(r, 6, min_len=0)),
    Family("product_list", ("product", "multiply_list", "list_product"), "nums",
           ("Write a Python function `{name}(nums)` that returns the product of all numbers in the list nums.",
            "Write a function `{name}(nums)` that multiplies together all the numbers in a list (1 for an empty list).",),
           "    result = 1\n    for x in nums:\n        result *= x\n    return result",
           lambda r, k: _lists(r, 6, -4, 6, 0, 5)),
    Family("max_list", ("max_of_list", "largest", "biggest_in_list"), "nums",
           ("Write a Python function `{name}(nums)` that returns the largest number in a non-empty list.",),
           "    return max(nums)", lambda r, k: _lists(r)),
    Family("min_list", ("min_of_list", "smallest", "smallest_in_list"), "nums",
           ("Write a Python function `{name}(nums)` that returns the smallest number in a non-empty list.",),
           "    return min(nums)", lambda r, k: _lists(r)),
    Family("count_even", ("count_evens", "number_of_evens", "even_count"), "nums",
           ("Write a Python function `{name}(nums)` that returns how many even numbers are in the list nums.",),
           "    return sum(1 for x in nums if x % 2 == 0)", lambda r, k: _lists(r, 6, min_len=0)),
    Family("filter_even", ("get_evens", "filter_even", "only_evens"), "nums",
           ("Write a Python function `{name}(nums)` that returns a list of the even numbers in nums, in order.",),
           "    return [x for x in nums if x % 2 == 0]", lambda r, k: _lists(r, 6, min_len=0)),
    Family("filter_greater", ("greater_than_{k}", "above_{k}"), "nums",
           ("Write a Python function `{name}(nums)` that returns a list of the numbers in nums that are greater than {k}, in order.",),
           "    return [x for x in nums if x > {k}]", lambda r, k: _lists(r), ks=(0, 5, 10)),
    Family("map_square", ("square_all", "squares", "square_each"), "nums",
           ("Write a Python function `{name}(nums)` that returns a new list with every number in nums squared.",),
           "    return [x * x for x in nums]", lambda r, k: _lists(r, 6, min_len=0)),
    Family("map_add", ("add_{k}_to_all", "shift_by_{k}"), "nums",
           ("Write a Python function `{name}(nums)` that returns a new list with {k} added to every number in nums.",),
           "    return [x + {k} for x in nums]", lambda r, k: _lists(r), ks=(1, 2, 10)),
    Family("factorial", ("factorial", "fact", "compute_factorial"), "n",
           ("Write a Python function `{name}(n)` that returns n factorial (n!) for n >= 0.",
            "Write a function `{name}(n)` that computes the product 1 * 2 * ... * n (and returns 1 when n is 0).",),
           "    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result",
           lambda r, k: _naturals(r)),
    Family("fibonacci", ("fibonacci", "fib", "nth_fibonacci"), "n",
           ("Write a Python function `{name}(n)` that returns the n-th Fibonacci number, with {name}(0) = 0 and {name}(1) = 1.",
            "Write a function `{name}(n)` that returns Fibonacci number n, where the sequence starts 0, 1, 1, 2, 3, 5.",),
           "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
           lambda r, k: _naturals(r, 6, 0, 20)),
    Family("sum_to_n", ("sum_to_n", "sum_up_to", "triangular"), "n",
           ("Write a Python function `{name}(n)` that returns the sum of the integers from 1 to n.",),
           "    return n * (n + 1) // 2", lambda r, k: _naturals(r, 6, 0, 100)),
    Family("digit_sum", ("digit_sum", "sum_of_digits", "add_digits"), "n",
           ("Write a Python function `{name}(n)` that returns the sum of the decimal digits of a non-negative integer n.",),
           "    return sum(int(d) for d in str(n))", lambda r, k: _naturals(r, 6, 0, 99999)),
    Family("is_prime", ("is_prime", "prime", "check_prime"), "n",
           ("Write a Python function `{name}(n)` that returns True if n is a prime number and False otherwise.",),
           "    if n < 2:\n        return False\n    for d in range(2, int(n ** 0.5) + 1):\n        if n % d == 0:\n            return False\n    return True",
           lambda r, k: _naturals(r, 8, 0, 50)),
    Family("gcd", ("gcd", "greatest_common_divisor", "hcf"), "a, b",
           ("Write a Python function `{name}(a, b)` that returns the greatest common divisor of two positive integers.",
            "Write a function `{name}(a, b)` that returns the largest integer dividing both a and b.",),
           "    while b:\n        a, b = b, a % b\n    return a", lambda r, k: _pairs(r, 6, 1, 60)),
    Family("rectangle_area", ("rectangle_area", "area", "area_of_rectangle"), "width, height",
           ("Write a Python function `{name}(width, height)` that returns the area of a rectangle.",),
           "    return width * height", lambda r, k: _pairs(r, 6, 0, 30)),
    Family("convert", ("minutes_to_seconds", "hours_to_minutes", "days_to_hours", "feet_to_inches"), "x",
           ("Write a Python function `{name}(x)` that converts the given amount, as its name says, and returns the result.",),
           "    return x * {k}", lambda r, k: [[v] for v in _ints(r, 6, 0, 50)], ks=(60, 60, 24, 12)),
    Family("leap_year", ("is_leap_year", "leap_year", "is_leap"), "year",
           ("Write a Python function `{name}(year)` that returns True if year is a leap year in the Gregorian calendar.",
            "Write a function `{name}(year)` that checks whether a year is a leap year (divisible by 4, except centuries not divisible by 400).",),
           "    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)",
           lambda r, k: [[y] for y in (1900, 2000, 2024, 2023, 2100, 1996, 2400)]),
    Family("fizzbuzz", ("fizzbuzz", "fizz_buzz", "fizzbuzz_word"), "n",
           ("Write a Python function `{name}(n)` that returns 'FizzBuzz' if n is divisible by 3 and 5, 'Fizz' if only by 3, 'Buzz' if only by 5, and otherwise str(n).",
            "Write a function `{name}(n)` for the FizzBuzz game: return 'Fizz' for multiples of 3, 'Buzz' for multiples of 5, 'FizzBuzz' for multiples of both, else the number as a string.",),
           "    if n % 15 == 0:\n        return 'FizzBuzz'\n    if n % 3 == 0:\n        return 'Fizz'\n    if n % 5 == 0:\n        return 'Buzz'\n    return str(n)",
           lambda r, k: [[v] for v in (15, 9, 10, 7, 30, 1)]),
    Family("second_largest", ("second_largest", "runner_up", "second_max"), "nums",
           ("Write a Python function `{name}(nums)` that returns the second largest distinct number in a list with at least two distinct numbers.",
            "Write a function `{name}(nums)` that finds the second biggest distinct value in the list nums.",),
           "    return sorted(set(nums))[-2]",
           lambda r, k: [[sorted(set(r.sample(range(-10, 40), 5)))[::-1] if i % 2 else r.sample(range(-10, 40), 6)] for i in range(5)]),
    Family("remove_duplicates", ("remove_duplicates", "unique", "dedupe"), "items",
           ("Write a Python function `{name}(items)` that returns a list of the items with duplicates removed, keeping the first occurrence order.",
            "Write a function `{name}(items)` that removes repeated elements from a list, keeping the first copy of each in order.",),
           "    seen = []\n    for x in items:\n        if x not in seen:\n            seen.append(x)\n    return seen",
           lambda r, k: _lists(r, 6, 0, 5, 0, 8)),
    Family("count_words", ("count_words", "word_count", "number_of_words"), "text",
           ("Write a Python function `{name}(text)` that returns the number of words in text, where words are separated by spaces.",),
           "    return len(text.split())", lambda r, k: _sentences(r)),
    Family("sign", ("sign", "sign_of", "signum"), "n",
           ("Write a Python function `{name}(n)` that returns 1 if n is positive, -1 if n is negative and 0 if n is zero.",),
           "    return (n > 0) - (n < 0)", lambda r, k: [[v] for v in (5, -3, 0, 12, -40, 1)]),
    Family("is_sorted", ("is_sorted", "sorted_ascending", "in_order"), "nums",
           ("Write a Python function `{name}(nums)` that returns True if the list nums is sorted in non-decreasing order.",
            "Write a function `{name}(nums)` that checks whether every element of nums is less than or equal to the next one.",),
           "    return all(nums[i] <= nums[i + 1] for i in range(len(nums) - 1))",
           lambda r, k: [[sorted(x[0]) if i % 2 else x[0]] for i, x in enumerate(_lists(r, 6, 0, 9, 2, 6))]),
    Family("count_upper", ("count_upper", "uppercase_count", "num_capitals"), "s",
           ("Write a Python function `{name}(s)` that returns the number of uppercase letters in s.",),
           "    return sum(1 for c in s if c.isupper())", lambda r, k: _strings(r)),
    Family("dot_product", ("dot_product", "dot", "inner_product"), "a, b",
           ("Write a Python function `{name}(a, b)` that returns the dot product of two lists of numbers of equal length.",
            "Write a function `{name}(a, b)` that returns the sum of a[i] * b[i] over all positions i of two equal-length lists.",),
           "    return sum(x * y for x, y in zip(a, b))",
           lambda r, k: [[[r.randint(-5, 9) for _ in range(n)], [r.randint(-5, 9) for _ in range(n)]]
                         for n in (1, 2, 3, 3, 4, 5)]),
    Family("longest_word", ("longest_word", "longest", "find_longest_word"), "text",
           ("Write a Python function `{name}(text)` that returns the longest word in text (words separated by spaces; the first one if tied).",),
           "    return max(text.split(), key=len)",
           lambda r, k: [[t] for t in ("the quick brown fox", "a bb ccc", "hello world", "one three five", "x yy zz")]),
    Family("running_sum", ("running_sum", "cumulative_sum", "prefix_sums"), "nums",
           ("Write a Python function `{name}(nums)` that returns the list of running totals of nums.",
            "Write a function `{name}(nums)` that returns a list whose i-th element is the sum of nums[0] through nums[i].",),
           "    out, total = [], 0\n    for x in nums:\n        total += x\n        out.append(total)\n    return out",
           lambda r, k: _lists(r, 6, min_len=0)),
    Family("flatten", ("flatten", "flatten_list", "concat_lists"), "lists",
           ("Write a Python function `{name}(lists)` that takes a list of lists and returns one list with all their items in order.",
            "Write a function `{name}(lists)` that joins a list of lists into a single flat list.",),
           "    return [x for sub in lists for x in sub]",
           lambda r, k: [[[[r.randint(0, 9) for _ in range(r.randint(0, 3))] for _ in range(r.randint(0, 4))]] for _ in range(6)]),
    Family("char_frequency", ("char_frequency", "letter_counts", "count_letters"), "s",
           ("Write a Python function `{name}(s)` that returns a dict mapping each character of s to how many times it occurs.",),
           "    counts = {{}}\n    for c in s:\n        counts[c] = counts.get(c, 0) + 1\n    return counts",
           lambda r, k: _strings(r, 5)),
    Family("rotate_left", ("rotate_left_{k}", "rotate_by_{k}"), "items",
           ("Write a Python function `{name}(items)` that returns the list rotated left by {k} positions (wrapping around; the list is non-empty).",),
           "    k = {k} % len(items)\n    return items[k:] + items[:k]", lambda r, k: _lists(r), ks=(1, 2, 3)),
    Family("reverse_words", ("reverse_words", "words_backwards", "flip_word_order"), "text",
           ("Write a Python function `{name}(text)` that returns the words of text in reverse order, joined by single spaces.",
            "Write a function `{name}(text)` that reverses the order of the words in a sentence.",),
           "    return ' '.join(text.split()[::-1])", lambda r, k: _sentences(r)),
    Family("capitalize_words", ("capitalize_words", "title_case", "capitalize_each"), "text",
           ("Write a Python function `{name}(text)` that returns text with the first letter of every space-separated word in upper case and the rest unchanged.",
            "Write a function `{name}(text)` that capitalizes the first letter of each word of text, leaving other letters as they are.",),
           "    return ' '.join(w[:1].upper() + w[1:] for w in text.split(' '))", lambda r, k: _sentences(r)),
    Family("count_consonants", ("count_consonants", "consonant_count", "num_consonants"), "s",
           ("Write a Python function `{name}(s)` that returns the number of consonants (letters that are not a, e, i, o, u, in any case) in s.",
            "Write a function `{name}(s)` that counts the letters of s that are not vowels, ignoring case and non-letters."),
           "    return sum(1 for c in s.lower() if c.isalpha() and c not in 'aeiou')", lambda r, k: _strings(r)),
    Family("sum_evens", ("sum_of_evens", "even_sum", "add_evens"), "nums",
           ("Write a Python function `{name}(nums)` that returns the sum of the even numbers in the list nums.",
            "Write a function `{name}(nums)` that adds up only the even numbers of a list."),
           "    return sum(x for x in nums if x % 2 == 0)", lambda r, k: _lists(r, 6, min_len=0)),
    Family("list_range", ("value_range", "spread", "max_minus_min"), "nums",
           ("Write a Python function `{name}(nums)` that returns the largest number minus the smallest number of a non-empty list.",
            "Write a function `{name}(nums)` that returns the difference between the maximum and the minimum of nums."),
           "    return max(nums) - min(nums)", lambda r, k: _lists(r)),
    Family("anagram", ("is_anagram", "anagrams", "same_letters"), "a, b",
           ("Write a Python function `{name}(a, b)` that returns True if the strings a and b are anagrams of each other (same letters, same counts).",
            "Write a function `{name}(a, b)` that checks whether b is a rearrangement of the letters of a."),
           "    return sorted(a) == sorted(b)",
           lambda r, k: [["listen", "silent"], ["apple", "papel"], ["abc", "abd"], ["rat", "car"], ["aab", "aba"], ["", ""]]),
    Family("count_positive", ("count_positive", "positives", "num_positive"), "nums",
           ("Write a Python function `{name}(nums)` that returns how many numbers in nums are greater than zero.",
            "Write a function `{name}(nums)` that counts the positive numbers in a list."),
           "    return sum(1 for x in nums if x > 0)", lambda r, k: _lists(r, 6, min_len=0)),
    Family("index_of_max", ("index_of_max", "argmax", "position_of_largest"), "nums",
           ("Write a Python function `{name}(nums)` that returns the index of the largest number in a non-empty list (the first one if tied).",
            "Write a function `{name}(nums)` that returns the position of the maximum value of nums."),
           "    return nums.index(max(nums))", lambda r, k: _lists(r)),
    Family("every_other", ("every_other", "even_positions", "alternate_items"), "items",
           ("Write a Python function `{name}(items)` that returns the items at even positions 0, 2, 4, ... of a list.",
            "Write a function `{name}(items)` that returns every second element of a list, starting with the first."),
           "    return items[::2]", lambda r, k: _lists(r, 6, min_len=0)),
    Family("swap_case", ("swap_case", "invert_case", "flip_case"), "s",
           ("Write a Python function `{name}(s)` that returns s with upper case letters made lower case and lower case letters made upper case.",
            "Write a function `{name}(s)` that swaps the case of every letter in s."),
           "    return s.swapcase()", lambda r, k: _strings(r)),
    Family("middle", ("middle_element", "middle", "center_item"), "items",
           ("Write a Python function `{name}(items)` that returns the element at index len(items) // 2 of a non-empty list.",
            "Write a function `{name}(items)` that returns the middle element of a list (for an even length, the later of the two middle ones)."),
           "    return items[len(items) // 2]", lambda r, k: _lists(r)),
    Family("count_above", ("count_above_{k}", "how_many_above_{k}"), "nums",
           ("Write a Python function `{name}(nums)` that returns how many numbers in nums are greater than {k}.",
            "Write a function `{name}(nums)` that counts the elements of nums that exceed {k}."),
           "    return sum(1 for x in nums if x > {k})", lambda r, k: _lists(r, 6, min_len=0), ks=(3, 10, 20)),
)

_OLD_TOPICS = {
    "string": ("reverse_string", "palindrome", "count_vowels", "count_char", "upper", "first_char",
               "last_char", "repeat", "length", "count_words", "count_upper", "longest_word",
               "reverse_words", "capitalize_words", "count_consonants", "anagram", "swap_case"),
    "list": ("sum_list", "product_list", "max_list", "min_list", "count_even", "filter_even",
             "filter_greater", "map_square", "map_add", "dot_product", "running_sum", "flatten",
             "rotate_left", "sum_evens", "list_range", "count_positive", "every_other", "middle",
             "count_above"),
    "dict_set": ("char_frequency", "remove_duplicates"),
    "sort_search": ("second_largest", "is_sorted", "index_of_max"),
}
_TOPIC_OF = {key: topic for topic, keys in _OLD_TOPICS.items() for key in keys}
FAMILIES = tuple(dataclasses.replace(f, topic=_TOPIC_OF.get(f.key, "number")) for f in FAMILIES)

# Variants per family, set from calibration (SmolLM2-135M-Instruct greedy, chat; see
# docs/benchmarks.md): families the policy always solved get 2 variants, partly solved ones 4,
# the rest the default 6, so the set is mostly problems it can sometimes but not always do.
# Run 1 set the first groups; run 2 moved list_range, middle and sum_evens (6/6 solved) to 2.
VARIANTS = {key: 2 for key in (
    "list_range", "middle", "sum_evens",
    "add", "add_k", "char_frequency", "count_words", "divisible", "filter_even", "first_char",
    "is_even", "is_odd", "length", "map_add", "max_list", "min_list", "min_two", "power_k",
    "rectangle_area", "reverse_string", "square", "sum_list", "times_k", "upper",
    "filter_greater", "max_two", "repeat", "subtract")}
VARIANTS.update({key: 4 for key in (
    "count_even", "digit_sum", "is_prime", "longest_word", "sum_to_n", "count_vowels",
    "count_upper", "last_char", "map_square", "palindrome", "sign")})
DEFAULT_VARIANTS = 6

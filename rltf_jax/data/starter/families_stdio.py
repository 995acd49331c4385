"""Standard input / output (``mode="stdio"``) families, posed as APPS and CodeContests pose them.

Each family's ``body`` is a whole reference program: it reads stdin and prints. ``inputs`` yields
stdin texts (newline-terminated lines); the expected stdout of each is what the reference prints
(see `generate.py`). The statement says what the input holds, line by line, and what to print;
`generate.py` appends one example (the first public test) to it.
"""

from __future__ import annotations

from rltf_jax.data.starter.families import SENTENCES, WORDS, Family


def _s(key, topic, requests, program, inputs, ks=(None,)):
    return Family(key, ("",), "", tuple(requests), program, inputs, tuple(ks), topic=topic, mode="stdio")


def _lines(*rows) -> str:
    return "".join(f"{row}\n" for row in rows)


def _nums(rng, lo=-9, hi=30, min_len=1, max_len=7):
    return [rng.randint(lo, hi) for _ in range(rng.randint(min_len, max_len))]


def _count_then_nums(rng, n=6, **kw):
    """``n`` stdin texts: a count on the first line, that many integers on the second."""
    rows = [_nums(rng, **kw) for _ in range(n)]
    return [_lines(len(r), " ".join(map(str, r))) for r in rows]


def _two_ints(rng, n=6, lo=-20, hi=60):
    return [_lines(f"{rng.randint(lo, hi)} {rng.randint(lo, hi)}") for _ in range(n)]


def _one_line(texts):
    return [_lines(t) for t in texts]


STDIO_FAMILIES: tuple[Family, ...] = (
    _s("stdio_add", "number",
       ("The input is one line with two integers a and b separated by a space. Print a + b.",
        "Read two integers from a single line of input and print their sum."),
       "a, b = map(int, input().split())\nprint(a + b)", lambda r, k: _two_ints(r)),
    _s("stdio_multiply", "number",
       ("The input is one line with two integers a and b separated by a space. Print a * b.",
        "Read two integers from one line of input and print their product."),
       "a, b = map(int, input().split())\nprint(a * b)", lambda r, k: _two_ints(r, 6, -12, 20)),
    _s("stdio_abs_diff", "number",
       ("The input is one line with two integers a and b. Print the absolute difference |a - b|.",),
       "a, b = map(int, input().split())\nprint(abs(a - b))", lambda r, k: _two_ints(r)),
    _s("stdio_even_odd", "number",
       ("The input is one integer n. Print 'even' if n is even and 'odd' otherwise.",
        "Read an integer n and print the word even or odd, whichever n is."),
       "n = int(input())\nprint('even' if n % 2 == 0 else 'odd')",
       lambda r, k: [_lines(r.randint(-30, 60)) for _ in range(6)]),
    _s("stdio_many_sums", "number",
       ("The first line holds the number of test cases t. Each of the next t lines holds two integers a and b. For each test case print a + b on its own line.",),
       "t = int(input())\nfor _ in range(t):\n    a, b = map(int, input().split())\n    print(a + b)",
       lambda r, k: [_lines(t, *(f"{r.randint(-9, 50)} {r.randint(-9, 50)}" for _ in range(t)))
                     for t in (1, 2, 3, 3, 4, 2)]),
    _s("stdio_reverse", "string",
       ("The input is one line of text. Print it reversed.",
        "Read a line of text and print the same characters in reverse order."),
       "print(input()[::-1])", lambda r, k: _one_line(r.sample(WORDS, 6))),
    _s("stdio_upper", "string",
       ("The input is one line of text. Print it in upper case.",),
       "print(input().upper())", lambda r, k: _one_line(r.sample(WORDS, 6))),
    _s("stdio_count_words", "string",
       ("The input is one line of text made of words separated by spaces. Print the number of words.",),
       "print(len(input().split()))", lambda r, k: _one_line(r.sample(SENTENCES, 6))),
    _s("stdio_count_vowels", "string",
       ("The input is one line of text. Print how many of its characters are vowels (a, e, i, o, u, in either case).",),
       "print(sum(1 for c in input().lower() if c in 'aeiou'))", lambda r, k: _one_line(r.sample(WORDS, 6))),
    _s("stdio_palindrome", "string",
       ("The input is one word. Print YES if it reads the same forwards and backwards, and NO otherwise.",),
       "s = input()\nprint('YES' if s == s[::-1] else 'NO')",
       lambda r, k: _one_line(r.sample(["racecar", "level", "noon", "madam", "python", "banana", "kiwi", "abba", "abc"], 6))),
    _s("stdio_sum_list", "list",
       ("The first line of input holds n. The second line holds n integers separated by spaces. Print their sum.",
        "Read a count n, then a line of n integers, and print the sum of those integers."),
       "n = int(input())\nnums = list(map(int, input().split()))\nprint(sum(nums))", lambda r, k: _count_then_nums(r)),
    _s("stdio_max_list", "list",
       ("The first line of input holds n. The second line holds n integers separated by spaces. Print the largest of them.",),
       "n = int(input())\nnums = list(map(int, input().split()))\nprint(max(nums))", lambda r, k: _count_then_nums(r)),
    _s("stdio_reverse_list", "list",
       ("The first line of input holds n. The second line holds n integers. Print them in reverse order on one line, separated by spaces.",),
       "n = int(input())\nnums = input().split()\nprint(' '.join(nums[::-1]))", lambda r, k: _count_then_nums(r, min_len=2)),
    _s("stdio_sort", "sort_search",
       ("The first line of input holds n. The second line holds n integers. Print them sorted in increasing order on one line, separated by spaces.",),
       "n = int(input())\nnums = sorted(map(int, input().split()))\nprint(' '.join(map(str, nums)))",
       lambda r, k: _count_then_nums(r, min_len=2)),
    _s("stdio_count_greater", "sort_search",
       ("The first line of input holds two integers n and x. The second line holds n integers. Print how many of them are greater than x.",),
       "n, x = map(int, input().split())\nnums = list(map(int, input().split()))\nprint(sum(1 for v in nums if v > x))",
       lambda r, k: [_lines(f"{len(v)} {r.randint(0, 20)}", " ".join(map(str, v))) for v in (_nums(r, 0, 30) for _ in range(6))]),
    _s("stdio_find_position", "sort_search",
       ("The first line of input holds two integers n and x. The second line holds n integers. Print the 1-based position of the first occurrence of x among them, or -1 if x does not occur.",),
       "n, x = map(int, input().split())\nnums = list(map(int, input().split()))\nprint(nums.index(x) + 1 if x in nums else -1)",
       lambda r, k: [_lines(f"{len(v)} {r.choice(v) if i % 2 == 0 else r.randint(0, 12)}", " ".join(map(str, v)))
                     for i, v in enumerate(_nums(r, 0, 9, 1, 6) for _ in range(6))]),
    _s("stdio_distinct", "dict_set",
       ("The first line of input holds n. The second line holds n integers. Print how many different values there are among them.",),
       "n = int(input())\nprint(len(set(input().split())))", lambda r, k: _count_then_nums(r, lo=0, hi=5, max_len=8)),
    _s("stdio_word_frequency", "dict_set",
       ("The first line of input is a sentence of words separated by spaces; the second line is one word w. Print how many times w occurs as a word in the sentence.",),
       "words = input().split()\nw = input().strip()\nprint(words.count(w))",
       lambda r, k: [_lines(s, r.choice(s.split() + ["cat", "dog"])) for s in
                     (" ".join(r.choice(["a", "cat", "dog", "the"]) for _ in range(r.randint(2, 7))) for _ in range(6))]),
    _s("stdio_time_minutes", "parse",
       ("The input is a time in the form HH:MM (24-hour clock). Print the number of minutes since midnight.",),
       "h, m = input().split(':')\nprint(int(h) * 60 + int(m))",
       lambda r, k: [_lines(f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}") for _ in range(6)]),
    _s("stdio_key_value", "parse",
       ("The first line of input holds settings like 'a=1;b=22' (key=value pairs separated by ';'). The second line holds one key. Print that key's value.",),
       "pairs = dict(p.split('=') for p in input().split(';'))\nprint(pairs[input().strip()])",
       lambda r, k: [_lines(t, r.choice([p.split("=")[0] for p in t.split(";")])) for t in
                     (";".join(f"{key}={r.randint(0, 99)}" for key in r.sample(["a", "b", "c", "x", "y"], r.randint(1, 4)))
                      for _ in range(6))]),
    _s("stdio_csv_sum", "parse",
       ("The input is one line of integers separated by commas, like 3,4,5. Print their sum.",),
       "print(sum(int(x) for x in input().split(',')))",
       lambda r, k: [_lines(",".join(str(v) for v in _nums(r, 0, 50))) for _ in range(6)]),
    _s("stdio_counter", "simulate",
       ("The first line of input holds n. Each of the next n lines is a command, 'inc' or 'dec'. A counter starts at 0; 'inc' adds 1 and 'dec' subtracts 1. Print the final value of the counter.",),
       "n = int(input())\nvalue = 0\nfor _ in range(n):\n    value += 1 if input().strip() == 'inc' else -1\nprint(value)",
       lambda r, k: [_lines(len(c), *c) for c in ([r.choice(["inc", "dec"]) for _ in range(r.randint(1, 7))] for _ in range(6))]),
    _s("stdio_robot", "simulate",
       ("The input is one line of moves, each letter U, D, L or R. A robot starts at x = 0, y = 0; U adds 1 to y, D subtracts 1 from y, R adds 1 to x, L subtracts 1 from x. Print its final x and y separated by a space.",),
       "x = y = 0\nfor m in input().strip():\n    if m == 'U':\n        y += 1\n    elif m == 'D':\n        y -= 1\n"
       "    elif m == 'R':\n        x += 1\n    elif m == 'L':\n        x -= 1\nprint(x, y)",
       lambda r, k: [_lines("".join(r.choice("UDLR") for _ in range(r.randint(1, 10)))) for _ in range(6)]),
)

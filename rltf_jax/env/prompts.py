"""Problem -> prompt text, and model reply -> program (docs/interfaces.md).

Two prompt styles:

- ``"chat"`` (default, for instruct models): one user message asking for a complete Python
  function / program in a ```python block, rendered with the tokenizer's chat template
  (``add_generation_prompt=True``). `chat_messages` builds the message list and takes prior
  ``(assistant reply, feedback)`` turns, so RLEF's multi-turn prompts reuse it.
- ``"plain"``: a bare completion prefix, the problem's ``starter_code`` (HumanEval: signature +
  docstring); problems without starter code get their statement as a module docstring.

`extract_code` turns a reply into the program sent to the sandbox and remembers exactly where the
model's code sits in the reply, so an error line maps back to reply characters (and from there to
tokens) for RLTF's fine-grained penalties.

Fenced-block choice (chat): the *first* fenced block that defines ``fn_name`` (when the problem has
one); otherwise the first block tagged python/py; otherwise the first fenced block. Small models put
the solution first and "example usage" blocks after it, so first beats last. An opening fence with
no closing fence (a reply cut at max_new_tokens) runs to the end of the reply. With no fence at
all, the reply is searched for a region starting at a line ``def``/``class``/``import``/``from``
that parses as Python. Otherwise there is no code and the result is ``None``.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import Sequence

from rltf_jax.data.problem import Problem

STYLES = ("chat", "plain")

# Where a plain completion of a function stops (as in the Codex / HumanEval evaluation).
PLAIN_STOP_SEQUENCES = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")

_FENCE_OPEN = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n", re.MULTILINE)
_FENCE_CLOSE = re.compile(r"^[ \t]*```", re.MULTILINE)
_CODE_START = re.compile(r"^(def |class |import |from |@)", re.MULTILINE)
_PYTHON_TAGS = ("python", "py", "python3", "py3")


def user_message(problem: Problem) -> str:
    """The first user turn: the task plus what to answer with."""
    if problem.starter_code and problem.prompt.strip() == problem.starter_code.strip():
        # HumanEval-style: the prompt *is* the signature + docstring.
        return ("Complete the following Python function:\n```python\n"
                f"{problem.starter_code.rstrip()}\n```\n"
                "Write the complete function, including its signature, in a ```python code block.")
    text = problem.prompt.strip()
    if problem.mode == "stdio":
        return (f"{text}\n\nWrite a complete Python program that reads from standard input and "
                "writes to standard output, in a ```python code block.")
    mentions_fn = bool(problem.fn_name) and problem.fn_name in text
    if problem.starter_code.strip() and not mentions_fn:
        return (f"{text}\n\nUse this starter code:\n```python\n{problem.starter_code.rstrip()}\n```\n"
                "Write the complete code in a ```python code block.")
    if problem.fn_name:
        return f"{text}\nWrite the Python function `{problem.fn_name}` in a ```python code block."
    return f"{text}\nWrite the Python code in a ```python code block."


def chat_messages(problem: Problem, turns: Sequence[tuple[str, str]] = (),
                  system_prompt: str | None = None) -> list[dict]:
    """Chat messages for `problem`, followed by prior ``(assistant reply, feedback)`` turns.

    ``system_prompt=None`` leaves the system turn to the chat template's default.
    """
    messages = []
    if system_prompt is not None:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": user_message(problem)})
    for reply, feedback in turns:
        messages.append({"role": "assistant", "content": reply})
        messages.append({"role": "user", "content": feedback})
    return messages


def render_chat(messages: list[dict], tokenizer) -> str:
    """Render messages with the tokenizer's chat template, ready for the assistant to answer."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("style='chat' needs a tokenizer with a chat template; use style='plain'")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def plain_prompt(problem: Problem) -> str:
    """The bare completion prefix: starter code, or the statement as a docstring."""
    if problem.starter_code:
        code = problem.starter_code
        return code if code.endswith("\n") else code + "\n"
    return f'"""\n{problem.prompt.strip()}\n"""\n'


def build_prompt(problem: Problem, tokenizer, style: str = "chat",
                 system_prompt: str | None = None,
                 turns: Sequence[tuple[str, str]] = ()) -> str:
    """Prompt text for `problem`: ``"chat"`` (chat template) or ``"plain"`` (bare completion).

    ``turns`` (chat only) are prior ``(assistant reply, feedback)`` pairs for multi-turn episodes.
    """
    if style == "chat":
        return render_chat(chat_messages(problem, turns, system_prompt), tokenizer)
    if style == "plain":
        if turns:
            raise ValueError("multi-turn prompts need style='chat'")
        return plain_prompt(problem)
    raise ValueError(f"unknown prompt style {style!r}; expected one of {STYLES}")


@dataclasses.dataclass(frozen=True)
class ExtractedCode:
    """The program for the sandbox and where the model's part of it lies in the reply.

    ``program == prefix + response[response_start:response_end]``.
    """

    program: str
    prefix: str
    response_start: int
    response_end: int

    def line_span_in_response(self, line: int) -> tuple[int, int] | None:
        """1-based ``line`` of `program` -> ``[start, end)`` chars of that line in the reply.

        The span excludes the line's newline. ``None`` when the line belongs to ``prefix``
        (not written by the model) or is past the end of the program.
        """
        if line < 1:
            return None
        prefix_lines = self.prefix.count("\n")
        if line <= prefix_lines:
            return None
        code = self.program[len(self.prefix):]
        index = line - prefix_lines - 1
        start = 0
        for _ in range(index):
            newline = code.find("\n", start)
            if newline < 0:
                return None
            start = newline + 1
        if start > len(code) or (start == len(code) and index > 0):
            return None
        end = code.find("\n", start)
        end = len(code) if end < 0 else end
        return self.response_start + start, self.response_start + end


def _fenced_blocks(response: str) -> list[tuple[str, int, int]]:
    """All fenced blocks as ``(tag, code_start, code_end)``; an unclosed last block runs to the end."""
    blocks = []
    pos = 0
    while True:
        opening = _FENCE_OPEN.search(response, pos)
        if opening is None:
            break
        start = opening.end()
        closing = _FENCE_CLOSE.search(response, start)
        end = closing.start() if closing else len(response)
        blocks.append((opening.group(1).lower(), start, end))
        if closing is None:
            break
        pos = closing.end()
    return blocks


def _defines(code: str, fn_name: str) -> bool:
    return re.search(rf"^\s*(async\s+)?def\s+{re.escape(fn_name)}\s*\(", code, re.MULTILINE) is not None


def _choose_block(blocks, response: str, fn_name: str | None):
    nonempty = [b for b in blocks if response[b[1]:b[2]].strip()]
    if fn_name:
        for block in nonempty:
            if _defines(response[block[1]:block[2]], fn_name):
                return block
    for block in nonempty:
        if block[0] in _PYTHON_TAGS:
            return block
    return nonempty[0] if nonempty else None


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _unfenced_code(response: str) -> tuple[int, int] | None:
    """The longest parseable region starting at a code-looking line (no fences in the reply)."""
    match = _CODE_START.search(response)
    if match is None:
        return None
    start = match.start()
    line_ends = [m.start() for m in re.finditer("\n", response[start:])] + [len(response) - start]
    for rel_end in reversed(line_ends):
        end = start + rel_end
        if response[start:end].strip() and _parses(response[start:end]):
            return start, end
    return None


def _imports_of(code: str) -> str:
    """Top-level import lines of `code`, each ending with a newline."""
    lines = [l for l in code.splitlines() if l.startswith(("import ", "from "))]
    return "".join(l + "\n" for l in lines)


def _trim_trailing_newlines(response: str, start: int, end: int) -> int:
    while end > start and response[end - 1] in "\n\r \t":
        end -= 1
    return end


def extract_code(problem: Problem, response: str, style: str = "chat") -> ExtractedCode | None:
    """The program to execute for a reply, or ``None`` when the reply holds no code.

    chat: the chosen fenced block (see the module docstring); for a problem with starter code
    (HumanEval), the starter's imports are prepended as ``prefix`` when the block defines the
    function, and the whole starter code when the block is only an indented function body.
    plain: ``starter_code`` (or nothing) as prefix + the reply up to the first stop sequence.
    """
    if style == "plain":
        return _extract_plain(problem, response)
    if style != "chat":
        raise ValueError(f"unknown prompt style {style!r}; expected one of {STYLES}")
    blocks = _fenced_blocks(response)
    if blocks:
        chosen = _choose_block(blocks, response, problem.fn_name)
        if chosen is None:
            return None
        start, end = chosen[1], chosen[2]
    else:
        span = _unfenced_code(response)
        if span is None:
            return None
        start, end = span
    end = _trim_trailing_newlines(response, start, end)
    if not response[start:end].strip():
        return None
    code = response[start:end]
    prefix = ""
    if problem.starter_code:
        first = next((l for l in code.splitlines() if l.strip()), "")
        if problem.fn_name and not _defines(code, problem.fn_name) and first[:1] in (" ", "\t"):
            prefix = plain_prompt(problem)
        else:
            prefix = _imports_of(problem.starter_code)
    return ExtractedCode(program=prefix + code, prefix=prefix, response_start=start,
                         response_end=end)


def _extract_plain(problem: Problem, response: str) -> ExtractedCode | None:
    end = len(response)
    if problem.starter_code:
        for stop in PLAIN_STOP_SEQUENCES:
            cut = response.find(stop)
            if cut >= 0:
                end = min(end, cut)
    end = _trim_trailing_newlines(response, 0, end)
    if not response[:end].strip():
        return None
    prefix = plain_prompt(problem) if problem.starter_code else ""
    return ExtractedCode(program=prefix + response[:end], prefix=prefix,
                         response_start=0, response_end=end)

"""Answer checking for math word problems: the last ``\\boxed{}`` of a response against a gold answer.

GSM8K answers are compared as numbers (thousands separators, ``$`` and a trailing ``.`` tolerated); MATH
answers as strings after Hendrycks-style normalisation.
"""

from __future__ import annotations

import re
from fractions import Fraction

BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
TEXT = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")
UNITS = re.compile(r"^(.*?\S)\s*\\(?:text|mbox|mathrm)\{\s*[A-Za-z][A-Za-z ]*\}(?:\^\d)?$")
SQRT = re.compile(r"\\sqrt(\w)")


def _closing_brace(text: str, start: int) -> int:
    """The index of the ``}`` closing the group that opens just before ``start``, or -1 if it never closes."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` or ``\\fbox{...}`` in ``text`` (braces balanced), or ``None``
    when there is none or the last one is never closed."""
    matches = list(BOXED.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    end = _closing_brace(text, start)
    return None if end < 0 else text[start:end]


def parse_number(text: str) -> Fraction | None:
    """A GSM8K-style numeric answer (``1,234``, ``$5``, ``5.0``, ``12 dollars``, ``30\\%``), or ``None``."""
    text = TEXT.sub(r"\1", text)
    for junk in ("\\$", "$", "\\%", "%", "\\,", "\\!", "~", " "):
        text = text.replace(junk, "")
    text = re.sub(r"[A-Za-z]+$", "", text).rstrip(".")
    if not NUMBER.fullmatch(text):
        return None
    return Fraction(text.replace(",", ""))


def gsm8k_correct(response: str, answer: str) -> float:
    """1 when the last boxed answer of ``response`` equals the number ``answer``, 0 when it differs, -1 when
    the response has no boxed answer that parses as a number."""
    boxed = last_boxed(response)
    value = None if boxed is None else parse_number(boxed)
    if value is None:
        return -1.0
    return float(value == parse_number(answer))


def _fix_fracs(text: str) -> str:
    """Brace the arguments of ``\\frac``: ``\\frac12`` and ``\\frac1{2}`` become ``\\frac{1}{2}``."""
    parts = text.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        args = []
        for _ in range(2):
            if part.startswith("{") and (end := _closing_brace(part, 1)) >= 0:
                args.append(part[: end + 1])
                part = part[end + 1 :]
            elif part and part[0] not in "{}\\":
                args.append("{" + part[0] + "}")
                part = part[1:]
        out += "\\frac" + "".join(args) + part
    return out


def normalize_math(text: str) -> str:
    """Hendrycks-style normal form of a MATH answer, so equal answers written differently compare equal."""
    text = text.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "")
    text = text.replace("\\$", "").replace("$", "").strip()
    if match := UNITS.match(text):
        text = match[1]
    text = TEXT.sub(r"\1", text)
    text = text.replace("\\%", "").replace("%", "")
    for space in ("\\,", "\\;", "\\:", "\\ "):
        text = text.replace(space, "")
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if text.startswith("."):
        text = "0" + text
    left, eq, right = text.partition("=")
    if eq and "=" not in right and len(left.strip()) <= 2:
        text = right
    text = SQRT.sub(r"\\sqrt{\1}", text)
    text = text.replace(" ", "").rstrip(".")
    text = _fix_fracs(text)
    if THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    if re.fullmatch(r"-?\d+\.\d+", text):
        text = text.rstrip("0").rstrip(".")
    if text == "0.5":
        text = "\\frac{1}{2}"
    if re.fullmatch(r"-?\d+/\d+", text):
        numerator, denominator = text.split("/")
        text = f"\\frac{{{numerator}}}{{{denominator}}}"
    return text


def math_correct(response: str, answer: str) -> float:
    """1 when the last boxed answer of ``response`` equals ``answer`` after normalisation, else 0."""
    boxed = last_boxed(response)
    return float(boxed is not None and normalize_math(boxed) == normalize_math(answer))

"""Moodle GIFT question banks to and from the content format's questions.

Supported both ways: single choice (``=right ~wrong``), multiple response (``~%50%a ~%-100%c``),
true/false (``{T}``), matching (``=a -> b``), numeric with tolerance (``{#10:0.1}``, ranges
``{#9..11}``), short answer (``{=a =b}``). GIFT has no ordering type, and essay,
description, missing-word-with-choices variants beyond the above and anything else are
reported by position and name, never dropped silently. Points are not part of GIFT.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from lms_plugin.catalog.content_format import (
    BankResult,
    QuestionSpec,
    UniqueKeys,
    percent_text,
    warn_dropped_credit,
)

_SPECIAL = "~=#{}:"
_OPTION_IDS = "abcdefghijklmnopqrstuvwxyz"


# ------------------------------------------------------------------------------ parsing

@dataclass
class _Answer:
    marker: str  # "=" or "~"
    weight: float | None
    text: str
    feedback: str


def _unescape(text: str) -> str:
    text = re.sub(r"\\([~=#{}:\\])", r"\1", text)
    return text.replace("\\n", "\n").strip()


def _plain(text: str, fmt: str) -> str:
    """GIFT text to plain text/Markdown: HTML is reduced to its words."""
    text = _unescape(text)
    if fmt == "html" or re.search(r"</?(p|br|b|i|strong|em|div|span)\b", text, re.I):
        text = re.sub(r"<br\s*/?>|</p>|</div>", "\n", text, flags=re.I)
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return re.sub(r"[ \t]+", " ", re.sub(r"\n\s*\n+", "\n\n", text)).strip()


_IMG_RE = re.compile(r"<img\b[^>]*>", re.I)
_SRC_RE = re.compile(r"""\bsrc\s*=\s*["']?([^"'\s>]*)""", re.I)


def _images(text: str) -> list[str]:
    """The ``src`` of each ``<img>`` in GIFT HTML text (GIFT files cannot carry the files)."""
    return [m.group(1) if (m := _SRC_RE.search(tag)) else "(no src)"
            for tag in _IMG_RE.findall(text)]


def _split_unescaped(text: str, chars: str) -> list[tuple[str, str]]:
    """Split on unescaped marker characters; each part keeps the marker that began it."""
    parts: list[tuple[str, str]] = []
    marker, current, i = "", [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch in chars and not (ch == "=" and text[i:i + 2] == "=>"):
            parts.append((marker, "".join(current)))
            marker, current = ch, []
        else:
            current.append(ch)
        i += 1
    parts.append((marker, "".join(current)))
    return parts


def _find_unescaped(text: str, char: str, start: int = 0) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == char:
            return i
        i += 1
    return -1


def _answers(body: str) -> list[_Answer]:
    result = []
    for marker, raw in _split_unescaped(body, "=~"):
        if not marker:
            if raw.strip():
                raise _Unsupported(f"answer block '{{{body[:30]}}}' is not a GIFT question "
                                   "type this tool supports (cloze and embedded answers "
                                   "are not)")
            continue
        weight = None
        match = re.match(r"\s*%(-?\d+(?:\.\d+)?)%", raw)
        if match:
            weight = float(match.group(1))
            raw = raw[match.end():]
        feedback_at = _find_unescaped(raw, "#")
        feedback = ""
        if feedback_at >= 0:
            feedback, raw = raw[feedback_at + 1:], raw[:feedback_at]
        result.append(_Answer(marker, weight, raw, feedback))
    return result


def _blocks(text: str) -> list[tuple[int, str]]:
    """Questions are separated by blank lines; ``//`` comment lines are dropped."""
    blocks: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("//"):
            continue
        if not line.strip():
            if current:
                blocks.append((start, "\n".join(current)))
                current = []
            continue
        if not current:
            start = number
        current.append(line)
    if current:
        blocks.append((start, "\n".join(current)))
    return blocks


def parse_gift(text: str) -> BankResult:
    """Convert a GIFT file; every question that cannot be converted is reported."""
    result = BankResult()
    keys = UniqueKeys()
    position = 0
    for line, block in _blocks(text.lstrip("\ufeff")):
        if block.lstrip().startswith("$CATEGORY:"):
            continue
        position += 1
        title = ""
        match = re.match(r"\s*::(.*?)::", block, re.S)
        rest = block[match.end():] if match else block
        if match:
            title = _unescape(match.group(1))
        fmt_match = re.match(r"\s*\[(html|moodle|plain|markdown)\]", rest)
        fmt = fmt_match.group(1) if fmt_match else "moodle"
        if fmt_match:
            rest = rest[fmt_match.end():]
        where = f"question {position} (line {line}" + (f", '{title}')" if title else ")")
        open_at = _find_unescaped(rest, "{")
        close_at = _find_unescaped(rest, "}", open_at + 1) if open_at >= 0 else -1
        if open_at < 0 or close_at < 0:
            result.unsupported.append(f"{where}: description (no answer block) is not "
                                      "supported")
            continue
        before, body, after = rest[:open_at], rest[open_at + 1:close_at], rest[close_at + 1:]
        prompt = _plain(before, fmt)
        shown = _images(_unescape(before + after))
        if _plain(after, fmt):
            prompt = f"{prompt} _____ {_plain(after, fmt)}".strip()
        explanation = ""
        general = body.find("####")
        if general >= 0:
            explanation, body = _plain(body[general + 4:], fmt), body[:general]
        body = body.strip()
        key = keys.make(title or prompt[:40], f"q{position}")
        warnings: list[str] = [f"image '{src}' not imported: GIFT files do not carry images "
                               "(export the bank as Moodle XML to keep them)" for src in shown]
        try:
            question = _convert(key, prompt, explanation, body, fmt, warnings.append)
        except _Unsupported as exc:
            keys.release(key)
            result.unsupported.append(f"{where}: {exc}")
            continue
        if not result.add(question, where, warnings):
            keys.release(key)
    return result


class _Unsupported(Exception):
    pass


def _convert(key: str, prompt: str, explanation: str, body: str, fmt: str,
             warn) -> QuestionSpec:
    """One question; ``warn(message)`` records what the conversion had to leave out."""
    def spec(qtype: str, data: dict) -> QuestionSpec:
        data["points"] = 1
        return QuestionSpec(key=key, type=qtype, prompt=prompt, explanation=explanation,
                            data=data)

    if not body:
        raise _Unsupported("essay is not supported")
    tf = re.fullmatch(r"(T|TRUE|F|FALSE)\s*(#.*)?", body, re.S)
    if tf:
        answer = tf.group(1).startswith("T")
        data: dict = {"answer": answer}
        feedbacks = [_plain(f, fmt) for f in re.split(r"(?<!\\)#", tf.group(2) or "")[1:]]
        # GIFT: the first feedback is shown for a wrong answer, the second for a right one.
        wrong, right = (feedbacks + ["", ""])[:2]
        fb = {str(answer).lower(): right, str(not answer).lower(): wrong}
        if any(fb.values()):
            data["feedback"] = {k: fb[k] for k in ("true", "false") if fb[k]}
        return spec("true_false", data)
    if body.startswith("#"):
        return spec("numeric", _numeric(body[1:], warn))
    answers = _answers(body)
    if not answers:
        raise _Unsupported(f"answer block '{{{body[:30]}}}' is not a GIFT question type this "
                           "tool supports (cloze and embedded answers are not)")
    if any("->" in a.text for a in answers):
        pairs, distractors = [], []
        for n, answer in enumerate(answers, start=1):
            left, _, right = answer.text.partition("->")
            if not _plain(left, fmt):
                distractors.append(_plain(right, fmt))
            else:
                pairs.append({"id": f"p{n}", "prompt": _plain(left, fmt),
                              "match": _plain(right, fmt)})
        data = {"pairs": pairs}
        if distractors:
            data["distractors"] = distractors
        return spec("matching", data)
    if all(a.marker == "=" for a in answers):
        accepted = []
        for answer in answers:
            if _credit(answer) >= 100:
                accepted.append(_plain(answer.text, fmt))
            else:
                warn(f"answer '{_plain(answer.text, fmt)}' ({percent_text(_credit(answer))}%) "
                     "dropped: short_text answers score 1 or 0 (no partial credit)")
        return spec("short_text", {"accepted": accepted})
    if len(answers) > len(_OPTION_IDS):
        raise _Unsupported("more than 26 options")
    options = []
    for letter, answer in zip(_OPTION_IDS, answers, strict=False):
        option = {"id": letter, "text": _plain(answer.text, fmt)}
        if not option["text"] and (shown := _images(_unescape(answer.text))):
            raise _Unsupported(f"option {letter} is an image only ('{shown[0]}'): "
                               "answer options must have text (GIFT files do not carry images)")
        if answer.feedback.strip():
            option["feedback"] = _plain(answer.feedback, fmt)
        options.append(option)
    credits = [_credit(a) for a in answers]
    if any(a.marker == "=" for a in answers):
        # Moodle's GIFT reader (question/format/gift/format.php, readquestion(), case
        # 'multichoice'): any '=' makes the question single-answer (single = 1), an '='
        # answer has fraction 1, and '~%n%' weights are partial credit for other options.
        full = [o["id"] for o, c in zip(options, credits, strict=True) if c >= 100]
        if len(full) != 1:
            raise _Unsupported(f"single-answer multiple choice with {len(full)} full-credit "
                               "answers (one '=' answer, or %weights% without '=' for "
                               "several right answers)")
        warn_dropped_credit(warn, options, credits, lambda c: c in (0, 100), "single_choice scores "
                      "1 for the '=' answer and 0 for any other")
        return spec("single_choice", {"options": options, "answer": full[0]})
    correct = [o["id"] for o, c in zip(options, credits, strict=True) if c > 0]
    if not correct:
        raise _Unsupported("multiple choice without a right answer (no '=' answer and no "
                           "positive %weight%)")
    right = [c for c in credits if c > 0]
    if max(right) - min(right) > 0.01:  # 33.333/33.334 are thirds, not a preference
        warn_dropped_credit(warn, options, credits, lambda c: c <= 0, "multiple_response gives "
                      "each right option an equal share")
    return spec("multiple_response", {"options": options, "answer": correct,
                                      "scoring": "partial"})


def _credit(answer: _Answer) -> float:
    """The percent an answer earns: an explicit ``%n%`` weight, else 100 for '=' and 0 for
    '~' (Moodle docs, "GIFT format", "Percentage answer weights"). Moodle's reader ignores a
    weight after '=' in a multiple choice (it keeps ``%50%`` as answer text); here it counts,
    so ``=%50%x`` is a half-credit answer, never silently a right one."""
    if answer.weight is not None:
        return answer.weight
    return 100.0 if answer.marker == "=" else 0.0



def _numeric(body: str, warn) -> dict:
    """``10:0.1``, ``9..11``, or ``=10:0.1#fb =%50%10:1`` (the full-credit answer is kept;
    partial-credit answers are dropped with a warning: numeric scores 1 or 0)."""
    body = body.strip()
    if body.startswith("="):
        answers = _answers(body)
        full = [a for a in answers if _credit(a) >= 100]
        if not full:
            raise _Unsupported("numeric question without a full-credit answer")
        lost = [f"'{_unescape(a.text.split('#')[0])}' ({percent_text(_credit(a))}%)"
                for a in answers if a is not full[0] and _credit(a) > 0]
        if lost:
            warn(f"answers {', '.join(lost)} dropped: numeric keeps the first full-credit "
                 "answer and scores 1 or 0")
        body = full[0].text.strip()
    feedback_at = _find_unescaped(body, "#")
    if feedback_at >= 0:
        body = body[:feedback_at]
    body = _unescape(body)
    try:
        if ".." in body:
            low, high = (float(x) for x in body.split(".."))
            answer, tolerance = (low + high) / 2, abs(high - low) / 2
        else:
            value, _, tol = body.partition(":")
            answer, tolerance = float(value), float(tol or 0)
    except ValueError:
        raise _Unsupported(f"numeric answer '{body}' is not a number") from None
    return {"answer": _tidy(answer), "tolerance": _tidy(tolerance),
            "tolerance_type": "absolute"}


def _tidy(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 10)


# ---------------------------------------------------------------------------- exporting

def _escape(text: str) -> str:
    text = str(text).replace("\\", "\\\\")
    for ch in _SPECIAL:
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", "\\n")



def export_gift(questions: list[QuestionSpec], category: str | None = None) -> BankResult:
    """GIFT text for the questions; ordering (no GIFT form) is reported as unsupported."""
    result = BankResult()
    lines = []
    if category:
        lines += [f"$CATEGORY: {category}", ""]
    for position, q in enumerate(questions, start=1):
        data = q.data
        if q.type == "ordering":
            result.unsupported.append(f"question {position} '{q.key}': ordering has no GIFT "
                                      "form; use Moodle XML")
            continue
        if q.type in ("single_choice", "multiple_response"):
            parts = []
            answer = data["answer"]
            correct = answer if isinstance(answer, list) else [answer]
            for option in data["options"]:
                if q.type == "single_choice":
                    mark = "=" if option["id"] in correct else "~"
                else:
                    share = 100 / len(correct)
                    mark = f"~%{percent_text(share if option['id'] in correct else -share)}%"
                fb = f"#{_escape(option['feedback'])}" if option.get("feedback") else ""
                parts.append(f"\t{mark}{_escape(option['text'])}{fb}")
            body = "\n" + "\n".join(parts) + "\n"
        elif q.type == "true_false":
            fb = data.get("feedback") or {}
            answer = bool(data["answer"])
            right, wrong = fb.get(str(answer).lower(), ""), fb.get(str(not answer).lower(), "")
            body = ("TRUE" if answer else "FALSE")
            if right or wrong:
                body += f"#{_escape(wrong)}#{_escape(right)}"
        elif q.type == "matching":
            parts = [f"\t={_escape(p['prompt'])} -> {_escape(p['match'])}"
                     for p in data["pairs"]]
            parts += [f"\t= -> {_escape(d)}" for d in data.get("distractors") or []]
            body = "\n" + "\n".join(parts) + "\n"
        elif q.type == "numeric":
            tolerance = data.get("tolerance") or 0
            if data.get("tolerance_type") == "percent":
                tolerance = abs(data["answer"]) * tolerance / 100
            body = f"#{_tidy(data['answer'])}:{_tidy(tolerance)}"
        elif q.type == "short_text":
            body = " ".join(f"={_escape(a)}" for a in data["accepted"])
        else:
            result.unsupported.append(f"question {position} '{q.key}': type {q.type} has no "
                                      "GIFT form")
            continue
        if q.explanation:
            body += f"####{_escape(q.explanation)}"
        units = f" ({data['units']})" if q.type == "numeric" and data.get("units") else ""
        for image in re.findall(r"!\[[^\]\n]*\]\(\s*<?(images/[^)\s>]+)", q.prompt):
            result.warnings.append(f"question {position} '{q.key}': image '{image}' not "
                                   "exported: GIFT files do not carry images; use Moodle XML")
        lines += [f"// id: {q.key}, type: {q.type}",
                  f"::{_escape(q.key)}::[markdown]{_escape(q.prompt + units)} {{{body}}}", ""]
        result.questions.append(q)
    result.text = "\n".join(lines)
    return result

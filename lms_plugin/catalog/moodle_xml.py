"""Moodle XML question banks to and from the content format's questions.

Mapped types: multichoice (single → single_choice, multiple → multiple_response), truefalse,
matching, numerical (first full-credit answer, its tolerance, the first unit), shortanswer,
ordering (Moodle 4.4+ core / qtype_ordering). Everything else (essay, description, cloze =
multianswer, calculated, ddwtos, gapselect…) is reported by position and name, never dropped
silently. Categories are skipped; images embedded in question texts become module images
(``convert_moodle_xml_file``). Parsing uses defusedxml, streaming: a bank file is untrusted
input (no entity expansion, no DTDs) and may be large.
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import re
import xml.etree.ElementTree as ET  # noqa: S405  (building only; parsing goes through defusedxml)
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from lms_plugin.catalog.content_format import (
    IMAGE_EXTENSIONS,
    MAX_IMAGE_BYTES,
    AssetSpec,
    BankResult,
    QuestionSpec,
    UniqueKeys,
    image_problem,
    percent_text,
    sniff_image,
    warn_dropped_credit,
)

_OPTION_IDS = "abcdefghijklmnopqrstuvwxyz"
TYPE_NAMES = {"essay": "essay", "description": "description", "multianswer": "cloze "
              "(multianswer)", "calculated": "calculated", "calculatedmulti": "calculated "
              "multichoice", "calculatedsimple": "simple calculated", "ddwtos": "drag and drop "
              "into text", "ddimageortext": "drag and drop onto image", "ddmarker":
              "drag and drop markers", "gapselect": "select missing words", "randomsamatch":
              "random short-answer matching", "random": "random"}


_IMG_RE = re.compile(r"<img\b[^>]*>", re.I)
_ATTR_RE = re.compile(r"""\b(src|alt)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_PLUGINFILE = "@@PLUGINFILE@@/"
_MD_PLUGINFILE_RE = re.compile(r"!\[([^\]\n]*)\]\(\s*(@@PLUGINFILE@@/[^)\s]+)\s*\)")
_ANY_TAG_RE = re.compile(r"<[a-z][^>]*>", re.I)
_BREAK_RE = re.compile(r"<br\s*/?>|</p>|</div>|</li>", re.I)
_TAG_RE = re.compile(r"<[^>]+>")
_BLANK_LINES_RE = re.compile(r"\n\s*\n+")
_SPACES_RE = re.compile(r"[ \t]+")


def _raw(element: ET.Element | None, path: str = "text") -> str:
    if element is None:
        return ""
    node = element.find(path) if path else element
    return (node.text or "") if node is not None else ""


def _text(element: ET.Element | None, path: str = "text", raw: str | None = None) -> str:
    """The plain text of a ``<x format=…><text>…</text></x>`` element (HTML reduced);
    ``raw`` replaces the element's own text (a prompt whose images were rewritten)."""
    if element is None:
        return ""
    if raw is None:
        raw = _raw(element, path)
    fmt = element.get("format", "html")
    if fmt in ("html", "moodle_auto_format") or _ANY_TAG_RE.search(raw):
        raw = html.unescape(_TAG_RE.sub("", _BREAK_RE.sub("\n", raw)))
    raw = raw.replace("\xa0", " ")
    return _SPACES_RE.sub(" ", _BLANK_LINES_RE.sub("\n\n", raw)).strip()


def _attrs(tag: str) -> dict[str, str]:
    return {m.group(1).lower(): html.unescape(next(g for g in m.groups()[1:] if g is not None))
            for m in _ATTR_RE.finditer(tag)}


def _image_names(raw: str) -> list[str]:
    """The file names (or URLs) of the ``<img>`` tags in an HTML text."""
    names = []
    for tag in _IMG_RE.findall(raw):
        src = _attrs(tag).get("src", "")
        names.append(unquote(src[len(_PLUGINFILE):]) if src.startswith(_PLUGINFILE) else src)
    return names


def _plain_or_image_only(node: ET.Element | None, what: str, warn,
                         path: str = "text") -> str:
    """Text of an answer-like element. Images are shown in question prompts only: an
    image-only answer cannot be converted (raises, naming it); an image beside text is
    dropped with a warning."""
    raw = _raw(node, path)
    text = _text(node, path)
    images = _image_names(raw) if "<img" in raw.lower() else []
    if images and not text:
        raise _Unsupported(f"{what} is an image only ('{images[0]}'): answer options, items "
                           "and matches must have text (images are shown in question "
                           "prompts only)")
    if images:
        warn(f"image '{images[0]}' in {what} not imported: images are shown in question "
             "prompts only (its text is kept)")
    return text


def _fraction(answer: ET.Element) -> float:
    try:
        return float(answer.get("fraction", "0"))
    except ValueError:
        return 0.0


def _number(value: str | None) -> int | float:
    number = float((value or "0").strip())
    return int(number) if number.is_integer() else number


def parse_moodle_xml(data: bytes | str, assets_dir: Path | None = None) -> BankResult:
    """Convert a Moodle XML export held in memory (see ``convert_moodle_xml_file``)."""
    return convert_moodle_xml_file(io.BytesIO(data.encode() if isinstance(data, str) else data),
                                   assets_dir=assets_dir)


def convert_moodle_xml_file(source: str | Path | BinaryIO, *, assets_dir: Path | None = None,
                            emit: Callable[[QuestionSpec], None] | None = None) -> BankResult:
    """Convert a Moodle XML export; unsupported or malformed questions are reported.

    Streaming: ``<question>`` elements are converted one at a time as the parser reaches
    their end tag and then cleared, so time is linear in the file and memory is bounded by
    the largest question, not the file (a 50 MB bank: bench/bench_moodle_xml.py). Parsing
    goes through defusedxml with DTDs and entities forbidden (a bank file is untrusted).

    Images: an ``<img src="@@PLUGINFILE@@/name">`` in a question text whose file is
    embedded as a base64 ``<file>`` is written to ``assets_dir/images/<question id>-<name>``
    (type sniffed from the bytes, at most ``MAX_IMAGE_BYTES``: ``image_problem``) and the
    prompt shows it as ``![alt](images/…)``, the way module content references images.
    Without ``assets_dir``, or when a file is missing, too large or not an image, the
    question keeps ``[image: alt]`` and gets a warning naming the file.

    ``emit``: each converted question is handed to it as soon as it is validated and not
    kept in ``result.questions`` (the CLI writes it out), so memory stays bounded however
    many questions the bank holds.
    """
    result = BankResult()
    keys = UniqueKeys()
    images = _ImageWriter(assets_dir)
    position, depth, root = 0, 0, None
    try:
        for event, element in SafeET.iterparse(source, events=("start", "end"),
                                               forbid_dtd=True):
            if event == "start":
                if root is None:
                    root = element
                    if element.tag != "quiz":
                        result.unsupported.append(f"expected a <quiz> root element, found "
                                                  f"<{element.tag}>")
                        return result
                depth += 1
                continue
            depth -= 1
            if depth != 1:
                continue
            if element.tag == "question" and element.get("type", "") != "category":
                position += 1
                _question(element, position, keys, images, result, emit)
            root.clear()  # the converted question (and its base64 files) is freed here
    except DefusedXmlException as exc:  # DTDs, entity declarations, external references
        images.discard()
        return BankResult(unsupported=[f"the file was refused: {exc}"])
    except (SafeET.ParseError, ValueError) as exc:
        images.discard()
        return BankResult(unsupported=[f"the file is not valid XML: {exc}"])
    return result


def convert_moodle_xml_to_yaml(source: str | Path | BinaryIO, write: Callable[[str], object],
                               assets_dir: Path | None = None) -> BankResult:
    """``lms-plugin content import-moodle-xml``: stream the ``questions:`` YAML through
    ``write`` one question at a time and the images into ``assets_dir/images/``."""
    from lms_plugin.catalog.exporter import BankYamlWriter

    with BankYamlWriter(write) as writer:
        return convert_moodle_xml_file(source, assets_dir=assets_dir, emit=writer.question)


def _question(element: ET.Element, position: int, keys: UniqueKeys, images: _ImageWriter,
              result: BankResult, emit) -> None:
    qtype = element.get("type", "")
    name = _text(element.find("name"))
    where = f"question {position}" + (f" '{name}'" if name else "") + f" (type {qtype})"
    warnings: list[str] = []
    warn = warnings.append

    prompt_node = element.find("questiontext")
    idnumber = (element.findtext("idnumber") or "").strip()
    key = keys.make(idnumber or name or _text(prompt_node)[:40], f"q{position}")
    try:
        data_ = _convert(qtype, element, warn)
    except _Unsupported as exc:
        keys.release(key)
        result.unsupported.append(f"{where}: {exc}")
        return
    written = len(images.written)
    prompt = _text(prompt_node, raw=images.rewrite(prompt_node, key, warn))
    explanation = _text(element.find("generalfeedback"))
    for image in _image_names(_raw(element.find("generalfeedback"))):
        warn(f"image '{image}' in the general feedback not imported: images are shown in "
             "question prompts only")
    try:
        points = _number(element.findtext("defaultgrade") or "1")
    except ValueError:
        points = 1
    data_["points"] = points if points > 0 else 1
    qtype_ours = data_.pop("_type")
    question = QuestionSpec(key=key, type=qtype_ours, prompt=prompt, explanation=explanation,
                            data=data_)
    if not result.add(question, where, warnings, emit):
        keys.release(key)
        images.forget(written)


class _ImageWriter:
    """Writes a question text's embedded images into ``assets_dir/images/``."""

    def __init__(self, assets_dir: Path | None) -> None:
        self.folder = assets_dir / "images" if assets_dir is not None else None
        self.written: list[Path] = []
        self.names: set[str] = set()

    def discard(self) -> None:
        """Remove what was written (the file turned out broken: nothing is converted)."""
        self.forget(0)

    def forget(self, start: int) -> None:
        """Remove the files written since ``written[start]`` (their question was dropped)."""
        for path in self.written[start:]:
            path.unlink(missing_ok=True)
            self.names.discard(path.name)
        del self.written[start:]

    def rewrite(self, node: ET.Element | None, key: str, warn) -> str:
        """The node's HTML with each ``<img>`` replaced by a Markdown image or a note."""
        raw = _raw(node)
        if node is None or ("<img" not in raw.lower() and _PLUGINFILE not in raw):
            return raw
        files = {}
        for file in node.findall("file"):
            path = (file.get("path") or "/").strip("/")
            files[f"{path}/{file.get('name', '')}".strip("/")] = file
        raw = _IMG_RE.sub(lambda m: self._one(_attrs(m.group(0)), files, key, warn), raw)
        # Markdown-format texts (this tool's own export) show ``![alt](@@PLUGINFILE@@/x)``
        return _MD_PLUGINFILE_RE.sub(lambda m: self._one(
            {"alt": m.group(1), "src": m.group(2)}, files, key, warn), raw)

    def _one(self, attrs: dict[str, str], files: dict[str, ET.Element], key: str,
             warn) -> str:
        src, alt = attrs.get("src", ""), re.sub(r"[\[\]\n]", " ", attrs.get("alt", "")).strip()
        placeholder = f"[image: {alt or 'not imported'}]"
        if not src.startswith(_PLUGINFILE):
            warn(f"image '{src[:80]}' is not embedded in the bank: not imported (pages cannot "
                 "load images from other sites)")
            return placeholder
        name = unquote(src[len(_PLUGINFILE):].split("?")[0]).strip("/")
        file = files.get(name)
        if file is None:
            warn(f"image '{name}' is shown but its file is not in the bank: not imported")
            return placeholder
        encoded = file.text or ""
        if len(encoded) * 3 // 4 > MAX_IMAGE_BYTES + 3:  # refuse before decoding
            warn(f"image '{name}' is {len(encoded) * 3 / 4 / 1048576:.1f} MB; images may be "
                 f"at most {MAX_IMAGE_BYTES // 1048576} MB: not imported")
            return placeholder
        try:
            data = base64.b64decode(encoded)
        except (binascii.Error, ValueError):
            warn(f"image '{name}' is not valid base64: not imported")
            return placeholder
        problem = image_problem(name, data)
        if problem is not None:
            warn(f"{problem}: not imported")
            return placeholder
        if self.folder is None:
            warn(f"image '{name}' not written: give an output file (-o) so images can be "
                 "written beside it")
            return placeholder
        stem = re.sub(r"[^a-z0-9]+", "-", Path(name).stem.lower()).strip("-")[:40] or "image"
        base = f"{key}-{stem}"[:100]
        filename, n = f"{base}{IMAGE_EXTENSIONS[sniff_image(data)]}", 2
        while filename in self.names:
            filename, n = f"{base}-{n}{IMAGE_EXTENSIONS[sniff_image(data)]}", n + 1
        self.names.add(filename)
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / filename
        target.write_bytes(data)
        self.written.append(target)
        return f"![{alt}](images/{filename})"


class _Unsupported(Exception):
    pass


def _options(element: ET.Element, warn) -> tuple[list[dict], list[float]]:
    options, fractions = [], []
    answers = element.findall("answer")
    if len(answers) > len(_OPTION_IDS):
        raise _Unsupported("more than 26 answers")
    for letter, answer in zip(_OPTION_IDS, answers, strict=False):
        option = {"id": letter, "text": _plain_or_image_only(answer, f"option {letter}", warn)}
        feedback = _plain_or_image_only(answer.find("feedback"), f"option {letter}'s feedback",
                                        warn) if answer.find("feedback") is not None else ""
        if feedback:
            option["feedback"] = feedback
        options.append(option)
        fractions.append(_fraction(answer))
    return options, fractions




def _convert(qtype: str, element: ET.Element, warn) -> dict:
    """One ``<question>``'s type data; ``warn(message)`` records what had to be left out.
    Answer ``fraction`` is Moodle's percent credit (Moodle docs, "Moodle XML format")."""
    if qtype == "multichoice":
        options, fractions = _options(element, warn)
        single = (element.findtext("single") or "true").strip().lower() in ("true", "1")
        if single:
            best = [o["id"] for o, f in zip(options, fractions, strict=True) if f >= 100]
            if len(best) != 1:
                raise _Unsupported(f"single-answer multichoice needs exactly one 100% answer, "
                                   f"found {len(best)}")
            warn_dropped_credit(warn, options, fractions, lambda f: f in (0, 100),
                            "single_choice scores 1 for the 100% answer and 0 for any other")
            return {"_type": "single_choice", "options": options, "answer": best[0]}
        correct = [o["id"] for o, f in zip(options, fractions, strict=True) if f > 0]
        right = [f for f in fractions if f > 0]
        if right and max(right) - min(right) > 0.01:  # 33.333/33.334: thirds
            warn_dropped_credit(warn, options, fractions, lambda f: f <= 0,
                            "multiple_response gives each right option an equal share")
        return {"_type": "multiple_response", "options": options, "answer": correct,
                "scoring": "partial"}
    if qtype == "truefalse":
        answer, feedback = None, {}
        for node in element.findall("answer"):
            value = _text(node).lower()
            if value not in ("true", "false"):
                raise _Unsupported(f"true/false answer '{value}' is neither true nor false")
            if _fraction(node) >= 100:
                answer = value == "true"
            text = _text(node.find("feedback"))
            if text:
                feedback[value] = text
        if answer is None:
            raise _Unsupported("true/false question without a 100% answer")
        data: dict = {"_type": "true_false", "answer": answer}
        if feedback:
            data["feedback"] = {k: feedback[k] for k in ("true", "false") if k in feedback}
        return data
    if qtype == "matching":
        pairs, distractors = [], []
        for n, sub in enumerate(element.findall("subquestion"), start=1):
            left = _plain_or_image_only(sub, f"matching prompt {n}", warn)
            right = _text(sub.find("answer"), "text")
            if left:
                pairs.append({"id": f"p{n}", "prompt": left, "match": right})
            elif right:
                distractors.append(right)
        data = {"_type": "matching", "pairs": pairs}
        if distractors:
            data["distractors"] = distractors
        return data
    if qtype == "numerical":
        answers = element.findall("answer")
        full = [a for a in answers if _fraction(a) >= 100]
        if not full:
            raise _Unsupported("numerical question without a 100% answer")
        lost = [f"'{_text(a)}' ({percent_text(_fraction(a))}%)" for a in answers
                if a is not full[0] and _fraction(a) > 0]
        if lost:
            warn(f"answers {', '.join(lost)} dropped: numeric keeps the first 100% answer and "
                 "scores 1 or 0")
        try:
            data = {"_type": "numeric", "answer": _number(_text(full[0])),
                    "tolerance": abs(_number(full[0].findtext("tolerance") or "0")),
                    "tolerance_type": "absolute"}
        except ValueError:
            raise _Unsupported(f"numerical answer '{_text(full[0])}' is not a number") from None
        unit = (element.findtext("units/unit/unit_name") or "").strip()
        if unit:
            data["units"] = unit
        return data
    if qtype == "shortanswer":
        answers = element.findall("answer")
        accepted = [_text(a) for a in answers if _fraction(a) >= 100]
        accepted = [a for a in accepted if a]
        lost = [f"'{_text(a)}' ({percent_text(_fraction(a))}%)" for a in answers
                if 0 < _fraction(a) < 100]
        if lost:
            warn(f"answers {', '.join(lost)} dropped: short_text answers score 1 or 0 (no "
                 "partial credit)")
        if any("*" in a for a in accepted):
            raise _Unsupported("short answers with * wildcards are not supported")
        return {"_type": "short_text", "accepted": accepted}
    if qtype == "ordering":
        answers = element.findall("answer")
        fractions = [_fraction(a) for a in answers]
        if len(set(fractions)) == len(fractions) and all(f > 0 for f in fractions):
            answers = [a for _, a in sorted(zip(fractions, answers, strict=True),
                                            key=lambda pair: pair[0])]
        items = [{"id": _OPTION_IDS[n], "text": _plain_or_image_only(a, f"item {n + 1}", warn)}
                 for n, a in enumerate(answers) if n < len(_OPTION_IDS)]
        grading = (element.findtext("gradingtype") or "").strip().upper()
        # Moodle lists items in the correct order; our file shows them in a fixed order
        # (the learner sees them shuffled), keyed by letters in that same correct order.
        return {"_type": "ordering", "items": items, "answer": [i["id"] for i in items],
                "scoring": "all_or_nothing" if grading == "ALL_OR_NOTHING" else "partial"}
    name = TYPE_NAMES.get(qtype, qtype or "(no type)")
    raise _Unsupported(f"{name} questions are not supported")


# ---------------------------------------------------------------------------- exporting

def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, tag, attrs)
    if text is not None:
        node.text = text
    return node


def _texted(parent: ET.Element, tag: str, text: str, fmt: str = "markdown",
            **attrs: str) -> ET.Element:
    node = _sub(parent, tag, format=fmt, **attrs)
    _sub(node, "text", text)
    return node


def _answer(parent: ET.Element, fraction: float, text: str, feedback: str = "",
            fmt: str = "plain_text") -> ET.Element:
    node = _texted(parent, "answer", text, fmt, fraction=f"{fraction:g}")
    _texted(node, "feedback", feedback)
    return node


_MD_IMAGE_RE = re.compile(r"!\[([^\]\n]*)\]\(\s*<?(images/[^)\s>]+)>?\s*\)")


def _export_prompt(node: ET.Element, prompt: str, images: dict[str, AssetSpec],
                   warn) -> None:
    """``<questiontext>`` for a prompt: its ``images/…`` become ``@@PLUGINFILE@@/…`` with the
    file embedded as base64 (Moodle rewrites that prefix in any text format), so an export
    keeps the images and importing it again restores them."""
    embedded: dict[str, AssetSpec] = {}

    def swap(match: re.Match) -> str:
        asset = images.get(match.group(2))
        if asset is None:
            warn(f"image '{match.group(2)}' is not stored with the module: not exported")
            return match.group(0)
        name = Path(asset.path).name
        embedded[name] = asset
        return f"![{match.group(1)}]({_PLUGINFILE}{name})"

    text = _MD_IMAGE_RE.sub(swap, prompt)
    texted = _texted(node, "questiontext", text)
    for name, asset in embedded.items():
        _sub(texted, "file", base64.b64encode(asset.data).decode(), name=name, path="/",
             encoding="base64")


def export_moodle_xml(questions: list[QuestionSpec], category: str | None = None,
                      images: dict[str, AssetSpec] | None = None) -> BankResult:
    """A Moodle XML ``<quiz>`` with one ``<question>`` per item (all seven types map);
    ``images`` (path → asset) are embedded where prompts show them."""
    result = BankResult()
    quiz = ET.Element("quiz")
    if category:
        cat = _sub(quiz, "question", type="category")
        _sub(_sub(cat, "category"), "text", f"$course$/top/{category}")
    for q in questions:
        data = q.data
        moodle_type = {"single_choice": "multichoice", "multiple_response": "multichoice",
                       "true_false": "truefalse", "matching": "matching",
                       "numeric": "numerical", "short_text": "shortanswer",
                       "ordering": "ordering"}.get(q.type)
        if moodle_type is None:
            result.unsupported.append(f"question '{q.key}': type {q.type} has no Moodle form")
            continue
        node = _sub(quiz, "question", type=moodle_type)
        _sub(_sub(node, "name"), "text", q.key)
        _export_prompt(node, q.prompt, images or {}, lambda text, key=q.key:
                       result.warnings.append(f"question '{key}': {text}"))
        _texted(node, "generalfeedback", q.explanation)
        _sub(node, "defaultgrade", f"{float(data.get('points', 1)):.7f}")
        _sub(node, "penalty", "0")
        _sub(node, "hidden", "0")
        _sub(node, "idnumber", q.key)
        if q.type in ("single_choice", "multiple_response"):
            correct = data["answer"] if isinstance(data["answer"], list) else [data["answer"]]
            _sub(node, "single", "true" if q.type == "single_choice" else "false")
            _sub(node, "shuffleanswers", "true")
            _sub(node, "answernumbering", "abc")
            for option in data["options"]:
                right = option["id"] in correct
                share = 100 / len(correct)
                fraction = (100 if right else 0) if q.type == "single_choice" \
                    else (share if right else -share)
                _answer(node, round(fraction, 5), option["text"], option.get("feedback", ""))
        elif q.type == "true_false":
            fb = data.get("feedback") or {}
            for value in ("true", "false"):
                right = (value == "true") == bool(data["answer"])
                _answer(node, 100 if right else 0, value, fb.get(value, ""), "moodle_auto_format")
        elif q.type == "matching":
            _sub(node, "shuffleanswers", "true")
            for pair in data["pairs"]:
                sub = _texted(node, "subquestion", pair["prompt"])
                _sub(_sub(sub, "answer"), "text", pair["match"])
            for extra in data.get("distractors") or []:
                sub = _texted(node, "subquestion", "")
                _sub(_sub(sub, "answer"), "text", extra)
        elif q.type == "numeric":
            tolerance = data.get("tolerance") or 0
            if data.get("tolerance_type") == "percent":
                tolerance = abs(data["answer"]) * tolerance / 100
            answer = _answer(node, 100, f"{data['answer']}")
            _sub(answer, "tolerance", f"{tolerance:g}")
            if data.get("units"):
                unit = _sub(_sub(node, "units"), "unit")
                _sub(unit, "multiplier", "1")
                _sub(unit, "unit_name", data["units"])
                _sub(node, "showunits", "3")  # units shown as text beside the box
                _sub(node, "unitsleft", "0")
        elif q.type == "short_text":
            _sub(node, "usecase", "0")
            for accepted in data["accepted"]:
                _answer(node, 100, accepted)
        elif q.type == "ordering":
            items = {item["id"]: item["text"] for item in data["items"]}
            _sub(node, "layouttype", "VERTICAL")
            _sub(node, "selecttype", "ALL")
            _sub(node, "selectcount", "0")
            _sub(node, "gradingtype", "ALL_OR_NOTHING"
                 if data.get("scoring", "all_or_nothing") == "all_or_nothing"
                 else "ABSOLUTE_POSITION")
            _sub(node, "showgrading", "SHOW")
            _sub(node, "numberingstyle", "none")
            for n, item_id in enumerate(data["answer"], start=1):
                _answer(node, n, items[item_id], fmt="moodle_auto_format")
        result.questions.append(q)
    ET.indent(quiz)
    result.text = '<?xml version="1.0" encoding="UTF-8"?>\n' + \
        ET.tostring(quiz, encoding="unicode") + "\n"
    return result

"""Moodle XML bank conversion: MB/s, questions/s and peak memory on a generated 50 MB bank.

    .venv/bin/python bench/bench_moodle_xml.py [--megabytes 50] [--image-every 10]
        [--keep FILE] [--rounds 1]

Generates a Moodle XML export (every supported question type plus essays that are reported,
HTML text, feedback, repeated question names, and every ``--image-every``-th question with a
base64 ``<file>`` PNG shown through ``@@PLUGINFILE@@``), then runs, each in its own child
process so that peak memory (``ru_maxrss``) is the run's own:

- **baseline**: ``defusedxml.ElementTree.iterparse`` over the same file, clearing each
  ``<question>`` after its end tag: the least any converter has to do (parse once);
- **convert**: ``lms-plugin content import-moodle-xml``'s work without Flask: read, convert,
  validate every question, decode and sniff the images, write the questions YAML and the
  image files into a temporary folder.

Time is measured after the imports (Flask and SQLAlchemy come with the catalog package);
peak memory is the child's ``ru_maxrss``, shown with what the interpreter and imports held
before the work started.

Figures are printed per round and as means; the README's section records them.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def png(width: int, height: int, seed: int) -> bytes:
    """A valid, incompressible-ish RGB PNG (random pixels), so base64 sizes are realistic."""
    rnd = random.Random(seed)
    raw = b"".join(b"\x00" + rnd.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def _question(n: int, image: str | None) -> str:
    kind = n % 7
    name = f"Question {n % 50}"  # Moodle banks repeat names: ids must still be unique
    shown = (f'<p>Look at the screen:</p><p><img src="@@PLUGINFILE@@/screen{n}.png" '
             f'alt="Order screen {n}" width="300"></p>') if image else ""
    files = (f'<file name="screen{n}.png" path="/" encoding="base64">{image}</file>'
             if image else "")
    text = (f"<![CDATA[<p dir=\"ltr\">Patient {n} on the ward: which action is right when the "
            f"barcode scanner shows <b>an alert</b> for dose {n}?</p>{shown}]]>")
    head = (f"<name><text>{name}</text></name>"
            f'<questiontext format="html"><text>{text}</text>{files}</questiontext>'
            f'<generalfeedback format="html"><text><![CDATA[<p>Check the order '
            f"first ({n}).</p>]]></text></generalfeedback><defaultgrade>1.0000000</defaultgrade>"
            f"<penalty>0.3333333</penalty><hidden>0</hidden><idnumber></idnumber>")
    if kind in (0, 1):
        single = "true" if kind == 0 else "false"
        fractions = ("100", "0", "0", "0") if kind == 0 else ("50", "50", "-100", "0")
        answers = "".join(
            f'<answer fraction="{f}" format="html"><text><![CDATA[<p>Option {c} for {n}</p>]]>'
            f'</text><feedback format="html"><text>Because {c}.</text></feedback></answer>'
            for c, f in zip("ABCD", fractions, strict=True))
        return (f'<question type="multichoice">{head}<single>{single}</single>'
                f"<shuffleanswers>true</shuffleanswers>{answers}</question>")
    if kind == 2:
        return (f'<question type="truefalse">{head}'
                f'<answer fraction="100" format="moodle_auto_format"><text>true</text>'
                f"<feedback><text>Yes.</text></feedback></answer>"
                f'<answer fraction="0" format="moodle_auto_format"><text>false</text>'
                f"<feedback><text>No.</text></feedback></answer></question>")
    if kind == 3:
        subs = "".join(f'<subquestion format="html"><text>Alert {i}</text><answer><text>'
                       f"Response {i}</text></answer></subquestion>" for i in range(3))
        return f'<question type="matching">{head}{subs}</question>'
    if kind == 4:
        return (f'<question type="numerical">{head}<answer fraction="100"><text>{n % 97}'
                f"</text><tolerance>0.1</tolerance></answer><units><unit><multiplier>1"
                f"</multiplier><unit_name>mL/hour</unit_name></unit></units></question>")
    if kind == 5:
        return (f'<question type="shortanswer">{head}<answer fraction="100"><text>downtime '
                f"form</text></answer></question>")
    return f'<question type="essay">{head}</question>'


def generate(path: Path, megabytes: float, image_every: int = 10, seed: int = 1) -> int:
    """Write a Moodle XML bank of about ``megabytes`` MB; returns the number of questions."""
    target = int(megabytes * 1024 * 1024)
    images = [base64.b64encode(png(64 + 8 * i, 48, seed + i)).decode() for i in range(8)]
    written, n = 0, 0
    with path.open("w", encoding="utf-8") as out:
        head = '<?xml version="1.0" encoding="UTF-8"?>\n<quiz>\n'
        out.write(head)
        written += len(head)
        while written < target:
            n += 1
            image = images[n % len(images)] if image_every and n % image_every == 0 else None
            chunk = f"<!-- question: {n} -->\n{_question(n, image)}\n"
            out.write(chunk)
            written += len(chunk)
        out.write("</quiz>\n")
    return n


def _child(mode: str, bank: str) -> dict:
    from defusedxml import ElementTree as SafeET

    if mode != "baseline":
        from lms_plugin.catalog import moodle_xml
    # memory of the interpreter and the imports, before any work: peak - this = the work's
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    if mode == "baseline":
        count, depth = 0, 0
        for event, element in SafeET.iterparse(bank, events=("start", "end")):
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth == 1 and element.tag == "question":
                count += 1
                element.clear()
        result = {"questions": count}
    else:
        with tempfile.TemporaryDirectory() as folder:
            with (Path(folder) / "questions.yaml").open("w", encoding="utf-8") as out:
                converted = moodle_xml.convert_moodle_xml_to_yaml(bank, out.write,
                                                                  assets_dir=Path(folder))
            images = len(list((Path(folder) / "images").glob("*")))
        result = {"questions": converted.count, "not_converted":
                  len(converted.unsupported), "warnings": len(converted.warnings),
                  "images": images}
    result["seconds"] = time.perf_counter() - started
    # ru_maxrss is KiB on Linux: the child's own peak resident memory
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["imports_mb"] = rss_before
    return result


def _run(mode: str, bank: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(bank)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=50)
    parser.add_argument("--image-every", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", help="write the generated bank here and keep it")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    with tempfile.TemporaryDirectory() as folder:
        bank = Path(args.keep) if args.keep else Path(folder) / "bank.xml"
        started = time.perf_counter()
        count = generate(bank, args.megabytes, args.image_every)
        size = bank.stat().st_size / 1024 / 1024
        print(f"generated {bank.name}: {size:.1f} MB, {count} questions, every "
              f"{args.image_every}th with an embedded PNG ({time.perf_counter() - started:.1f} s)")
        rows: dict[str, list[dict]] = {"baseline": [], "convert": []}
        for round_ in range(1, args.rounds + 1):
            for mode in rows:
                got = _run(mode, bank)
                rows[mode].append(got)
                extra = {k: v for k, v in got.items()
                         if k not in ("seconds", "peak_mb", "imports_mb")}
                print(f"round {round_} {mode:8s} {got['seconds']:6.2f} s  "
                      f"{size / got['seconds']:6.1f} MB/s  {count / got['seconds']:8.0f} "
                      f"questions/s  peak {got['peak_mb']:6.1f} MB (after imports "
                      f"{got['imports_mb']:.1f} MB)  {extra}")
        print("means:")
        for mode, runs in rows.items():
            seconds = sum(r["seconds"] for r in runs) / len(runs)
            peak = max(r["peak_mb"] for r in runs)
            work = max(r["peak_mb"] - r["imports_mb"] for r in runs)
            print(f"  {mode:8s} {seconds:6.2f} s  {size / seconds:6.1f} MB/s  "
                  f"{count / seconds:8.0f} questions/s  peak {peak:6.1f} MB "
                  f"(+{work:.1f} MB over the imports)")
        base = sum(r["seconds"] for r in rows["baseline"]) / len(rows["baseline"])
        conv = sum(r["seconds"] for r in rows["convert"]) / len(rows["convert"])
        print(f"convert takes {conv / base:.1f}x the bare parse")


if __name__ == "__main__":
    main()

"""XSS payloads through every authored field (titles, summary, objectives, audience, lesson
Markdown, prompts, options, feedback, explanations, system name/vendor/description, an
imported GIFT bank) never reach a page as markup that could run: every page that shows them
(authoring and learner preview) is parsed and checked for scripts, event handlers and
script URLs."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

from tests.catalog.authoring_helpers import SOURCES, lock_of, make_system, post

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "<svg onload=alert(3)>",
    "\"><script>alert(4)</script>",
    "'><img src=x onerror=alert(5)>",
    "<iframe src=javascript:alert(6)>",
    "<a href=\"javascript:alert(7)\">x</a>",
    "[click](javascript:alert(8))",
    "![x](javascript:alert(9))",
    "<body onload=alert(10)>",
    "<details open ontoggle=alert(11)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(12)>",
    "<object data=javascript:alert(13)>",
    "<embed src=javascript:alert(14)>",
    "<input autofocus onfocus=alert(15)>",
    "<style>@import 'http://evil/x.css'</style>",
    "{{ 7*7 }}<b>ssti</b>",
    "<scr<script>ipt>alert(17)</scr</script>ipt>",
    "<a href=\"&#106;avascript:alert(18)\">x</a>",
    "[x](  JaVaScRiPt:alert(19))",
    "<form action=javascript:alert(20)><button>x</button></form>",
    "<meta http-equiv=refresh content=\"0;url=javascript:alert(21)\">",
    "<base href=\"javascript:alert(22)//\">",
    "<video><source onerror=alert(23)></video>",
]
ALLOWED_SCRIPTS = ("/static/",)


class _Checker(HTMLParser):
    """Collects anything executable: scripts not served from /static, on* attributes,
    javascript:/data: URLs, and elements that load or run content."""

    DANGEROUS = {"iframe", "object", "embed", "svg", "math", "base", "meta", "style",
                 "video", "details", "body"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.body_tags = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "body":
            self.body_tags += 1
            if self.body_tags == 1 and not attrs:
                return
        if tag == "meta" and set(attributes) <= {"charset", "name", "content"} and \
                "http-equiv" not in attributes:
            return
        if tag == "script":
            if not (attributes.get("src") or "").startswith(ALLOWED_SCRIPTS):
                self.found.append(f"<script {attrs}>")
            return
        if tag in self.DANGEROUS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}={value}")
            if name in ("href", "src", "action", "formaction", "data") and value and \
                    value.strip().lower().startswith(("javascript:", "data:text", "vbscript:")):
                self.found.append(f"{tag} {name}={value}")

    def handle_data(self, data):
        if "49" in data and "{{" not in data and "7*7" not in data:
            pass  # nothing: the template must not evaluate authored text (checked below)


def assert_safe(html: str, where: str) -> None:
    checker = _Checker()
    checker.feed(html)
    assert not checker.found, f"{where}: {checker.found}"
    assert "ssti</b>" not in html and "<b>ssti" not in html, where
    assert ">49<" not in html, where


def test_payloads_in_every_field_never_execute(app, client, login_as):
    login_as("admin")
    joined = " ".join(PAYLOADS)
    # Lesson and prompt images must be the module's own files: the validator refuses an
    # outside one (a problem on the field), so those two fields get the rest.
    no_image = " ".join(p for p in PAYLOADS if not p.startswith("!["))
    response = post(client, "/author/systems/new", {"slug": "xss-sys", "name": joined[:200],
                                                    "vendor": PAYLOADS[1],
                                                    "description": joined})
    assert response.status_code == 302
    system_id = make_system(app, slug="ehr")
    response = post(client, "/author/modules/new", {"title": PAYLOADS[0], "slug": "xss",
                                                    "system_id": system_id})
    assert response.status_code == 302
    base = "/author/modules/xss"
    lock = lock_of(client, f"{base}/edit")
    response = post(client, f"{base}/edit", {
        "lock": lock, "title": joined[:300], "summary": joined,
        "objectives": "\n".join(PAYLOADS), "audience": "\n".join(PAYLOADS),
        "estimated_minutes": "10", "pass_mark": "50", "shuffle_questions": "",
        "shuffle_options": ""})
    assert response.status_code == 302, response.get_data(as_text=True)
    text = "# " + PAYLOADS[1] + "\n\n" + no_image.replace("> ", ">\n\n") + "\n"
    body = text + SOURCES  # issue 17: a lesson ends with its sources
    response = post(client, f"{base}/lessons/new",
                    {"lock": lock_of(client, f"{base}/lessons/new"), "body": body})
    assert response.status_code == 302, response.get_data(as_text=True)
    options = "\n".join(f"o{i} | {p} | {p}" for i, p in enumerate(PAYLOADS))
    for key, extra in (
            ("xss-choice", {"type": "single_choice", "options": options, "answer": "o0"}),
            ("xss-tf", {"type": "true_false", "answer": "true", "feedback_true": joined,
                        "feedback_false": PAYLOADS[2]}),
            ("xss-match", {"type": "matching", "pairs": "\n".join(
                f"p{i} | {p} | {p}x" for i, p in enumerate(PAYLOADS[:6])),
                "distractors": PAYLOADS[6]}),
            ("xss-order", {"type": "ordering", "items": "\n".join(
                f"i{i} | {p}" for i, p in enumerate(PAYLOADS[:4])),
                "answer": "i0, i1, i2, i3"}),
            ("xss-short", {"type": "short_text", "accepted": "\n".join(PAYLOADS)}),
            ("xss-num", {"type": "numeric", "answer": "1", "units": PAYLOADS[3]})):
        response = post(client, f"{base}/questions/new", {
            "lock": lock_of(client, f"{base}/questions/new"), "key": key,
            "prompt": no_image, "explanation": joined, **extra})
        assert response.status_code == 302, response.get_data(as_text=True)
    gift = "\n\n".join(f"::g{i}:: {p.replace('{', '').replace('}', '')} {{=right ~wrong}}"
                       for i, p in enumerate(PAYLOADS))
    response = post(client, f"{base}/bank", {"lock": lock_of(client, f"{base}/bank"),
                                             "bank": (io.BytesIO(gift.encode()), "x.gift")},
                    content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_safe(response.get_data(as_text=True), "bank report")
    from xml.sax.saxutils import escape

    xml = "<quiz>" + "".join(
        f'<question type="multichoice"><name><text>{escape(p)}</text></name>'
        f'<questiontext format="plain_text"><text>{escape(p.replace("![", "!"))}</text>'
        f'</questiontext><generalfeedback format="html"><text>{escape(p)}</text>'
        f'</generalfeedback><single>true</single>'
        f'<answer fraction="100" format="plain_text"><text>{escape(p)}</text>'
        f'<feedback format="plain_text"><text>{escape(p)}</text></feedback></answer>'
        f'<answer fraction="0" format="plain_text"><text>{escape(p)}-no</text></answer>'
        f"</question>" for p in PAYLOADS) + "</quiz>"
    response = post(client, f"{base}/bank", {"lock": lock_of(client, f"{base}/bank"),
                                             "bank": (io.BytesIO(xml.encode()), "x.xml")},
                    content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_safe(response.get_data(as_text=True), "Moodle XML bank report")
    # The converter drops markup (some payloads become empty and are skipped, with why).
    imported = re.search(r"Imported (\d+), skipped", response.get_data(as_text=True))
    assert int(imported.group(1)) >= 10
    pages = ["/author/modules", "/author/systems", f"/author/systems/{system_id}", base,
             f"{base}/edit", f"{base}/lessons/1", f"{base}/publish",
             "/modules/xss?preview=1", "/modules/xss/lessons/1?preview=1", "/home"]
    with app.app_context():
        from sqlalchemy import func, select

        from lms_plugin.catalog.models import Question
        from lms_plugin.extensions import db

        count = db.session.scalar(select(func.count()).select_from(Question))
    pages += [f"{base}/questions/{i}" for i in range(1, count + 1)]  # every question
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        assert_safe(response.get_data(as_text=True), page)
    # The lesson preview renders through the learners' sanitizer.
    response = post(client, f"{base}/lessons/1", {
        "lock": lock_of(client, f"{base}/lessons/1"), "body": body, "preview": "1"})
    assert_safe(response.get_data(as_text=True), "lesson preview")
    # Publish, start a preview attempt: the quiz page too; then the diff with version 2.
    response = post(client, f"{base}/publish", {"lock": lock_of(client, f"{base}/publish"),
                                                "change_notes": joined})
    assert response.status_code == 302, response.get_data(as_text=True)
    post(client, "/modules/xss/quiz/start", {"preview": "1"}, form_page="/modules/xss?preview=1")
    response = client.get("/modules/xss/quiz?preview=1")
    assert response.status_code == 200
    assert_safe(response.get_data(as_text=True), "quiz")
    post(client, f"{base}/draft", {"from_number": "1"}, form_page=base)
    response = post(client, f"{base}/lessons/1", {"lock": lock_of(client, f"{base}/lessons/1"),
                                                  "body": text + "\n" + no_image + "\n" + SOURCES})
    assert response.status_code == 302, response.get_data(as_text=True)
    for page in (f"{base}/diff?old=1&new=2", base):
        response = client.get(page)
        assert response.status_code == 200
        assert_safe(response.get_data(as_text=True), page)
    assert len(PAYLOADS) >= 20


def test_checker_catches_an_unescaped_payload():
    """The checker itself: it must flag what it is meant to find."""
    for payload in PAYLOADS[:7]:
        checker = _Checker()
        checker.feed(f"<html><body><p>{payload}</p></body></html>")
        assert checker.found, payload

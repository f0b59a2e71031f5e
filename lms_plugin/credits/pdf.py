"""Certificate and transcript PDFs, rendered in-process with fpdf2 and a shipped font.

The font is DejaVu Sans (fonts/, Bitstream Vera licence beside it, from Debian's
fonts-dejavu-core): a Unicode TrueType font, so names such as "Zoë Ñúñez" render (fpdf2's
core fonts are Latin-1 only; fpdf2 docs, "Unicode"). The QR code is drawn by segno as a PNG
(segno docs: ``QRCode.save(kind="png")``) and placed with ``FPDF.image``.
"""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import segno
from fpdf import FPDF
from fpdf.fonts import FontFace

if TYPE_CHECKING:
    from lms_plugin.credits.models import CreditActivity, CreditClaim
    from lms_plugin.credits.services import CycleTotal

FONTS = Path(__file__).parent / "fonts"
HEADINGS = FontFace(emphasis="BOLD", fill_color=(225, 232, 242))


def _document(orientation: str = "L") -> FPDF:
    pdf = FPDF(orientation=orientation, unit="mm", format="Letter")
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_creator("lms_plugin")
    return pdf


def credits_text(amount: Decimal) -> str:
    """1.00 -> "1", 1.25 -> "1.25", 1.50 -> "1.5"."""
    text = f"{amount:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def verify_qr(url: str) -> segno.QRCode:
    """The QR code of the verification URL (error correction M: survives a crease)."""
    return segno.make_qr(url, error="m")


def certificate_pdf(claim: CreditClaim, activity: CreditActivity, code: str,
                    verify_url: str) -> bytes:
    """The certificate of ``claim`` as PDF bytes (US Letter, landscape, one page).

    Every field DESIGN.md requires: learner name, activity title, format, completion date,
    credits claimed and type, provider (name, address), accreditation and designation
    statements, the UAN for ACPE, the verification code and a QR code of ``verify_url``.
    """
    from lms_plugin.credits.services import credit_label

    pdf = _document("L")
    pdf.set_title(f"CE certificate {code}")
    pdf.add_page()
    width = pdf.w - 2 * pdf.l_margin
    pdf.set_draw_color(30, 70, 120)
    pdf.set_line_width(1.2)
    pdf.rect(8, 8, pdf.w - 16, pdf.h - 16)
    pdf.set_line_width(0.3)
    pdf.rect(10.5, 10.5, pdf.w - 21, pdf.h - 21)
    pdf.set_y(22)
    pdf.set_font("DejaVu", "B", 22)
    pdf.set_text_color(30, 70, 120)
    pdf.cell(width, 11, "Certificate of Continuing Education", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font("DejaVu", "", 11)
    pdf.cell(width, 7, activity.provider_name, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.cell(width, 6, "This certifies that", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "B", 20)
    pdf.cell(width, 11, claim.learner_name, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 11)
    pdf.cell(width, 6, "completed the activity", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "B", 14)
    pdf.multi_cell(width, 7, activity.title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("DejaVu", "", 11)
    label = credit_label(claim.credit_type, activity)
    rows = [
        ("Format", activity.format[:1].upper() + activity.format[1:]),
        ("Completion date", _date(claim.completed_on)),
        ("Credits claimed", f"{credits_text(claim.credits)} {label}"),
    ]
    if claim.credit_type == "acpe" and activity.acpe_uan:
        rows.append(("ACPE UAN", activity.acpe_uan))
    rows.append(("Verification code", code))
    # The facts as a centred two-column block under the centred heading.
    block = 175
    left = (pdf.w - block) / 2
    for name, value in rows:
        pdf.set_x(left)
        pdf.set_font("DejaVu", "B", 10.5)
        pdf.cell(48, 6.5, f"{name}:", align="R")
        pdf.set_font("DejaVu", "", 10.5)
        pdf.set_x(left + 52)
        pdf.multi_cell(block - 52, 6.5, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    # Statements and provider on the left, the QR code on the right of the same band.
    size = 34
    qr_x = pdf.w - 18 - size
    text_left, text_width = 20, qr_x - 8 - 20
    band_top = pdf.get_y()
    pdf.set_font("DejaVu", "", 8.5)
    statements = [s for s in (activity.accreditation_statement,
                              activity.designation_statement) if s]
    for statement in statements:
        pdf.set_x(text_left)
        pdf.multi_cell(text_width, 4.4, statement, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1.5)
    if activity.provider_address:
        pdf.set_x(text_left)
        pdf.multi_cell(text_width, 4.4, "Provider: " + activity.provider_name + ", "
                       + ", ".join(activity.provider_address.splitlines()),
                       new_x="LMARGIN", new_y="NEXT")
    buffer = io.BytesIO()
    verify_qr(verify_url).save(buffer, kind="png", scale=8, border=2)
    buffer.seek(0)
    qr_y = max(band_top, pdf.h - 22 - size - 8)
    pdf.image(buffer, x=qr_x, y=qr_y, w=size, h=size)
    pdf.set_font("DejaVu", "", 6.5)
    caption_width = size + 36
    pdf.set_xy(qr_x + size - caption_width, qr_y + size + 0.5)
    pdf.multi_cell(caption_width, 3.2, f"Scan or visit to verify:\n{verify_url}", align="R")
    return bytes(pdf.output())


def _date(value: date) -> str:
    return f"{value:%B} {value.day}, {value.year}"


def transcript_pdf(name: str, claims: list[CreditClaim], totals: list[CycleTotal],
                   generated_on: date) -> bytes:
    """The learner's transcript (portrait Letter): one row per credit in force, then the
    totals per credit type in the cycle and the progress to its target."""
    from lms_plugin.credits.services import credit_label

    pdf = _document("P")
    pdf.set_title(f"CE transcript: {name}")
    pdf.add_page()
    width = pdf.w - 2 * pdf.l_margin
    pdf.set_font("DejaVu", "B", 16)
    pdf.cell(width, 9, "Continuing-education transcript", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 11)
    pdf.cell(width, 6, name, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    pdf.cell(width, 5, f"Generated {_date(generated_on)}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("DejaVu", "B", 11)
    pdf.cell(width, 7, "Totals per cycle", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    with pdf.table(col_widths=(62, 58, 20, 35), text_align=("LEFT", "LEFT", "RIGHT", "LEFT"),
                   first_row_as_headings=True, headings_style=HEADINGS) as table:
        table.row(("Credit type", "Cycle", "Total", "Target"))
        for t in totals:
            target = (f"{credits_text(t.target)} ({t.percent}%)" if t.target else "no target")
            table.row((t.label, f"{t.start.isoformat()} – {t.end.isoformat()}",
                       credits_text(t.total), target))
    pdf.ln(4)
    pdf.set_font("DejaVu", "B", 11)
    pdf.cell(width, 7, "Credits", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    with pdf.table(col_widths=(28, 77, 50, 20), text_align=("LEFT", "LEFT", "LEFT", "RIGHT"),
                   first_row_as_headings=True, headings_style=HEADINGS) as table:
        table.row(("Completed", "Activity", "Credit type", "Credits"))
        for claim in claims:
            table.row((claim.completed_on.isoformat(), claim.activity.title,
                       credit_label(claim.credit_type, claim.activity),
                       credits_text(claim.credits)))
        if not claims:
            table.row(("", "No credit claimed yet.", "", ""))
    return bytes(pdf.output())

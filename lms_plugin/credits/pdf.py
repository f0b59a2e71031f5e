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

if TYPE_CHECKING:
    from lms_plugin.credits.models import CreditActivity, CreditClaim
    from lms_plugin.credits.services import CycleTotal

FONTS = Path(__file__).parent / "fonts"


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
    pdf.set_y(20)
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
        ("Format", activity.format),
        ("Completion date", _date(claim.completed_on)),
        ("Credits claimed", f"{credits_text(claim.credits)} {label}"),
    ]
    if claim.credit_type == "acpe" and activity.acpe_uan:
        rows.append(("ACPE UAN", activity.acpe_uan))
    rows.append(("Verification code", code))
    text_width = width - 50
    for name, value in rows:
        pdf.set_x(pdf.l_margin + 10)
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(45, 6, f"{name}:")
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(text_width - 20, 6, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("DejaVu", "", 8.5)
    statements = [s for s in (activity.accreditation_statement,
                              activity.designation_statement) if s]
    for statement in statements:
        pdf.set_x(pdf.l_margin + 10)
        pdf.multi_cell(text_width - 20, 4.4, statement, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1.5)
    if activity.provider_address:
        pdf.set_x(pdf.l_margin + 10)
        pdf.multi_cell(text_width - 20, 4.4, f"{activity.provider_name}, "
                       + ", ".join(activity.provider_address.splitlines()),
                       new_x="LMARGIN", new_y="NEXT")
    # QR code and the URL it holds, bottom right.
    buffer = io.BytesIO()
    verify_qr(verify_url).save(buffer, kind="png", scale=8, border=2)
    buffer.seek(0)
    size = 38
    x, y = pdf.w - pdf.r_margin - size - 4, pdf.h - 22 - size - 10
    pdf.image(buffer, x=x, y=y, w=size, h=size)
    pdf.set_xy(x - 30, y + size + 1)
    pdf.set_font("DejaVu", "", 7)
    pdf.multi_cell(size + 34, 3.5, f"Verify: {verify_url}", align="C")
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
    with pdf.table(col_widths=(60, 55, 25, 35), text_align=("LEFT", "LEFT", "RIGHT", "LEFT"),
                   first_row_as_headings=True) as table:
        table.row(("Credit type", "Cycle", "Total", "Target"))
        for t in totals:
            target = (f"{credits_text(t.target)} ({t.percent}%)" if t.target else "no target")
            table.row((t.label, f"{_date(t.start)} – {_date(t.end)}", credits_text(t.total),
                       target))
    pdf.ln(4)
    pdf.set_font("DejaVu", "B", 11)
    pdf.cell(width, 7, "Credits", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    with pdf.table(col_widths=(28, 77, 45, 20), text_align=("LEFT", "LEFT", "LEFT", "RIGHT"),
                   first_row_as_headings=True) as table:
        table.row(("Completed", "Activity", "Credit type", "Credits"))
        for claim in claims:
            table.row((claim.completed_on.isoformat(), claim.activity.title,
                       credit_label(claim.credit_type, claim.activity),
                       credits_text(claim.credits)))
        if not claims:
            table.row(("", "No credit claimed yet.", "", ""))
    return bytes(pdf.output())

"""Build the shipped 《高耗低效企业认定告知书》 template (rules/<set>/notice_template.docx).

The bureau edits the .docx itself in Word/WPS; this module only makes the first version
(``python -m screening.notice_template OUT.docx``), so that the shipped file can be rebuilt
from source.  Placeholders are docxtpl (Jinja) tags, listed in docs/print.md."""
from __future__ import annotations

import sys
from pathlib import Path

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Cm, Pt

BODY_FONT, TITLE_FONT = "仿宋", "黑体"


def _font(run, name: str, size: float, bold: bool = False) -> None:
    run.font.name, run.font.size, run.font.bold = name, Pt(size), bold
    run._element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), name)


def _para(doc, text: str, *, size: float = 14, align=None, indent: bool = True, bold: bool = False,
          font: str = BODY_FONT, after: float = 0):
    p = doc.add_paragraph()
    if align is not None:
        p.alignment = align
    p.paragraph_format.first_line_indent = Pt(size * 2) if indent else None
    p.paragraph_format.space_after = Pt(after)
    p.paragraph_format.line_spacing = 1.25
    _font(p.add_run(text), font, size, bold)
    return p


def build(path: Path) -> Path:
    doc = Document()
    section = doc.sections[0]
    section.page_height, section.page_width = Cm(29.7), Cm(21.0)
    section.top_margin, section.bottom_margin = Cm(3.0), Cm(2.5)
    section.left_margin, section.right_margin = Cm(2.8), Cm(2.6)
    _para(doc, "高耗低效企业认定告知书", size=22, align=WD_ALIGN_PARAGRAPH.CENTER, indent=False, font=TITLE_FONT,
          after=6)
    _para(doc, "{{ notice_no }}", size=14, align=WD_ALIGN_PARAGRAPH.CENTER, indent=False, after=12)
    _para(doc, "{{ firm.name }}（统一社会信用代码：{{ firm.uscc }}）：", indent=False)
    _para(doc, "根据{{ basis }}，经大数据筛选和{{ firm.township }}属地核实，你单位列入{{ region }}{{ year }}年度"
               "高耗低效整治企业名单。认定情况如下：")
    _para(doc, "{%p for hit in hits %}", indent=False)
    _para(doc, "{{ loop.index }}. {{ hit.title }}。{{ hit.reason }}")
    _para(doc, "本企业数值：{{ hit.value }}；认定标准：{{ hit.threshold }}；行业平均：{{ hit.industry_avg }}；"
               "数据年度：{{ hit.years }}；依据：{{ hit.citation }}。", size=12)
    _para(doc, "{%p endfor %}", indent=False)
    _para(doc, "建议处置方式：{{ firm.disposition }}（仅为建议，具体以“一企一策”整治方案为准）。")
    _para(doc, "如对上述认定有异议，请自收到本告知书之日起{{ objection.days }}{{ objection.unit }}内，"
               "{{ objection.route }}。逾期未提出的，视为无异议。联系方式：{{ objection.contact }}。")
    _para(doc, "特此告知。", after=12)
    _para(doc, "{{ issuer }}", align=WD_ALIGN_PARAGRAPH.RIGHT, indent=False)
    _para(doc, "{{ date }}", align=WD_ALIGN_PARAGRAPH.RIGHT, indent=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(str(path))
    return path


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("notice_template.docx"))

"""Hostile workbooks, built in the tests with little memory: each is a valid zip that a reader would try to parse.

``workbook()`` writes the smallest .xlsx calamine reads (content types, workbook, one sheet, shared
strings); the bombs vary one part.  Large members are streamed in 1 MB pieces, so building a 200 MB
bomb never holds more than a megabyte.
"""
from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    '</Types>'
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
WORKBOOK = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_REL}/sharedStrings" Target="sharedStrings.xml"/></Relationships>'
)
MB = 1024 * 1024


def sheet_xml(cells: str, dimension: str = "A1:B2") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{_MAIN}">'
            f'<dimension ref="{dimension}"/><sheetData>{cells}</sheetData></worksheet>')


def header_cells(headers: Iterable[str]) -> str:
    """A first row of inline strings."""
    cols = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    cells = "".join(f'<c r="{cols[i]}1" t="inlineStr"><is><t>{h}</t></is></c>' for i, h in enumerate(headers))
    return f'<row r="1">{cells}</row>'


def _shared_strings(z: zipfile.ZipFile, inflated: int, more: Iterable[str] = ()) -> None:
    """One shared string of ``inflated`` bytes of 'A', streamed; then the strings ``more``."""
    with z.open("xl/sharedStrings.xml", "w", force_zip64=inflated > 1024 * MB) as f:
        f.write(f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{_MAIN}" count="1" uniqueCount="1"><si><t>'.encode())
        piece = b"A" * MB
        left = inflated
        while left > 0:
            f.write(piece[:left])
            left -= MB
        f.write(b"</t></si>" + "".join(f"<si><t>{m}</t></si>" for m in more).encode() + b"</sst>")


def workbook(target: Path | io.BytesIO | None = None, *, sheet: str | None = None, shared_bytes: int = 1,
             extra_members: int = 0, more_strings: Iterable[str] = ()) -> bytes | None:
    """A minimal .xlsx; returns its bytes when ``target`` is None."""
    out = io.BytesIO() if target is None else target
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES)
        z.writestr("_rels/.rels", ROOT_RELS)
        z.writestr("xl/workbook.xml", WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        z.writestr("xl/worksheets/sheet1.xml",
                   sheet or sheet_xml('<row r="1"><c r="A1" t="s"><v>0</v></c></row>', "A1"))
        _shared_strings(z, shared_bytes, more_strings)
        for i in range(extra_members):
            z.writestr(f"xl/media/pad{i}.bin", b"")
    return out.getvalue() if target is None else None


def shared_string_bomb(target: Path | io.BytesIO | None = None, inflated: int = 200 * MB) -> bytes | None:
    """The review's bomb: ~200 KB on disk, one shared string that inflates to ``inflated`` bytes."""
    return workbook(target, shared_bytes=inflated)


def sparse_sheet(target: Path | io.BytesIO | None = None, headers: Iterable[str] = ("A",),
                 far_row: int = 1048576) -> bytes | None:
    """A first row and one cell at column XFD of ``far_row``: calamine would allocate the whole
    rectangle between them (17 billion cells for row 1048576)."""
    cells = header_cells(headers) + f'<row r="{far_row}"><c r="XFD{far_row}"><v>1</v></c></row>'
    return workbook(target, sheet=sheet_xml(cells, "A1"))


def bogus_dimension(target: Path | io.BytesIO | None = None) -> bytes | None:
    """A tiny sheet that claims the whole grid as its range."""
    return workbook(target, sheet=sheet_xml('<row r="1"><c r="A1" t="s"><v>0</v></c></row>', "A1:XFD1048576"))


def lying_sizes(shared_bytes: int = 5 * MB, claimed: int = 1000) -> bytes:
    """A workbook whose sharedStrings.xml declares ``claimed`` bytes but inflates to ``shared_bytes``."""
    data = bytearray(workbook(shared_bytes=shared_bytes))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("xl/sharedStrings.xml")
    # the local header (uncompressed size at +22) and the central directory entry (at +24)
    struct.pack_into("<L", data, info.header_offset + 22, claimed)
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46:pos + 46 + name_len]) == b"xl/sharedStrings.xml":
            struct.pack_into("<L", data, pos + 24, claimed)
            break
        pos = data.find(b"PK\x01\x02", pos + 4)
    return bytes(data)


def shared_string_copies(cells: int, string_bytes: int = 100_000, value: str = "0", headers: Iterable[str] = ()) -> bytes:
    """A sheet of ``cells`` cells, each naming shared string ``value`` (0: one string of ``string_bytes``
    bytes; 1: a short one).  The reader's table holds one copy of the string per cell: 10,000 cells
    naming a 100 KB string (a 51 KB file) took 1 GB."""
    head = header_cells(headers) if headers else ""
    first = 2 if headers else 1
    rows = "".join(f'<row r="{i}"><c r="A{i}" t="s"><v>{value}</v></c></row>' for i in range(first, first + cells))
    return workbook(sheet=sheet_xml(head + rows, f"A1:C{first + cells - 1}"), shared_bytes=string_bytes,
                    more_strings=["短"])

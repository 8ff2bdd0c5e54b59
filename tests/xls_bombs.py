"""Old Excel (.xls) files built byte by byte: BIFF8 records inside an OLE2 (compound file) container.

``workbook()`` writes the smallest .xls calamine reads: one 512-byte FAT sector, one directory
sector (root entry and the ``Workbook`` stream) and the stream (workbook globals, then each sheet's
records).  The hostile files vary one piece: a DIMENSIONS record that declares a huge sheet, two cells
far apart, one long shared string referenced by many cells, a sector chain that loops.
No library writes these: xlwt is not a dependency, and a hostile file must be able to lie.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
FREE, END, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
SECTOR = 512


def record(typ: int, data: bytes = b"") -> bytes:
    return struct.pack("<HH", typ, len(data)) + data


def bof(dt: int) -> bytes:
    """BOF of BIFF8: 0x0005 the workbook globals, 0x0010 a worksheet."""
    return record(0x0809, struct.pack("<HHHHII", 0x0600, dt, 0x0DBB, 0x07CC, 0, 0x0206))


EOF = record(0x000A)


def dimensions(rows: int, columns: int, first_row: int = 0, first_column: int = 0) -> bytes:
    """DIMENSIONS: the sheet's used range as it declares it (rows rwMic..rwMac-1, columns colMic..colMac-1)."""
    return record(0x0200, struct.pack("<IIHHH", first_row, first_row + rows, first_column, first_column + columns, 0))


def number(row: int, column: int, value: float) -> bytes:
    return record(0x0203, struct.pack("<HHHd", row, column, 0, value))


def label(row: int, column: int, text: str) -> bytes:
    """LABEL with the text stored in UTF-16 (the high-byte flag set)."""
    raw = text.encode("utf-16-le")
    return record(0x0204, struct.pack("<HHHHB", row, column, 0, len(text), 1) + raw)


def label_sst(row: int, column: int, index: int) -> bytes:
    return record(0x00FD, struct.pack("<HHHI", row, column, 0, index))


def sst(strings: Iterable[str]) -> bytes:
    """SST with its CONTINUE records: every string in UTF-16, split at a character where a record fills up."""
    strings = list(strings)
    body = bytearray(struct.pack("<II", len(strings), len(strings)))
    records, room = [], 8224
    for s in strings:
        head = struct.pack("<HB", len(s), 1)
        if len(body) + len(head) + 2 > room:          # a string's header never straddles two records
            records.append(bytes(body))
            body = bytearray()
        body += head
        chars = s.encode("utf-16-le")
        while chars:
            take = min(len(chars), (room - len(body)) // 2 * 2)
            body += chars[:take]
            chars = chars[take:]
            if chars:
                records.append(bytes(body))
                body = bytearray(b"\x01")          # a CONTINUE that goes on with a string: its flags first
    records.append(bytes(body))
    return record(0x00FC, records[0]) + b"".join(record(0x003C, r) for r in records[1:])


def boundsheet(position: int, name: str) -> bytes:
    return record(0x0085, struct.pack("<IBBBB", position, 0, 0, len(name), 1) + name.encode("utf-16-le"))


def stream(sheets: dict[str, bytes], strings: Iterable[str] = (), globals_extra: bytes = b"",
           aliases: Iterable[str] = ()) -> bytes:
    """The Workbook stream: globals (BOF, CODEPAGE, BOUNDSHEETs, SST, EOF), then each sheet's records
    between its own BOF and EOF.  ``sheets`` maps a sheet's name to its records; each of ``aliases``
    is one more sheet whose BOUNDSHEET points at the first sheet's records."""
    strings, aliases = list(strings), list(aliases)
    head = bof(0x0005) + record(0x0042, struct.pack("<H", 1200)) + globals_extra
    shared = sst(strings) if strings else b""
    bounds_size = sum(len(boundsheet(0, name)) for name in [*sheets, *aliases])
    at = len(head) + bounds_size + len(shared) + len(EOF)
    bounds, bodies, first = b"", b"", at
    for name, cells in sheets.items():
        body = bof(0x0010) + cells + EOF
        bounds += boundsheet(at, name)
        bodies += body
        at += len(body)
    bounds += b"".join(boundsheet(first, name) for name in aliases)
    return head + bounds + shared + EOF + bodies


def container(data: bytes, *, chain: list[int] | None = None, directory_chain_loops: bool = False,
              size: int | None = None, mini_chain: list[int] | None = None) -> bytes:
    """An OLE2 compound file (version 3, 512-byte sectors) holding ``data`` as its ``Workbook`` stream.

    A stream of 4,096 bytes or more lives in sectors chained by the FAT; a smaller one in the mini
    stream (the root entry's stream), in 64-byte pieces chained by the mini FAT.  ``chain`` replaces
    the FAT entries of the stream (or of the mini stream), ``mini_chain`` the mini FAT's entries (a
    loop, a sector past the file); ``directory_chain_loops`` makes the directory sector point at
    itself; ``size`` is the length the directory declares."""
    length = size if size is not None else len(data)
    mini = len(data) < 4096
    if mini:
        pieces = -(-len(data) // 64)
        minifat = mini_chain if mini_chain is not None else [i + 1 for i in range(pieces - 1)] + [END]
        if len(minifat) > 128:
            raise ValueError("the mini FAT is one sector here")
        minifat_sector = struct.pack(f"<{len(minifat)}I", *minifat) + struct.pack("<I", FREE) * (128 - len(minifat))
        data = minifat_sector + data
    data += b"\0" * (-len(data) % SECTOR)
    stream_sectors = len(data) // SECTOR
    fat_sectors = 1
    while fat_sectors * 128 < fat_sectors + 1 + stream_sectors:
        fat_sectors += 1
    if fat_sectors > 109:
        raise ValueError("stream too large for a header-only DIFAT")
    directory = fat_sectors
    first = fat_sectors + 1 + (1 if mini else 0)              # after the mini FAT's sector
    fat = [FATSECT] * fat_sectors + [directory if directory_chain_loops else END] + ([END] if mini else [])
    body_sectors = stream_sectors - (1 if mini else 0)
    fat += chain if chain is not None else [first + i + 1 for i in range(body_sectors - 1)] + [END]
    fat += [FREE] * (fat_sectors * 128 - len(fat))
    header = bytearray(SECTOR)
    header[0:8] = MAGIC
    struct.pack_into("<HHHHH", header, 24, 0x003E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIIIII", header, 40, 0, fat_sectors, directory, 0, 4096,
                     directory + 1 if mini else END, 1 if mini else 0, END, 0)
    difat = list(range(fat_sectors)) + [FREE] * (109 - fat_sectors)
    struct.pack_into("<109I", header, 76, *difat)
    if mini:
        entries = _entry("Root Entry", 5, first, body_sectors * SECTOR, child=1) + _entry("Workbook", 2, 0, length)
    else:
        entries = _entry("Root Entry", 5, END, 0, child=1) + _entry("Workbook", 2, first, length)
    entries += (_entry("", 0, 0, 0) * 2)
    return bytes(header) + struct.pack(f"<{len(fat)}I", *fat) + entries + data


def _entry(name: str, kind: int, start: int, size: int, child: int = NOSTREAM) -> bytes:
    """A directory entry: its name, type (5 the root, 2 a stream), first sector and size."""
    raw = (name + "\0").encode("utf-16-le") if name else b""
    entry = bytearray(128)
    entry[0:len(raw)] = raw
    struct.pack_into("<HBBIII", entry, 64, len(raw), kind, 1, NOSTREAM, NOSTREAM, child if kind == 5 else NOSTREAM)
    struct.pack_into("<IQ", entry, 116, start, size)
    return bytes(entry)


def workbook(path: Path | None = None, sheets: dict[str, bytes] | None = None, strings: Iterable[str] = (),
             pad: bool = True, **container_options) -> bytes:
    """A .xls file; written to ``path`` when given.  The stream is padded to 4,096 bytes (as Excel
    does) unless ``pad`` is false: a smaller one lives in the mini stream."""
    data = stream(sheets if sheets is not None else {"Sheet1": number(0, 0, 1.0)}, strings)
    if pad:
        data += b"\0" * max(0, 4096 - len(data))
    data = container(data, **container_options)
    if path is not None:
        path.write_bytes(data)
    return data


def table(headers: list[str], rows: list[list]) -> bytes:
    """A sheet's records for a header row and data rows (text as LABEL, numbers as NUMBER)."""
    cells = [dimensions(len(rows) + 1, len(headers))]
    for r, values in enumerate([headers, *rows]):
        for c, v in enumerate(values):
            cells.append(number(r, c, float(v)) if isinstance(v, (int, float)) else label(r, c, str(v)))
    return b"".join(cells)


def shared_sheet(entries: int, filler: int, step: int = 0) -> bytes:
    """A .xls whose ``entries`` BOUNDSHEETs point into one sheet of ``filler`` empty 4-byte records
    and no EOF: all at its start (``step`` 0), or each ``step`` records after the one before."""
    head = bof(0x0005) + record(0x0042, struct.pack("<H", 1200))
    names = [f"S{i}" for i in range(entries)]
    first = len(head) + sum(len(boundsheet(0, n)) for n in names) + len(EOF)
    bounds = b"".join(boundsheet(first + 4 * step * i, n) for i, n in enumerate(names))
    data = head + bounds + EOF + bof(0x0010) + record(0x0001) * filler
    return container(data + b"\0" * max(0, 4096 - len(data)))


def repeated_difat(sectors: int, fat_count: int = 1) -> bytes:
    """A .xls container whose DIFAT chain of ``sectors`` sectors lists FAT sector 0 127 times in each
    (and the header lists it once, then as often as ``fat_count`` asks, up to 109)."""
    header = bytearray(SECTOR)
    header[0:8] = MAGIC
    struct.pack_into("<HHHHH", header, 24, 0x003E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIIIII", header, 40, 0, fat_count, 0, 0, 4096, END, 0, 1, sectors)
    listed = min(fat_count, 109)
    struct.pack_into("<109I", header, 76, *([0] * listed + [FREE] * (109 - listed)))
    fat = struct.pack("<128I", *([FATSECT] + [END] * 127))
    chain = [struct.pack("<128I", *([0] * 127 + [i + 1 if i < sectors else END])) for i in range(1, sectors + 1)]
    return bytes(header) + fat + b"".join(chain)

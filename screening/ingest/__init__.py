"""Reading the departments' files (see docs/ingest.md).

- :mod:`.discovery` finds each table's file, tells what its bytes are and refuses what is unsafe
  to read before it is read (``open_table``, with :mod:`screening.filesafety`);
- :mod:`.workbook` reads workbooks: visible sheets, merged ranges, Excel error cells;
- :mod:`.header` finds the header row and maps it through the synonym table (``synonyms.yaml``);
- :mod:`.cells` normalises cell values per column;
- :mod:`.table` puts it together: :func:`read_table`, :func:`read_dir`, :class:`RawTable`.

Checking values and types is :mod:`screening.validate`.
"""
from .discovery import EXTENSIONS, MAX_PARQUET_ROWS, OpenedTable, file_names, find_table_file, open_table, sniff_kind
from .table import ROW, RawTable, _decode_csv, read_dir, read_table

__all__ = ["EXTENSIONS", "MAX_PARQUET_ROWS", "OpenedTable", "ROW", "RawTable", "_decode_csv", "file_names", "find_table_file", "open_table", "read_dir",
           "read_table", "sniff_kind"]

"""What a spreadsheet program (Excel, WPS) can open: the one limit the writers share.

Kept apart from screening.excel so that a command that only decides whether a file would fit
(``screening evaluate --no-excel``: is evaluation_items.csv written?) need not load the Excel
writer (xlsxwriter) to know it.  Read at call time (``spreadsheet.MAX_SHEET_ROWS``), so that a
test may lower it for every writer at once."""

#: data rows a sheet may hold: Excel opens at most 1,048,576 rows, one of them the header
MAX_SHEET_ROWS = 1_048_575

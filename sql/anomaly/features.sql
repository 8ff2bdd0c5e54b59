-- anomaly_features: grain (firm_id), the figures the advisory data check (数据核查提示，
-- screening/anomaly.py) compares, for the list year's two data years side by side
-- (prev = Y-2, last = Y-1): firm_panel's tax, land and energy, plus what only firm_year
-- (electricity, energy of Y-2) and in_stats (revenue, value added) hold.  Read-only: it never
-- feeds a rule.  Only firms with a figure in either year; division NULL = industry unknown.
SELECT
    p.firm_id, p.division, p.tax_prev, p.tax_last, p.land_prev, p.land_last, p.energy_last,
    yp.energy_tce AS energy_prev,
    yp.electricity AS electricity_prev, yl.electricity AS electricity_last,
    sp.revenue AS revenue_prev, sl.revenue AS revenue_last,
    sp.value_added AS value_added_prev, sl.value_added AS value_added_last
FROM firm_panel p
LEFT JOIN firm_year yp ON yp.firm_id = p.firm_id AND yp.year = $year_prev
LEFT JOIN firm_year yl ON yl.firm_id = p.firm_id AND yl.year = $year_last
LEFT JOIN in_stats sp ON sp.firm_id = p.firm_id AND sp.year = $year_prev
LEFT JOIN in_stats sl ON sl.firm_id = p.firm_id AND sl.year = $year_last
WHERE yp.firm_id IS NOT NULL OR yl.firm_id IS NOT NULL

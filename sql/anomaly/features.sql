-- anomaly_features: grain (firm_id), the figures the advisory data check (数据核查提示，
-- screening/anomaly.py) compares, for the list year's two data years side by side
-- (prev = Y-2, last = Y-1): firm_panel's tax, land and energy, plus what only firm_years holds
-- (electricity, energy of Y-2, revenue, value added).  It reads neither in_* input, so the
-- inputs are released before it runs.  Read-only: it never feeds a rule.  Only firms with a
-- figure in either year; division NULL = industry unknown.
SELECT
    p.firm_id, p.division, p.tax_prev, p.tax_last, p.land_prev, p.land_last, p.energy_last,
    y.energy_prev,
    y.electricity_prev, y.electricity_last,
    y.revenue_prev, y.revenue_last,
    y.value_added_prev, y.value_added_last
FROM firm_panel p
JOIN firm_years y USING (firm_id)
WHERE y.held_prev OR y.held_last

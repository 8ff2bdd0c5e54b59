-- anomaly_features: grain (firm_id), the figures the advisory data check (数据核查提示，
-- screening/anomaly.py) compares, for the list year's two data years side by side
-- (prev = Y-2, last = Y-1): firm_panel's tax, land and energy, plus what only firm_years holds
-- (electricity, energy of Y-2, revenue, value added), all from firm_years.  It reads neither in_* input, so the
-- inputs are released before it runs.  Read-only: it never feeds a rule.  Only firms with a
-- figure in either year; division NULL = industry unknown.
SELECT
    firm_id, division, tax_prev, tax_last, land_prev, land_last, energy_last, energy_prev,
    electricity_prev, electricity_last, revenue_prev, revenue_last, value_added_prev, value_added_last
FROM firm_years
WHERE held_prev OR held_last

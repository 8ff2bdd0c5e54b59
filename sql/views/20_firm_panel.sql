-- firm_panel: grain (firm_id), every registered enterprise, with the list year's two data
-- years side by side (prev = Y-2, last = Y-1) and the scope shared by rules 1-3.
-- scope_code: 'in_scope' or the reason code for why rules 1-3 cannot judge the firm.
-- A view of firm_years (10_firm_year.sql), which computes all of it once.
CREATE OR REPLACE VIEW firm_panel AS
SELECT
    firm_id, uscc, name, township, industry_code, division, industry_name, established,
    scale_prev, scale_last,
    tax_prev, tax_last,
    land_prev, land_last,
    tax_per_mu_prev, tax_per_mu_last,
    grade_prev, grade_last,
    computed_grade_prev, computed_grade_last,
    energy_last, all_leased_last, parcels_last,
    scope_code
FROM firm_years;

-- The 整治企业清单: one row per enterprise with at least one hit.
-- $rule_order lists each rule id to its position in the rule set, so reasons read in rule order.
WITH hits AS (
    SELECT r.firm_id, r.rule_id, r.reason, list_position($rule_order, r.rule_id) AS ord
    FROM results_explained r
    WHERE r.status = 'hit'
),
per_firm AS (
    SELECT firm_id,
           list_sort(list(rule_id)) AS hit_rules,
           string_agg(rule_id, ';' ORDER BY rule_id) AS rule_ids,
           string_agg(reason, '' ORDER BY ord) AS reasons
    FROM hits
    GROUP BY firm_id
)
SELECT
    p.uscc, p.name, p.township, p.industry_code, p.industry_name,
    p.scale_last AS scale,
    h.rule_ids, h.reasons, len(h.hit_rules) AS hit_count,
    p.tax_per_mu_last AS tax_per_mu,
    p.land_last AS land_mu,
    p.energy_last AS energy_tce,
    p.tax_per_mu_prev,
    p.land_prev,
    p.all_leased_last,
    h.hit_rules
FROM per_firm h
JOIN firm_panel p USING (firm_id)
ORDER BY p.township, p.uscc

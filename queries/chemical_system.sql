-- Every composition of one chemical system and its subsystems (Table 1 of Park et al. 2024
-- shows Zn-O, Li-Zn-O and Li-Zn-Sn-O), with its category and one neutral assignment.
-- param: elements = Li,Zn,Sn,O
-- param: limit = 200
WITH sys AS (SELECT list(z) AS zs FROM elements WHERE list_contains($elements, symbol))
SELECT c.formula, c.arity, c.category, c.allowed, c.known,
       concat_ws(' ', c.ox1, c.ox2, c.ox3, c.ox4) AS oxidation_states
FROM compositions c, sys
WHERE c.arity <= len(sys.zs)
  AND list_contains(sys.zs, c.z1) AND list_contains(sys.zs, c.z2)
  AND (c.z3 = 0 OR list_contains(sys.zs, c.z3))
  AND (c.z4 = 0 OR list_contains(sys.zs, c.z4))
  AND (c.allowed OR c.known)
ORDER BY c.arity, c.category = 'interesting' DESC, c.known DESC, c.formula
LIMIT $limit;

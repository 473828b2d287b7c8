-- Missing compositions (allowed by the filters, not in the reference set) that contain a
-- given anion (an element carrying a negative oxidation state in the recorded neutral
-- assignment), simplest first: few atoms per formula unit, then binaries before ternaries.
-- param: anion = O
-- param: limit = 25
WITH a AS (SELECT z FROM elements WHERE symbol = $anion)
SELECT c.formula, c.arity, n1 + n2 + n3 + n4 AS atoms,
       concat_ws(' ', c.ox1, c.ox2, c.ox3, c.ox4) AS oxidation_states
FROM compositions c, a
WHERE c.category = 'missing'
  AND ((c.z1 = a.z AND c.ox1 < 0) OR (c.z2 = a.z AND c.ox2 < 0)
       OR (c.z3 = a.z AND c.ox3 < 0) OR (c.z4 = a.z AND c.ox4 < 0))
ORDER BY atoms, c.arity, c.formula
LIMIT $limit;

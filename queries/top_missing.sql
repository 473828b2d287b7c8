-- Missing compositions (allowed by the filters, not in the reference set) that contain a
-- given anion (an element carrying a negative oxidation state in the recorded neutral
-- assignment), simplest first: few atoms per formula unit, then binaries before ternaries.
-- $anion arrives as an atomic number.
-- param: anion = O
-- param: limit = 25
SELECT c.formula, c.arity, n1 + n2 + n3 + n4 AS atoms,
       concat_ws(' ', species(c.z1, c.ox1), species(c.z2, c.ox2), species(c.z3, c.ox3),
                 species(c.z4, c.ox4)) AS species
FROM compositions c
WHERE c.category = 'missing'
  AND ((c.z1 = $anion AND c.ox1 < 0) OR (c.z2 = $anion AND c.ox2 < 0)
       OR (c.z3 = $anion AND c.ox3 < 0) OR (c.z4 = $anion AND c.ox4 < 0))
ORDER BY atoms, c.arity, c.formula
LIMIT $limit;

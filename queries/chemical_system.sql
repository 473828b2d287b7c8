-- Every composition of one chemical system and its subsystems (Table 1 of Park et al. 2024
-- shows Zn-O, Li-Zn-O and Li-Zn-Sn-O), with its category and one neutral assignment.
-- $elements arrives as a list of atomic numbers.
-- param: elements = Li,Zn,Sn,O
-- param: limit = 200
SELECT c.formula, c.arity, c.category, c.allowed, c.known,
       concat_ws(' ', species(c.z1, c.ox1), species(c.z2, c.ox2), species(c.z3, c.ox3),
                 species(c.z4, c.ox4)) AS species
FROM compositions c
WHERE list_contains($elements, c.z1) AND list_contains($elements, c.z2)
  AND (c.z3 = 0 OR list_contains($elements, c.z3))
  AND (c.z4 = 0 OR list_contains($elements, c.z4))
  AND (c.allowed OR c.known)
ORDER BY c.arity, c.category = 'interesting' DESC, c.known DESC, c.formula
LIMIT $limit;

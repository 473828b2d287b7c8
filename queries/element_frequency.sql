-- How often each element occurs in allowed binary compositions (Fig. 1 of Park et al. 2024:
-- a periodic table coloured by frequency).
SELECT e.symbol, e.z, count(*) AS allowed_binaries
FROM compositions c
JOIN elements e ON e.z = c.z1 OR e.z = c.z2
WHERE c.arity = 2 AND c.allowed
GROUP BY e.symbol, e.z
ORDER BY allowed_binaries DESC, e.z;

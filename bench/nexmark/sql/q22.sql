-- Nexmark q22, URL directories: SPLIT_INDEX(url, '/', 3), (.., 4), (.., 5),
-- i.e. the pieces after "https:", "" and the host; missing pieces print
-- empty (NULL).
WITH s0 AS (SELECT auction, bidder, price, channel,
                   substr(substr(url, 9), instr(substr(url, 9), '/') + 1) AS r1 FROM bid),
s1 AS (SELECT *, CASE WHEN instr(r1, '/') > 0 THEN substr(r1, 1, instr(r1, '/') - 1) ELSE r1 END AS dir1,
              CASE WHEN instr(r1, '/') > 0 THEN substr(r1, instr(r1, '/') + 1) END AS r2 FROM s0),
s2 AS (SELECT *, CASE WHEN instr(r2, '/') > 0 THEN substr(r2, 1, instr(r2, '/') - 1) ELSE r2 END AS dir2,
              CASE WHEN instr(r2, '/') > 0 THEN substr(r2, instr(r2, '/') + 1) END AS r3 FROM s1),
s3 AS (SELECT *, CASE WHEN instr(r3, '/') > 0 THEN substr(r3, 1, instr(r3, '/') - 1) ELSE r3 END AS dir3
       FROM s2)
SELECT auction, bidder, price, channel, dir1, dir2, dir3 FROM s3;

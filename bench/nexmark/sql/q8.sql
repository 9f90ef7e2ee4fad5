-- Nexmark q8, monitor new users: people who opened an auction in the
-- 10 s tumbling window in which they registered.
SELECT P.id, P.name, P.starttime
FROM (SELECT id, name, (date_time / 10000) * 10000 AS starttime FROM person
      GROUP BY id, name, starttime) AS P
JOIN (SELECT seller, (date_time / 10000) * 10000 AS starttime FROM auction
      GROUP BY seller, starttime) AS A
ON P.id = A.seller AND P.starttime = A.starttime;

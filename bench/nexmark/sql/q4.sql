-- Nexmark q4, average price per category: the average over the auctions of
-- a category of their final (highest) price within [start, expiry]. AVG of
-- a BIGINT is an integer in Flink: sum / count, truncated.
SELECT category, sum(final) / count(*)
FROM (SELECT max(B.price) AS final, A.category AS category
      FROM auction AS A, bid AS B
      WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires
      GROUP BY A.id, A.category)
GROUP BY category;

-- Nexmark q17, auction statistics: per auction and day (UTC) the bids in
-- total and per price rank, and min, max, avg (integer, as Flink's AVG of
-- BIGINT) and sum of the price.
SELECT auction, strftime('%Y-%m-%d', date_time / 1000, 'unixepoch') AS day,
       count(*),
       sum(price < 10000),
       sum(price >= 10000 AND price < 1000000),
       sum(price >= 1000000),
       min(price), max(price), sum(price) / count(*), sum(price)
FROM bid GROUP BY auction, day;

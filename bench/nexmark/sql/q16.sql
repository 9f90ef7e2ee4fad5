-- Nexmark q16, channel statistics: q15 per channel and day (UTC), plus the
-- latest minute of the day with a bid (max of DATE_FORMAT 'HH:mm').
SELECT channel, strftime('%Y-%m-%d', date_time / 1000, 'unixepoch') AS day,
       max(strftime('%H:%M', date_time / 1000, 'unixepoch')),
       count(*),
       sum(price < 10000), sum(price >= 10000 AND price < 1000000), sum(price >= 1000000),
       count(DISTINCT bidder),
       count(DISTINCT CASE WHEN price < 10000 THEN bidder END),
       count(DISTINCT CASE WHEN price >= 10000 AND price < 1000000 THEN bidder END),
       count(DISTINCT CASE WHEN price >= 1000000 THEN bidder END),
       count(DISTINCT auction),
       count(DISTINCT CASE WHEN price < 10000 THEN auction END),
       count(DISTINCT CASE WHEN price >= 10000 AND price < 1000000 THEN auction END),
       count(DISTINCT CASE WHEN price >= 1000000 THEN auction END)
FROM bid GROUP BY channel, day;

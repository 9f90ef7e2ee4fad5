-- Nexmark q11, user sessions: bids per bidder in session windows with a
-- 10 s gap; a session ends 10 s after its last bid (Flink's SESSION_END).
WITH o AS (
  SELECT bidder, date_time,
         CASE WHEN date_time - lag(date_time) OVER (PARTITION BY bidder ORDER BY date_time) < 10000
              THEN 0 ELSE 1 END AS new_session
  FROM bid),
s AS (
  SELECT bidder, date_time,
         sum(new_session) OVER (PARTITION BY bidder ORDER BY date_time
                                ROWS UNBOUNDED PRECEDING) AS session
  FROM o)
SELECT bidder, count(*), min(date_time), max(date_time) + 10000 FROM s GROUP BY bidder, session;

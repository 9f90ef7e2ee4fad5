-- Nexmark q15, bidding statistics per day (UTC): bids, distinct bidders and
-- distinct auctions, in total and per price rank (< 10,000; < 1,000,000;
-- the rest).
SELECT strftime('%Y-%m-%d', date_time / 1000, 'unixepoch') AS day,
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
FROM bid GROUP BY day;

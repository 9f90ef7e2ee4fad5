-- Nexmark q5, hot items: bids per auction in HOP windows of 10 s every 2 s,
-- and per window the auctions with the most bids. Spate adds the window
-- start as the first column (the reference keeps it as starttime in the
-- join but does not select it).
WITH k(k) AS (VALUES (0), (1), (2), (3), (4)),
hop AS (SELECT auction, (date_time / 2000) * 2000 - k * 2000 AS starttime FROM bid, k),
auction_bids AS (SELECT auction, starttime, count(*) AS num FROM hop GROUP BY auction, starttime),
max_bids AS (SELECT starttime, max(num) AS maxn FROM auction_bids GROUP BY starttime)
SELECT A.starttime, A.auction, A.num
FROM auction_bids AS A JOIN max_bids AS M ON A.starttime = M.starttime AND A.num >= M.maxn;

-- Nexmark q7, highest bid: the bids whose price is the maximum of a 10 s
-- tumbling window, with the reference's inclusive BETWEEN (a bid at a
-- window's end instant is compared with that window's maximum too).
WITH B1 AS (SELECT max(price) AS maxprice, (date_time / 10000) * 10000 + 10000 AS date_time
            FROM bid GROUP BY date_time / 10000)
SELECT B.auction, B.price, B.bidder, B.date_time, B.extra
FROM bid AS B JOIN B1 ON B.price = B1.maxprice
WHERE B.date_time BETWEEN B1.date_time - 10000 AND B1.date_time;

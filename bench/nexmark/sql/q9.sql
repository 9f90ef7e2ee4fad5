-- Nexmark q9, winning bids: per auction, the highest bid placed between its
-- start and its expiry (earliest first on equal prices). Spate breaks the
-- remaining ties by bidder, then extra, where the reference leaves them to
-- chance.
SELECT id, item_name, description, initial_bid, reserve, date_time, expires, seller, category,
       extra, auction, bidder, price, bid_date_time, bid_extra, 2
FROM (SELECT A.*, B.auction, B.bidder, B.price, B.date_time AS bid_date_time,
             B.extra AS bid_extra,
             row_number() OVER (PARTITION BY A.id
                                ORDER BY B.price DESC, B.date_time ASC, B.bidder ASC,
                                         B.extra ASC) AS rownum
      FROM auction AS A, bid AS B
      WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires)
WHERE rownum <= 1;

-- Nexmark q19, auction top-10: per auction the 10 highest bids with their
-- rank. Equal prices rank the earlier bid first (the reference leaves ties
-- to chance; Spate orders them so).
SELECT auction, bidder, price, channel, url, date_time, extra, rank_number FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC, date_time ASC)
         AS rank_number
  FROM bid)
WHERE rank_number <= 10;

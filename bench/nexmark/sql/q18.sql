-- Nexmark q18, find last bid: per (bidder, auction) the bid with the latest
-- date_time (ROW_NUMBER ... ORDER BY dateTime DESC = 1). Ties on date_time
-- cannot occur at the oracle test's event rate (one event per ms).
SELECT auction, bidder, price, channel, url, date_time, extra FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY date_time DESC) AS rn
  FROM bid)
WHERE rn = 1;

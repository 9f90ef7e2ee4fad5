-- Nexmark q0, pass through (reference: SELECT auction, bidder, price, dateTime, extra FROM bid;
-- Spate passes every bid column, channel and url included).
SELECT auction, bidder, price, channel, url, date_time, extra FROM bid;

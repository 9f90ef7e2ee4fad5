-- Nexmark q13, bounded side input join: each bid with the side table's row
-- for auction % 10000 (the reference joins FOR SYSTEM_TIME AS OF the
-- processing time; the table never changes, so that is a plain join).
SELECT B.auction, B.bidder, B.price, B.date_time, S.value
FROM bid AS B JOIN side_input AS S ON B.auction % 10000 = S.key;

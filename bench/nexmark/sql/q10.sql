-- Nexmark q10, log to file system: every bid with its partition columns
-- dt (yyyy-MM-dd) and hm (HH:mm), UTC. The test reads Spate's output back
-- from the CSV files the file sink wrote.
SELECT auction, bidder, price, date_time, extra,
       strftime('%Y-%m-%d', date_time / 1000, 'unixepoch'),
       strftime('%H:%M', date_time / 1000, 'unixepoch')
FROM bid;

-- Nexmark q14, calculation: bids of 1M-50M euros, the hour of day
-- classified (UTC), and the 'c' characters of extra counted (the
-- reference's count_char UDF).
SELECT auction, bidder, printf('%.3f', 0.908 * price),
       CASE WHEN CAST(strftime('%H', date_time / 1000, 'unixepoch') AS INTEGER) BETWEEN 8 AND 18
              THEN 'dayTime'
            WHEN CAST(strftime('%H', date_time / 1000, 'unixepoch') AS INTEGER) <= 6
                 OR CAST(strftime('%H', date_time / 1000, 'unixepoch') AS INTEGER) >= 20
              THEN 'nightTime'
            ELSE 'otherTime' END,
       date_time, extra, length(extra) - length(replace(extra, 'c', ''))
FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000;

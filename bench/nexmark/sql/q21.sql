-- Nexmark q21, add channel id: a fixed id for the four named channels,
-- else the value of the URL's channel_id parameter (REGEXP_EXTRACT(url,
-- '(&|^)channel_id=([^&]*)', 2), written with instr/substr: our URLs hold
-- the parameter at most once, after a '&'); bids with neither are dropped.
WITH c AS (
  SELECT auction, bidder, price, channel, url,
         CASE WHEN instr(url, '&channel_id=') > 0
              THEN substr(url, instr(url, '&channel_id=') + 12) END AS rest
  FROM bid),
e AS (
  SELECT *, CASE WHEN instr(rest, '&') > 0 THEN substr(rest, 1, instr(rest, '&') - 1)
                 ELSE rest END AS extracted
  FROM c)
SELECT auction, bidder, price, channel,
       CASE WHEN lower(channel) = 'apple' THEN '0'
            WHEN lower(channel) = 'google' THEN '1'
            WHEN lower(channel) = 'facebook' THEN '2'
            WHEN lower(channel) = 'baidu' THEN '3'
            ELSE extracted END
FROM e
WHERE extracted IS NOT NULL OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu');

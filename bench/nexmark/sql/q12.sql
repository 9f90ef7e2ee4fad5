-- Nexmark q12, processing-time windows: bids per bidder in TUMBLE(PROCTIME,
-- 10 s). Window boundaries depend on the wall clock, so no oracle can
-- predict the rows; the test sums Spate's counts per bidder over all its
-- windows (and checks every window is [10 s * k, 10 s * (k + 1))), which
-- must equal the total per bidder below.
SELECT bidder, count(*) FROM bid GROUP BY bidder;

-- Nexmark q1, currency conversion: 0.908 * price (printed with 3 decimals).
SELECT auction, bidder, printf('%.3f', 0.908 * price), date_time, extra FROM bid;

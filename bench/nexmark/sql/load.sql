-- bench/nexmark/sql/load.sql - loads person.csv, auction.csv and bid.csv
-- (nexmark_export_csv) from the current directory into SQLite tables whose
-- columns match Spate's Nexmark records. Run before any qN.sql.
CREATE TABLE person (id INTEGER, name TEXT, email_address TEXT, credit_card TEXT, city TEXT,
                     state TEXT, date_time INTEGER, extra TEXT);
CREATE TABLE auction (id INTEGER, item_name TEXT, description TEXT, initial_bid INTEGER,
                      reserve INTEGER, date_time INTEGER, expires INTEGER, seller INTEGER,
                      category INTEGER, extra TEXT);
CREATE TABLE bid (auction INTEGER, bidder INTEGER, price INTEGER, channel TEXT, url TEXT,
                  date_time INTEGER, extra TEXT);
.import --csv --skip 1 person.csv person
.import --csv --skip 1 auction.csv auction
.import --csv --skip 1 bid.csv bid
CREATE TABLE side_input (key INTEGER, value TEXT);
.import --csv --skip 1 side_input.csv side_input

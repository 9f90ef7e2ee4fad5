// tests/tools/fraud_reference.h - the fraud rules computed directly over a
// list of payments, written for the tests from the rules' statement in
// fraud.h and not from the job's code: no windows, no keyed state, no
// timers, no watermarks, just maps over the payments in the order one key
// sees them. The tests compare the job's alerts with these, field by field.
//
// The statement, as the reference reads it (payments of one key are taken
// in their index order, which is the order the job sees them when all of a
// key's payments come from one source split or Kafka partition):
//   rule 1  per user and 10-minute event-time window [k*10 min, (k+1)*10
//           min): more than FRAUD_DECLINES_MAX declined payments. A payment
//           whose window ended at or before the watermark bound when it
//           came (its window's last ms <= max earlier event time - 45 s - 1)
//           is late and not counted. Alert: event_time = the window's last
//           ms, value = the declines, card 0.
//   rule 2  per card: before = the amounts of the card's earlier payments
//           whose event-time hour lies in (h - 24, h], h = this payment's
//           hour; an alert when before <= limit < before + amount, value =
//           before + amount, event_time = the payment's.
//   rule 3  per card: "last" = the earlier payment with the greatest event
//           time (ties: the later one); an alert when its country differs
//           and the two event times are less than an hour apart; country =
//           this payment's, previous_country = last's.
#ifndef SPATE_TESTS_FRAUD_REFERENCE_H
#define SPATE_TESTS_FRAUD_REFERENCE_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

extern "C" {
#include "fraud.h"
}

namespace fraud_ref
{

// An alert as a comparable value; the amount sum is compared to the cent
// (the job sums hourly buckets, the reference payments: float rounding
// differs in the last bits).
struct Alert {
    int rule;
    int64_t event_time;
    int64_t user_id;
    int64_t card_id;
    int64_t value_cents;
    std::string country, previous_country;
    bool operator<(const Alert &o) const
    {
        return std::tie(rule, event_time, user_id, card_id, value_cents, country,
                        previous_country) < std::tie(o.rule, o.event_time, o.user_id, o.card_id,
                                                     o.value_cents, o.country, o.previous_country);
    }
    bool operator==(const Alert &o) const { return !(*this < o) && !(o < *this); }
    std::string str() const
    {
        std::ostringstream s;
        s << "{rule " << rule << ", t " << event_time << ", user " << user_id << ", card "
          << card_id << ", value " << value_cents / 100.0 << ", country '" << country
          << "', previous '" << previous_country << "'}";
        return s.str();
    }
};

inline std::string cstr(const char *s, size_t cap)
{
    return std::string(s, strnlen(s, cap));
}

inline Alert of(const fraud_alert &a)
{
    return Alert{a.rule,
                 a.event_time,
                 a.user_id,
                 a.card_id,
                 (int64_t)std::llround(a.value * 100),
                 a.rule == 3 ? cstr(a.country, sizeof(a.country)) : "",
                 a.rule == 3 ? cstr(a.previous_country, sizeof(a.previous_country)) : ""};
}

// The alerts the first n payments of p must raise, sorted.
inline std::vector<Alert> alerts(const fraud_params &p, uint64_t n)
{
    const int64_t hour = 3600000;
    std::map<std::pair<int64_t, int64_t>, int64_t> declines; // (user, window start)
    struct Seen {
        int64_t t;
        double amount;
    };
    std::map<int64_t, std::vector<Seen>> spend; // card -> its payments so far
    struct Last {
        int64_t t;
        std::string country;
    };
    std::map<int64_t, Last> last;
    std::vector<Alert> out;
    int64_t max_t = INT64_MIN;
    for (uint64_t i = 0; i < n; i++) {
        fraud_payment pay;
        fraud_payment_at(&p, i, &pay);
        const std::string country = cstr(pay.country, sizeof(pay.country));
        // Rule 1.
        int64_t w = pay.event_time - pay.event_time % FRAUD_DECLINE_WINDOW_MS;
        bool late = max_t != INT64_MIN &&
                    w + FRAUD_DECLINE_WINDOW_MS - 1 <= max_t - FRAUD_OUT_OF_ORDER_MS - 1;
        if (!late && !strcmp(pay.status, "declined"))
            declines[{pay.user_id, w}]++;
        if (pay.event_time > max_t)
            max_t = pay.event_time;
        // Rule 2.
        int64_t h = pay.event_time / hour;
        double before = 0;
        auto &mine = spend[pay.card_id];
        for (const Seen &s : mine)
            if (s.t / hour > h - 24 && s.t / hour <= h)
                before += s.amount;
        mine.push_back({pay.event_time, pay.amount});
        if (before <= p.spend_limit && before + pay.amount > p.spend_limit)
            out.push_back(Alert{2, pay.event_time, pay.user_id, pay.card_id,
                                (int64_t)std::llround((before + pay.amount) * 100), "", ""});
        // Rule 3.
        auto it = last.find(pay.card_id);
        if (it != last.end() && it->second.country != country &&
            std::llabs(pay.event_time - it->second.t) < FRAUD_COUNTRY_WINDOW_MS)
            out.push_back(Alert{3, pay.event_time, pay.user_id, pay.card_id, 0, country,
                                it->second.country});
        if (it == last.end())
            last[pay.card_id] = Last{pay.event_time, country};
        else if (pay.event_time >= it->second.t)
            it->second = Last{pay.event_time, country};
    }
    for (auto &kv : declines)
        if (kv.second > FRAUD_DECLINES_MAX)
            out.push_back(Alert{1, kv.first.second + FRAUD_DECLINE_WINDOW_MS - 1, kv.first.first, 0,
                                kv.second * 100, "", ""});
    std::sort(out.begin(), out.end());
    return out;
}

// "" when got (any order) equals want (sorted), else what differs.
inline std::string diff(std::vector<Alert> got, const std::vector<Alert> &want)
{
    std::sort(got.begin(), got.end());
    if (got == want)
        return "";
    std::ostringstream s;
    s << got.size() << " alerts, " << want.size() << " expected\n";
    size_t i = 0, j = 0, shown = 0;
    while ((i < got.size() || j < want.size()) && shown < 20) {
        if (j == want.size() || (i < got.size() && got[i] < want[j])) {
            s << "  unexpected " << got[i++].str() << "\n";
            shown++;
        } else if (i == got.size() || want[j] < got[i]) {
            s << "  missing    " << want[j++].str() << "\n";
            shown++;
        } else {
            i++, j++;
        }
    }
    return s.str();
}

} // namespace fraud_ref
#endif

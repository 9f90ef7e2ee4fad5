// tests/core/test_config.cc - the configuration: registry and defaults,
// value parsing for every type, YAML loading (nested, flat, sequences,
// malformed input, all-or-nothing), -D overrides, origins, describe().
//
// Every refusal is checked for its code and for a one-line message that
// names where the value came from and the key.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "core/config_int.h"
#include "spate/config.h"
#include "spate/limits.h"

namespace
{

#define EXPECT_CONTAINS(haystack, needle)                                                          \
    EXPECT_NE(std::string(haystack).find(needle), std::string::npos)                               \
        << "  message: " << (haystack) << "\n  expected to contain: " << (needle)

#define EXPECT_STARTS(message, prefix)                                                             \
    EXPECT_EQ(std::string(message).rfind(prefix, 0), 0u)                                           \
        << "  message: " << (message) << "\n  expected to start with: " << (prefix)

// A mkdtemp directory removed with its files at the end of the test.
class TempDir
{
  public:
    TempDir()
    {
        std::string tmpl = ::testing::TempDir() + "spate_config_XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        char *dir = mkdtemp(buf.data());
        if (dir == nullptr)
            ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
        else
            dir_ = dir;
    }
    ~TempDir()
    {
        for (const std::string &f : files_)
            unlink(f.c_str());
        if (!dir_.empty())
            rmdir(dir_.c_str());
    }
    const std::string &path() const { return dir_; }
    std::string write(const std::string &name, const std::string &text)
    {
        std::string p = dir_ + "/" + name;
        FILE *f = std::fopen(p.c_str(), "w");
        EXPECT_NE(f, nullptr) << p;
        if (f) {
            std::fwrite(text.data(), 1, text.size(), f);
            std::fclose(f);
        }
        files_.push_back(p);
        return p;
    }

  private:
    std::string dir_;
    std::vector<std::string> files_;
};

struct ConfigPtr {
    spate_config *cfg = nullptr;
    ConfigPtr() { EXPECT_EQ(spate_config_create(&cfg), 0); }
    explicit ConfigPtr(const sp_config_key *keys, size_t count)
    {
        EXPECT_EQ(sp_config_create_with_keys(&cfg, keys, count), 0);
    }
    ~ConfigPtr() { spate_config_destroy(cfg); }
    ConfigPtr(const ConfigPtr &) = delete;
    ConfigPtr &operator=(const ConfigPtr &) = delete;
    operator spate_config *() const { return cfg; }
};

bool one_line(const char *s)
{
    return std::strchr(s, '\n') == nullptr && std::strchr(s, '\r') == nullptr;
}

std::vector<int> cpus_of(spate_config *cfg, const char *key)
{
    int cpus[SPATE_SHARDS_MAX];
    int n = spate_config_get_cpus(cfg, key, cpus, SPATE_SHARDS_MAX);
    return std::vector<int>(cpus, cpus + (n < SPATE_SHARDS_MAX ? n : SPATE_SHARDS_MAX));
}

std::string describe(spate_config *cfg)
{
    size_t n = spate_config_describe(cfg, nullptr, 0);
    std::string out(n + 1, '\0');
    EXPECT_EQ(spate_config_describe(cfg, out.data(), out.size()), n);
    out.resize(n);
    return out;
}

// One key of each type, for the types the engine registry does not use yet.
const sp_config_key test_keys[] = {
    {"t.int", SPATE_CONFIG_INT, "5", -10, 100, 0, 0, 0, nullptr, "An int."},
    {"t.pow2", SPATE_CONFIG_INT, "16", 16, 1024, 0, 0, SP_CONFIG_POW2, nullptr, "A power of two."},
    {"t.double", SPATE_CONFIG_DOUBLE, "1.5", 0, 0, -2.0, 2.0, 0, nullptr, "A double."},
    {"t.bool", SPATE_CONFIG_BOOL, "false", 0, 0, 0, 0, 0, nullptr, "A bool."},
    {"t.bytes", SPATE_CONFIG_BYTES, "1mb", 0, INT64_MAX, 0, 0, 0, nullptr, "A size."},
    {"t.duration", SPATE_CONFIG_DURATION, "10s", 0, 86400000, 0, 0, 0, nullptr, "A duration."},
    {"t.string", SPATE_CONFIG_STRING, "hello", 0, 0, 0, 0, 0, nullptr, "A string."},
    {"t.enum", SPATE_CONFIG_ENUM, "b", 0, 0, 0, 0, 0, "a|b|c-d", "An enum."},
    {"t.cpus", SPATE_CONFIG_CPULIST, "0-1", 0, 8, 0, 0, 0, nullptr, "A cpulist."},
    {"t.unset", SPATE_CONFIG_STRING, nullptr, 0, 0, 0, 0, 0, nullptr, "No default."},
};
constexpr size_t test_key_count = sizeof(test_keys) / sizeof(test_keys[0]);

// A refused value: the key, the value, and a piece of the expected reason.
struct BadValue {
    const char *key;
    const char *value;
    const char *reason;
};

// Every registered engine key, with values its type or range refuses.
const BadValue engine_bad_values[] = {
    // int
    {"shards.count", "abc", "must be an integer between 1 and 256, got 'abc'"},
    {"shards.count", "0", "must be an integer between 1 and 256, got '0'"},
    {"shards.count", "257", "must be an integer between 1 and 256, got '257'"},
    {"shards.count", "-1", "must be an integer between 1 and 256, got '-1'"},
    {"shards.count", "4x", "got '4x'"},
    {"shards.count", "1.5", "got '1.5'"},
    {"shards.count", "0x10", "got '0x10'"},
    {"shards.count", "+", "got '+'"},
    {"shards.count", "99999999999999999999", "got '99999999999999999999'"},
    {"shards.count", "-99999999999999999999", "got '-99999999999999999999'"},
    {"shards.shutdown-timeout-ms", "-1", "must be an integer between 0 and 3600000"},
    {"shards.shutdown-timeout-ms", "3600001", "got '3600001'"},
    {"shards.shutdown-timeout-ms", "10s", "got '10s'"},
    {"shards.batch.pool-size", "1", "must be an integer between 2 and 65536, got '1'"},
    {"shards.batch.pool-size", "65537", "got '65537'"},
    {"shards.ring.capacity", "1000", "must be a power of two between 16 and 1048576, got '1000'"},
    {"shards.ring.capacity", "8", "must be a power of two between 16 and 1048576, got '8'"},
    {"shards.ring.capacity", "2097152", "got '2097152'"},
    {"shards.ring.capacity", "0", "got '0'"},
    // double
    {"shards.task-quota-ms", "0", "must be a number greater than 0 and at most 1000, got '0'"},
    {"shards.task-quota-ms", "-0.5", "got '-0.5'"},
    {"shards.task-quota-ms", "1000.5", "got '1000.5'"},
    {"shards.task-quota-ms", "nan", "got 'nan'"},
    {"shards.task-quota-ms", "inf", "got 'inf'"},
    {"shards.task-quota-ms", "1e999", "got '1e999'"},
    {"shards.task-quota-ms", "0x1p-2", "got '0x1p-2'"},
    {"shards.task-quota-ms", "1e", "got '1e'"},
    {"shards.task-quota-ms", ".", "got '.'"},
    {"shards.task-quota-ms", "0.5ms", "got '0.5ms'"},
    {"shards.stall-detector.factor", "0.5", "must be a number between 1 and 1000, got '0.5'"},
    {"shards.stall-detector.factor", "1001", "got '1001'"},
    {"shards.stall-detector.factor", "four", "got 'four'"},
    // bool
    {"shards.pin", "yes", "must be true or false, got 'yes'"},
    {"shards.pin", "1", "must be true or false, got '1'"},
    {"shards.pin", "on", "must be true or false, got 'on'"},
    {"shards.busy-poll", "truex", "must be true or false, got 'truex'"},
    {"shards.busy-poll", "no", "must be true or false, got 'no'"},
    // bytes
    {"shards.batch.size", "1023", "must be a size between 1kb and 16mb"},
    {"shards.batch.size", "17mb", "got '17mb'"},
    {"shards.batch.size", "16777217", "got '16777217'"},
    {"shards.batch.size", "64 xb", "got '64 xb'"},
    {"shards.batch.size", "kb", "got 'kb'"},
    {"shards.batch.size", "-1kb", "got '-1kb'"},
    {"shards.batch.size", "1.5kb", "got '1.5kb'"},
    {"shards.batch.size", "64kb2", "got '64kb2'"},
    {"shards.batch.size", "64 kb x", "got '64 kb x'"},
    {"shards.batch.size", "99999999999999999999", "got '99999999999999999999'"},
    {"shards.batch.size", "18014398509481984kb", "got '18014398509481984kb'"},
    // enum
    {"shards.wakeup", "Auto", "must be one of auto, msg-ring or eventfd, got 'Auto'"},
    {"shards.wakeup", "msgring", "must be one of auto, msg-ring or eventfd, got 'msgring'"},
    {"shards.wakeup", "auto ", "got 'auto '"},
    // cpulist
    {"shards.cpus", "3-1", "bad CPU list '3-1': '3-1' at position 1: range end before start"},
    {"shards.cpus", "0,0", "CPU 0 is listed twice"},
    {"shards.cpus", "0-3,2", "CPU 2 is listed twice"},
    {"shards.cpus", "4096", "CPU id above 4095"},
    {"shards.cpus", "a", "not a CPU id"},
    {"shards.cpus", "1,,2", "empty item at position 3"},
    {"shards.cpus", "0-256", "more than 256 CPUs"},
};

// Values for the types only the test registry has, and control characters.
const BadValue test_bad_values[] = {
    {"t.duration", "abc", "must be a duration between 0ms and 1d"},
    {"t.duration", "1 fortnight", "got '1 fortnight'"},
    {"t.duration", "1.5s", "got '1.5s'"},
    {"t.duration", "-1s", "got '-1s'"},
    {"t.duration", "2d", "got '2d'"},
    {"t.duration", "10us", "got '10us'"},
    {"t.duration", "99999999999999999999", "got '99999999999999999999'"},
    {"t.duration", "9223372036854775807d", "got '9223372036854775807d'"},
    {"t.string", "two\nlines",
     "value must be one line without control characters, got 'two?lines'"},
    {"t.enum", "c", "must be one of a, b or c-d, got 'c'"},
    {"t.int", "-11", "must be an integer between -10 and 100, got '-11'"},
    {"t.pow2", "48", "must be a power of two between 16 and 1024, got '48'"},
    {"t.double", "-2.5", "must be a number between -2 and 2, got '-2.5'"},
    {"t.cpus", "0-8", "more than 8 CPUs"},
};

void expect_refused(spate_config *cfg, const BadValue &bad)
{
    SCOPED_TRACE(std::string(bad.key) + " = '" + bad.value + "'");

    // Through the API, with a caller-chosen origin: nothing changes.
    std::string before = describe(cfg);
    spate_error err{};
    EXPECT_EQ(spate_config_set(cfg, bad.key, bad.value, "api-test", &err), -SPATE_ECONFIG);
    EXPECT_EQ(err.code, -SPATE_ECONFIG);
    EXPECT_STARTS(err.message, std::string("api-test: ") + bad.key + ": ");
    EXPECT_CONTAINS(err.message, bad.reason);
    EXPECT_TRUE(one_line(err.message)) << err.message;
    EXPECT_FALSE(spate_config_is_set(cfg, bad.key));
    EXPECT_EQ(describe(cfg), before);

    // As -D key=value, when the value survives the blank trimming of -D.
    std::string v = bad.value;
    if (!v.empty() && v.front() != ' ' && v.back() != ' ' && v.find('\n') == std::string::npos) {
        err = spate_error{};
        std::string kv = std::string(bad.key) + "=" + bad.value;
        EXPECT_EQ(spate_config_set_kv(cfg, kv.c_str(), &err), -SPATE_ECONFIG);
        EXPECT_STARTS(err.message, std::string("-D: ") + bad.key + ": ");
        EXPECT_CONTAINS(err.message, bad.reason);
    }

    // From a file, as a single-quoted YAML scalar on line 2.
    if (v.find('\n') == std::string::npos) {
        std::string yaml = "# comment\n" + std::string(bad.key) + ": '" + bad.value + "'\n";
        err = spate_error{};
        EXPECT_EQ(spate_config_load_string(cfg, yaml.c_str(), "bad.yaml", &err), -SPATE_ECONFIG);
        EXPECT_STARTS(err.message, std::string("bad.yaml:2: ") + bad.key + ": ");
        EXPECT_CONTAINS(err.message, bad.reason);
        EXPECT_FALSE(spate_config_is_set(cfg, bad.key));
    }
    EXPECT_EQ(describe(cfg), before);
}

} // namespace

// ---- registry and defaults ---------------------------------------------

TEST(ConfigRegistry, HoldsTheShardKeysWithTheirTypes)
{
    struct Want {
        const char *name;
        spate_config_type type;
    } want[] = {
        {"shards.count", SPATE_CONFIG_INT},
        {"shards.cpus", SPATE_CONFIG_CPULIST},
        {"shards.pin", SPATE_CONFIG_BOOL},
        {"shards.busy-poll", SPATE_CONFIG_BOOL},
        {"shards.task-quota-ms", SPATE_CONFIG_DOUBLE},
        {"shards.stall-detector.factor", SPATE_CONFIG_DOUBLE},
        {"shards.ring.capacity", SPATE_CONFIG_INT},
        {"shards.batch.size", SPATE_CONFIG_BYTES},
        {"shards.batch.pool-size", SPATE_CONFIG_INT},
        {"shards.wakeup", SPATE_CONFIG_ENUM},
        {"shards.shutdown-timeout-ms", SPATE_CONFIG_INT},
    };
    size_t count = 0;
    const sp_config_key *keys = sp_config_registry(&count);
    ASSERT_GE(count, sizeof(want) / sizeof(want[0]));
    for (const Want &w : want) {
        bool found = false;
        for (size_t i = 0; i < count; i++) {
            if (std::strcmp(keys[i].name, w.name) == 0) {
                found = true;
                EXPECT_EQ(keys[i].type, w.type) << w.name;
            }
        }
        EXPECT_TRUE(found) << w.name;
    }
}

TEST(ConfigRegistry, NamesAreUniqueShortAndDescribed)
{
    size_t count = 0;
    const sp_config_key *keys = sp_config_registry(&count);
    EXPECT_LE(count, (size_t)SPATE_CONFIG_ENTRIES_MAX);
    for (size_t i = 0; i < count; i++) {
        SCOPED_TRACE(keys[i].name);
        EXPECT_LT(std::strlen(keys[i].name), (size_t)SPATE_CONFIG_KEY_MAX);
        EXPECT_EQ(std::strspn(keys[i].name, "abcdefghijklmnopqrstuvwxyz0123456789.-"),
                  std::strlen(keys[i].name));
        ASSERT_NE(keys[i].description, nullptr);
        EXPECT_GT(std::strlen(keys[i].description), 10u);
        EXPECT_TRUE(one_line(keys[i].description));
        if (keys[i].type == SPATE_CONFIG_ENUM) {
            EXPECT_NE(keys[i].enum_words, nullptr);
        }
        for (size_t j = i + 1; j < count; j++)
            EXPECT_STRNE(keys[i].name, keys[j].name);
    }
}

TEST(ConfigRegistry, EveryDefaultParsesAndValidates)
{
    size_t count = 0;
    const sp_config_key *keys = sp_config_registry(&count);
    ConfigPtr cfg;
    int with_default = 0;
    for (size_t i = 0; i < count; i++) {
        if (keys[i].default_text == nullptr)
            continue;
        with_default++;
        spate_error err{};
        EXPECT_EQ(spate_config_set(cfg, keys[i].name, keys[i].default_text, "test", &err), 0)
            << keys[i].name << ": " << err.message;
    }
    EXPECT_GE(with_default, 9);
}

TEST(ConfigDefaults, GettersReturnRegisteredDefaults)
{
    ConfigPtr cfg;
    EXPECT_EQ(spate_config_get_int(cfg, "shards.count"), 0); // computed at run time
    EXPECT_TRUE(cpus_of(cfg, "shards.cpus").empty());
    EXPECT_TRUE(spate_config_get_bool(cfg, "shards.pin"));
    EXPECT_FALSE(spate_config_get_bool(cfg, "shards.busy-poll"));
    EXPECT_DOUBLE_EQ(spate_config_get_double(cfg, "shards.task-quota-ms"), 0.5);
    EXPECT_DOUBLE_EQ(spate_config_get_double(cfg, "shards.stall-detector.factor"), 4.0);
    EXPECT_EQ(spate_config_get_int(cfg, "shards.ring.capacity"), SPATE_RING_CAPACITY_DEFAULT);
    EXPECT_EQ(spate_config_get_bytes(cfg, "shards.batch.size"), SPATE_BATCH_BYTES_DEFAULT);
    EXPECT_EQ(spate_config_get_int(cfg, "shards.batch.pool-size"), SPATE_BATCH_POOL_DEFAULT);
    EXPECT_STREQ(spate_config_get_enum(cfg, "shards.wakeup"), "auto");
    EXPECT_EQ(spate_config_get_int(cfg, "shards.shutdown-timeout-ms"),
              SPATE_SHUTDOWN_TIMEOUT_MS_DEFAULT);
    EXPECT_FALSE(spate_config_is_set(cfg, "shards.count"));
    EXPECT_STREQ(spate_config_origin(cfg, "shards.count"), "default");
    EXPECT_STREQ(spate_config_origin(cfg, "shards.pin"), "default");
}

TEST(ConfigDefaults, AgreeWithLimitsHeader)
{
    ConfigPtr cfg;
    EXPECT_DOUBLE_EQ(spate_config_get_double(cfg, "shards.task-quota-ms"),
                     SPATE_TASK_QUOTA_MS_DEFAULT);
    EXPECT_DOUBLE_EQ(spate_config_get_double(cfg, "shards.stall-detector.factor"),
                     SPATE_STALL_FACTOR_DEFAULT);
}

// ---- every type -----------------------------------------------------------

TEST(ConfigValues, EveryBadValueOfEveryEngineKeyIsRefusedNamingKeyAndOrigin)
{
    ConfigPtr cfg;
    for (const BadValue &bad : engine_bad_values)
        expect_refused(cfg, bad);
}

TEST(ConfigValues, EveryBadValueOfEveryTypeIsRefusedNamingKeyAndOrigin)
{
    ConfigPtr cfg(test_keys, test_key_count);
    for (const BadValue &bad : test_bad_values)
        expect_refused(cfg, bad);
}

TEST(ConfigValues, EmptyAndNullValuesAreRefusedForEveryKey)
{
    ConfigPtr cfg(test_keys, test_key_count);
    for (size_t i = 0; i < test_key_count; i++) {
        const char *key = test_keys[i].name;
        SCOPED_TRACE(key);
        spate_error err{};
        EXPECT_EQ(spate_config_set(cfg, key, "", "api", &err), -SPATE_ECONFIG);
        EXPECT_EQ(std::string(err.message), std::string("api: ") + key + ": value is empty");
        EXPECT_EQ(spate_config_set(cfg, key, nullptr, "api", &err), -SPATE_ECONFIG);
        EXPECT_EQ(std::string(err.message), std::string("api: ") + key + ": value is empty");
        for (const char *null_text : {"", " ~", " null", " NULL", " ''", " \"\""}) {
            std::string yaml = std::string("\n") + key + ":" + null_text + "\n"; // line 2
            err = spate_error{};
            EXPECT_EQ(spate_config_load_string(cfg, yaml.c_str(), "n.yaml", &err), -SPATE_ECONFIG)
                << yaml;
            EXPECT_EQ(std::string(err.message),
                      std::string("n.yaml:2: ") + key + ": value is empty")
                << yaml;
        }
    }
}

TEST(ConfigValues, NestedNullIsRefusedNamingTheFullKey)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_load_string(cfg, "shards:\n  count:\n  pin: true\n", "c.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "c.yaml:2: shards.count: value is empty");
    EXPECT_EQ(spate_config_load_string(cfg, "shards: {}\n", "c.yaml", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "c.yaml:1: shards: value is empty");
    EXPECT_EQ(spate_config_load_string(cfg, "shards:\n", "c.yaml", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "c.yaml:1: shards: value is empty");
    EXPECT_FALSE(spate_config_is_set(cfg, "shards.pin"));
}

TEST(ConfigValues, EveryTypeParsesAndGetsBack)
{
    ConfigPtr cfg(test_keys, test_key_count);
    // Defaults of the test registry.
    EXPECT_EQ(spate_config_get_int(cfg, "t.int"), 5);
    EXPECT_DOUBLE_EQ(spate_config_get_double(cfg, "t.double"), 1.5);
    EXPECT_FALSE(spate_config_get_bool(cfg, "t.bool"));
    EXPECT_EQ(spate_config_get_bytes(cfg, "t.bytes"), 1u << 20);
    EXPECT_EQ(spate_config_get_duration_ms(cfg, "t.duration"), 10000);
    EXPECT_STREQ(spate_config_get_string(cfg, "t.string"), "hello");
    EXPECT_STREQ(spate_config_get_enum(cfg, "t.enum"), "b");
    EXPECT_EQ(cpus_of(cfg, "t.cpus"), (std::vector<int>{0, 1}));
    EXPECT_EQ(spate_config_get_string(cfg, "t.unset"), nullptr);

    spate_error err{};
    const char *yaml = "t:\n"
                       "  int: -10\n"
                       "  pow2: 1024\n"
                       "  double: -1.25e0\n"
                       "  bool: TRUE\n"
                       "  bytes: 2 GiB\n"
                       "  duration: 3 min\n"
                       "  string: 'a: b # not a comment'\n"
                       "  enum: c-d\n"
                       "  cpus: [7, 3, 5]\n"
                       "  unset: now set\n";
    ASSERT_EQ(spate_config_load_string(cfg, yaml, "all.yaml", &err), 0) << err.message;
    EXPECT_EQ(spate_config_get_int(cfg, "t.int"), -10);
    EXPECT_EQ(spate_config_get_int(cfg, "t.pow2"), 1024);
    EXPECT_DOUBLE_EQ(spate_config_get_double(cfg, "t.double"), -1.25);
    EXPECT_TRUE(spate_config_get_bool(cfg, "t.bool"));
    EXPECT_EQ(spate_config_get_bytes(cfg, "t.bytes"), 2ull << 30);
    EXPECT_EQ(spate_config_get_duration_ms(cfg, "t.duration"), 180000);
    EXPECT_STREQ(spate_config_get_string(cfg, "t.string"), "a: b # not a comment");
    EXPECT_STREQ(spate_config_get_enum(cfg, "t.enum"), "c-d");
    EXPECT_EQ(cpus_of(cfg, "t.cpus"), (std::vector<int>{7, 3, 5}));
    EXPECT_STREQ(spate_config_get_string(cfg, "t.unset"), "now set");
    EXPECT_STREQ(spate_config_origin(cfg, "t.cpus"), "all.yaml:10");

    // Bool is case-insensitive; the double takes plain integers.
    EXPECT_EQ(spate_config_set(cfg, "t.bool", "False", "api", &err), 0);
    EXPECT_FALSE(spate_config_get_bool(cfg, "t.bool"));
    EXPECT_EQ(spate_config_set(cfg, "t.double", "2", "api", &err), 0);
    EXPECT_DOUBLE_EQ(spate_config_get_double(cfg, "t.double"), 2.0);
    EXPECT_EQ(spate_config_set(cfg, "t.int", "+7", "api", &err), 0);
    EXPECT_EQ(spate_config_get_int(cfg, "t.int"), 7);
}

TEST(ConfigValues, IntRangeEdgesAreInclusive)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_set(cfg, "shards.count", "1", "api", &err), 0);
    EXPECT_EQ(spate_config_set(cfg, "shards.count", "256", "api", &err), 0);
    EXPECT_EQ(spate_config_get_int(cfg, "shards.count"), 256);
    EXPECT_EQ(spate_config_set(cfg, "shards.shutdown-timeout-ms", "0", "api", &err), 0);
    EXPECT_EQ(spate_config_set(cfg, "shards.task-quota-ms", "1000", "api", &err), 0);
    EXPECT_EQ(spate_config_set(cfg, "shards.task-quota-ms", "0.001", "api", &err), 0);
    EXPECT_EQ(spate_config_set(cfg, "shards.stall-detector.factor", "1", "api", &err), 0);
    EXPECT_EQ(spate_config_set(cfg, "shards.batch.size", "1kb", "api", &err), 0);
    EXPECT_EQ(spate_config_set(cfg, "shards.batch.size", "16 MiB", "api", &err), 0);
    EXPECT_EQ(spate_config_get_bytes(cfg, "shards.batch.size"), 16u << 20);
}

TEST(ConfigValues, RingCapacityMustBeAPowerOfTwo)
{
    ConfigPtr cfg;
    spate_error err{};
    for (int64_t v = SPATE_RING_CAPACITY_MIN; v <= SPATE_RING_CAPACITY_MAX; v *= 2) {
        std::string text = std::to_string(v);
        EXPECT_EQ(spate_config_set(cfg, "shards.ring.capacity", text.c_str(), "api", &err), 0)
            << text << ": " << err.message;
        EXPECT_EQ(spate_config_get_int(cfg, "shards.ring.capacity"), v);
    }
    for (int64_t v : {17, 24, 48, 1000, 1023, 1025, 3 << 10, (1 << 20) - 1}) {
        std::string text = std::to_string(v);
        err = spate_error{};
        EXPECT_EQ(spate_config_set(cfg, "shards.ring.capacity", text.c_str(), "api", &err),
                  -SPATE_ECONFIG)
            << text;
        EXPECT_CONTAINS(err.message, "shards.ring.capacity: must be a power of two");
    }
    EXPECT_EQ(spate_config_get_int(cfg, "shards.ring.capacity"), SPATE_RING_CAPACITY_MAX);
}

TEST(ConfigValues, BytesUnits)
{
    struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {
        {"0", 0},
        {"65536", 65536},
        {"1b", 1},
        {"10 bytes", 10},
        {"1k", 1024},
        {"64kb", 64 << 10},
        {"64 kb", 64 << 10},
        {"64\tKB", 64 << 10},
        {"64KiB", 64 << 10},
        {"1m", 1 << 20},
        {"1 mb", 1 << 20},
        {"3MiB", 3 << 20},
        {"2g", 2ull << 30},
        {"2 GB", 2ull << 30},
        {"1gib", 1ull << 30},
        {"1t", 1ull << 40},
        {"5tb", 5ull << 40},
        {"1 TiB", 1ull << 40},
        {"16mb ", 16 << 20},
        {"18446744073709551615", UINT64_MAX},
        {"16777215tb", 16777215ull << 40},
    };
    for (const auto &c : ok) {
        uint64_t bytes = 1234;
        EXPECT_EQ(sp_config_parse_bytes(c.text, &bytes), 0) << "'" << c.text << "'";
        EXPECT_EQ(bytes, c.bytes) << "'" << c.text << "'";
    }
    for (const char *bad :
         {"", " 1", "kb", "1 k b", "1kbb", "1.5k", "-1", "+1", "1 2", "0x10", "1e3", "1p", "1 ms",
          "18446744073709551616", "16777216tb", "99999999999999999999999b"}) {
        uint64_t bytes = 1234;
        EXPECT_EQ(sp_config_parse_bytes(bad, &bytes), -SPATE_EPARSE) << "'" << bad << "'";
        EXPECT_EQ(bytes, 1234u) << "'" << bad << "'";
    }
}

TEST(ConfigValues, DurationUnits)
{
    struct {
        const char *text;
        int64_t ms;
    } ok[] = {
        {"0", 0},
        {"500", 500},
        {"500ms", 500},
        {"500 ms", 500},
        {"1 milli", 1},
        {"2 millis", 2},
        {"3 millisecond", 3},
        {"4 MILLISECONDS", 4},
        {"10s", 10000},
        {"10 sec", 10000},
        {"10 secs", 10000},
        {"1 second", 1000},
        {"2 Seconds", 2000},
        {"3min", 180000},
        {"3 m", 180000},
        {"1 minute", 60000},
        {"2 minutes", 120000},
        {"1h", 3600000},
        {"1 hour", 3600000},
        {"2 hours", 7200000},
        {"1d", 86400000},
        {"1 day", 86400000},
        {"7 days", 7 * 86400000ll},
        {"9223372036854775807", INT64_MAX},
        {"9223372036854775 ms", 9223372036854775ll},
    };
    for (const auto &c : ok) {
        int64_t ms = 1234;
        EXPECT_EQ(sp_config_parse_duration_ms(c.text, &ms), 0) << "'" << c.text << "'";
        EXPECT_EQ(ms, c.ms) << "'" << c.text << "'";
    }
    for (const char *bad : {"", "ms", " 5s", "1.5s", "-1s", "5 x", "5 sx", "10us", "10ns", "1 week",
                            "9223372036854775808", "9223372036854775807s", "1 s 2"}) {
        int64_t ms = 1234;
        EXPECT_EQ(sp_config_parse_duration_ms(bad, &ms), -SPATE_EPARSE) << "'" << bad << "'";
        EXPECT_EQ(ms, 1234) << "'" << bad << "'";
    }
}

TEST(ConfigValues, LongValuesAreRefusedAndCutInMessages)
{
    ConfigPtr cfg(test_keys, test_key_count);
    spate_error err{};
    std::string fits(SPATE_CONFIG_VALUE_MAX - 1, 'v');
    EXPECT_EQ(spate_config_set(cfg, "t.string", fits.c_str(), "api", &err), 0);
    EXPECT_EQ(std::string(spate_config_get_string(cfg, "t.string")), fits);

    std::string too_long(SPATE_CONFIG_VALUE_MAX, 'v');
    EXPECT_EQ(spate_config_set(cfg, "t.string", too_long.c_str(), "api", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "api: t.string: value is longer than 4095 characters");
    std::string kv = "t.string=" + too_long;
    EXPECT_EQ(spate_config_set_kv(cfg, kv.c_str(), &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "-D: t.string: value is longer than 4095 characters");
    std::string yaml = "t.string: " + too_long + "\n";
    EXPECT_EQ(spate_config_load_string(cfg, yaml.c_str(), "l.yaml", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "l.yaml:1: t.string: value is longer than 4095 characters");

    // A long bad value is echoed cut short so that the message stays readable.
    std::string junk(1000, 'x');
    EXPECT_EQ(spate_config_set(cfg, "t.int", junk.c_str(), "api", &err), -SPATE_ECONFIG);
    EXPECT_CONTAINS(err.message, "got '" + std::string(64, 'x') + "...'");
    EXPECT_LT(std::strlen(err.message), 200u);
}

TEST(ConfigValues, GetCpusCopiesAtMostCapAndReturnsTheCount)
{
    ConfigPtr cfg;
    spate_error err{};
    ASSERT_EQ(spate_config_set(cfg, "shards.cpus", "0-3, 6 ,8-9", "api", &err), 0) << err.message;
    int cpus[4] = {-1, -1, -1, -1};
    EXPECT_EQ(spate_config_get_cpus(cfg, "shards.cpus", cpus, 3), 7);
    EXPECT_EQ(cpus[0], 0);
    EXPECT_EQ(cpus[2], 2);
    EXPECT_EQ(cpus[3], -1);
    EXPECT_EQ(spate_config_get_cpus(cfg, "shards.cpus", nullptr, 0), 7);
    EXPECT_EQ(cpus_of(cfg, "shards.cpus"), (std::vector<int>{0, 1, 2, 3, 6, 8, 9}));
}

// ---- unknown keys ---------------------------------------------------------

TEST(ConfigKeys, UnknownKeySuggestsTheNearest)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_set(cfg, "shards.cont", "4", "api", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "api: unknown key 'shards.cont' (did you mean 'shards.count'?)");

    EXPECT_EQ(spate_config_set_kv(cfg, "shards.busypoll=true", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message,
                 "-D: unknown key 'shards.busypoll' (did you mean 'shards.busy-poll'?)");

    EXPECT_EQ(spate_config_load_string(cfg, "# shards\nshards:\n  cont: 4\n", "conf.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_STREQ(err.message,
                 "conf.yaml:3: unknown key 'shards.cont' (did you mean 'shards.count'?)");

    // A group name points at a key inside it.
    EXPECT_EQ(spate_config_load_string(cfg, "shards.ring: 64\n", "conf.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_STREQ(err.message,
                 "conf.yaml:1: unknown key 'shards.ring' (did you mean 'shards.ring.capacity'?)");

    // Nothing close: no suggestion.
    EXPECT_EQ(spate_config_load_string(cfg, "kafka:\n  brokers: x\n", "conf.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "conf.yaml:2: unknown key 'kafka.brokers'");
    EXPECT_FALSE(spate_config_is_set(cfg, "shards.count"));
}

TEST(ConfigKeys, OverlongKeysAreRefused)
{
    ConfigPtr cfg;
    spate_error err{};
    std::string key(SPATE_CONFIG_KEY_MAX + 10, 'k');
    EXPECT_EQ(spate_config_set(cfg, key.c_str(), "1", "api", &err), -SPATE_ECONFIG);
    EXPECT_CONTAINS(err.message, "api: unknown key '" + std::string(64, 'k') + "...'");

    std::string kv = key + "=1";
    EXPECT_EQ(spate_config_set_kv(cfg, kv.c_str(), &err), -SPATE_ECONFIG);
    EXPECT_CONTAINS(err.message, "-D: key '");
    EXPECT_CONTAINS(err.message, "' is longer than 127 characters");

    std::string yaml = "shards:\n  " + key + ": 1\n";
    EXPECT_EQ(spate_config_load_string(cfg, yaml.c_str(), "k.yaml", &err), -SPATE_ECONFIG);
    EXPECT_CONTAINS(err.message, "k.yaml:2: key 'shards.kkk");
    EXPECT_CONTAINS(err.message, "' is longer than 127 characters");

    // Deep nesting is bounded by the key length, whatever the depth.
    std::string deep;
    for (int i = 0; i < 200; i++)
        deep += "a: {";
    deep += "b: 1";
    for (int i = 0; i < 200; i++)
        deep += "}";
    EXPECT_EQ(spate_config_load_string(cfg, deep.c_str(), "deep.yaml", &err), -SPATE_ECONFIG);
    EXPECT_CONTAINS(err.message, "is longer than 127 characters");
}

// ---- YAML shape -------------------------------------------------------------

TEST(ConfigYaml, MalformedYamlGivesLineColumnAndLibyamlProblem)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_load_string(cfg, "a: b: c\n", "conf.yaml", &err), -SPATE_EPARSE);
    EXPECT_EQ(err.code, -SPATE_EPARSE);
    EXPECT_STREQ(err.message,
                 "conf.yaml:1:5: malformed YAML: mapping values are not allowed in this context");

    EXPECT_EQ(spate_config_load_string(cfg, "shards.count: 4\nshards: [1, 2\n", "conf.yaml", &err),
              -SPATE_EPARSE);
    EXPECT_CONTAINS(err.message, "conf.yaml:");
    EXPECT_CONTAINS(err.message, ": malformed YAML: did not find expected ',' or ']'");
    EXPECT_TRUE(one_line(err.message));
    // Nothing from before the syntax error is applied.
    EXPECT_FALSE(spate_config_is_set(cfg, "shards.count"));

    EXPECT_EQ(spate_config_load_string(cfg, "shards:\n  count: 4\n bad\n", "i.yaml", &err),
              -SPATE_EPARSE);
    EXPECT_CONTAINS(err.message, "i.yaml:");
    EXPECT_CONTAINS(err.message, ": malformed YAML: ");

    EXPECT_EQ(spate_config_load_string(cfg, "a: \"unterminated\n", "q.yaml", &err), -SPATE_EPARSE);
    EXPECT_CONTAINS(err.message, "q.yaml:");
    EXPECT_CONTAINS(err.message, "malformed YAML: found unexpected end of stream");
}

TEST(ConfigYaml, InvalidEncodingIsMalformed)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_load_string(cfg, "shards.count: \xff\xfe\n", "u.yaml", &err),
              -SPATE_EPARSE);
    EXPECT_CONTAINS(err.message, "u.yaml: malformed YAML at byte 14: ");
}

TEST(ConfigYaml, TopLevelMustBeAMapping)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_load_string(cfg, "- 1\n- 2\n", "list.yaml", &err), -SPATE_EPARSE);
    EXPECT_STREQ(err.message, "list.yaml:1: the top level must be a mapping of keys, got a list");
    EXPECT_EQ(spate_config_load_string(cfg, "# hi\njust text\n", "s.yaml", &err), -SPATE_EPARSE);
    EXPECT_STREQ(err.message, "s.yaml:2: the top level must be a mapping of keys, got a scalar");
    EXPECT_EQ(spate_config_load_string(cfg, "42", "n.yaml", &err), -SPATE_EPARSE);
    EXPECT_STREQ(err.message, "n.yaml:1: the top level must be a mapping of keys, got a scalar");
}

TEST(ConfigYaml, EmptyFilesHaveNoKeys)
{
    ConfigPtr cfg;
    spate_error err{};
    for (const char *empty : {"", "\n\n", "# only a comment\n", "---\n", "--- \n...\n", "{}\n"}) {
        EXPECT_EQ(spate_config_load_string(cfg, empty, "e.yaml", &err), 0)
            << "'" << empty << "': " << err.message;
    }
    EXPECT_FALSE(spate_config_is_set(cfg, "shards.count"));
}

TEST(ConfigYaml, OneDocumentOnly)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(
        spate_config_load_string(cfg, "shards.count: 2\n---\nshards.count: 3\n", "d.yaml", &err),
        -SPATE_EPARSE);
    EXPECT_STREQ(err.message, "d.yaml:2: more than one YAML document; a config is one mapping");
    EXPECT_FALSE(spate_config_is_set(cfg, "shards.count"));
}

TEST(ConfigYaml, AliasesAndComplexKeysAreRefused)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_load_string(cfg, "shards.count: &n 2\nshards.batch.pool-size: *n\n",
                                       "a.yaml", &err),
              -SPATE_EPARSE);
    EXPECT_STREQ(err.message, "a.yaml:2: YAML aliases are not supported");
    EXPECT_EQ(spate_config_load_string(cfg, "? [a, b]\n: 1\n", "c.yaml", &err), -SPATE_EPARSE);
    EXPECT_STREQ(err.message, "c.yaml:1: keys must be scalars, not lists or mappings");
}

TEST(ConfigYaml, EmptyKeysAreRefused)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_load_string(cfg, "\"\": 1\n", "k.yaml", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "k.yaml:1: empty key");
    EXPECT_EQ(spate_config_load_string(cfg, "shards:\n  '': 1\n", "k.yaml", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "k.yaml:2: empty key under 'shards'");
}

TEST(ConfigYaml, ASyntaxErrorWinsOverAnEarlierBadValue)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_load_string(cfg, "shards.count: abc\nshards.pin: [\n", "w.yaml", &err),
              -SPATE_EPARSE);
    EXPECT_CONTAINS(err.message, "w.yaml:");
    EXPECT_CONTAINS(err.message, "malformed YAML");
}

TEST(ConfigYaml, DuplicateKeysAreRefused)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_load_string(cfg, "shards.count: 1\nshards.count: 2\n", "d.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "d.yaml:2: duplicate key 'shards.count' (first set at line 1)");
    // Flat and nested spellings of one key are the same key.
    EXPECT_EQ(spate_config_load_string(cfg, "shards.count: 1\nshards:\n  pin: true\n  count: 2\n",
                                       "d.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "d.yaml:4: duplicate key 'shards.count' (first set at line 1)");
    EXPECT_FALSE(spate_config_is_set(cfg, "shards.count"));
    EXPECT_FALSE(spate_config_is_set(cfg, "shards.pin"));
}

TEST(ConfigYaml, SequencesOnlyForCpulistKeys)
{
    ConfigPtr cfg;
    spate_error err{};
    ASSERT_EQ(spate_config_load_string(cfg, "shards:\n  cpus: [0, 2, 3]\n", "s.yaml", &err), 0)
        << err.message;
    EXPECT_EQ(cpus_of(cfg, "shards.cpus"), (std::vector<int>{0, 2, 3}));
    ASSERT_EQ(spate_config_load_string(cfg, "shards.cpus:\n  - 5\n  - 1\n", "s.yaml", &err), 0)
        << err.message;
    EXPECT_EQ(cpus_of(cfg, "shards.cpus"), (std::vector<int>{5, 1}));
    ASSERT_EQ(spate_config_load_string(cfg, "shards.cpus: 0-3,6\n", "s.yaml", &err), 0)
        << err.message;
    EXPECT_EQ(cpus_of(cfg, "shards.cpus"), (std::vector<int>{0, 1, 2, 3, 6}));

    EXPECT_EQ(spate_config_load_string(cfg, "shards:\n  count: [1]\n", "s.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_STREQ(err.message,
                 "s.yaml:2: shards.count: a list is only accepted for cpulist keys, not for type "
                 "int");
    EXPECT_EQ(spate_config_load_string(cfg, "shards.cpus: [0, x]\n", "s.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "s.yaml:1: shards.cpus: list item 'x' is not a CPU id");
    EXPECT_EQ(spate_config_load_string(cfg, "shards.cpus: [0, 1-2]\n", "s.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "s.yaml:1: shards.cpus: list item '1-2' is not a CPU id");
    EXPECT_EQ(spate_config_load_string(cfg, "shards.cpus: [4, 0, 4]\n", "s.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_CONTAINS(err.message, "s.yaml:1: shards.cpus: bad CPU list '4,0,4'");
    EXPECT_CONTAINS(err.message, "CPU 4 is listed twice");
    EXPECT_EQ(spate_config_load_string(cfg, "shards.cpus: [0, 5000]\n", "s.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_CONTAINS(err.message, "s.yaml:1: shards.cpus: bad CPU list '0,5000'");
    EXPECT_CONTAINS(err.message, "CPU id above 4095");
    EXPECT_EQ(spate_config_load_string(cfg, "shards.cpus: []\n", "s.yaml", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "s.yaml:1: shards.cpus: value is empty");
    EXPECT_EQ(spate_config_load_string(cfg, "shards.cpus: [0, [1]]\n", "s.yaml", &err),
              -SPATE_ECONFIG);
    EXPECT_STREQ(err.message,
                 "s.yaml:1: shards.cpus: list items must be CPU ids, not lists or mappings");
    EXPECT_EQ(spate_config_load_string(cfg, "bogus: [1]\n", "s.yaml", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "s.yaml:1: unknown key 'bogus'");
    // Every failure above left the last good value.
    EXPECT_EQ(cpus_of(cfg, "shards.cpus"), (std::vector<int>{0, 1, 2, 3, 6}));
}

// ---- files, overrides, origins ----------------------------------------------

TEST(ConfigFile, NestedAndFlatFilesGiveTheSameValues)
{
    TempDir dir;
    std::string nested = dir.write("nested.yaml", "# nested form\n"
                                                  "shards:\n"
                                                  "  count: 4\n"
                                                  "  cpus: [0, 2, 4, 6]\n"
                                                  "  pin: false\n"
                                                  "  busy-poll: true\n"
                                                  "  task-quota-ms: 0.25\n"
                                                  "  stall-detector:\n"
                                                  "    factor: 8\n"
                                                  "  ring:\n"
                                                  "    capacity: 4096\n"
                                                  "  batch:\n"
                                                  "    size: 1 mb\n"
                                                  "    pool-size: 512\n"
                                                  "  wakeup: eventfd\n"
                                                  "  shutdown-timeout-ms: 2500\n");
    std::string flat = dir.write("flat.yaml", "shards.count: 4\n"
                                              "shards.cpus: 0,2,4,6\n"
                                              "shards.pin: false\n"
                                              "shards.busy-poll: true\n"
                                              "shards.task-quota-ms: 0.25\n"
                                              "shards.stall-detector.factor: 8\n"
                                              "shards.ring.capacity: 4096\n"
                                              "shards.batch.size: 1mb\n"
                                              "shards.batch.pool-size: 512\n"
                                              "shards.wakeup: eventfd\n"
                                              "shards.shutdown-timeout-ms: 2500\n");
    std::string mixed = dir.write("mixed.yaml", "shards.count: 4\n"
                                                "shards:\n"
                                                "  cpus: \"0,2,4,6\"\n"
                                                "  pin: false\n"
                                                "  busy-poll: true\n"
                                                "shards.task-quota-ms: 0.25\n"
                                                "shards.stall-detector: {factor: 8}\n"
                                                "shards.ring: {capacity: 4096}\n"
                                                "shards.batch:\n"
                                                "  size: 1048576\n"
                                                "  pool-size: 512\n"
                                                "shards: {wakeup: eventfd, shutdown-timeout-ms: "
                                                "2500}\n");
    for (const std::string &path : {nested, flat, mixed}) {
        SCOPED_TRACE(path);
        ConfigPtr cfg;
        spate_error err{};
        ASSERT_EQ(spate_config_load_file(cfg, path.c_str(), &err), 0) << err.message;
        EXPECT_EQ(spate_config_get_int(cfg, "shards.count"), 4);
        EXPECT_EQ(cpus_of(cfg, "shards.cpus"), (std::vector<int>{0, 2, 4, 6}));
        EXPECT_FALSE(spate_config_get_bool(cfg, "shards.pin"));
        EXPECT_TRUE(spate_config_get_bool(cfg, "shards.busy-poll"));
        EXPECT_DOUBLE_EQ(spate_config_get_double(cfg, "shards.task-quota-ms"), 0.25);
        EXPECT_DOUBLE_EQ(spate_config_get_double(cfg, "shards.stall-detector.factor"), 8.0);
        EXPECT_EQ(spate_config_get_int(cfg, "shards.ring.capacity"), 4096);
        EXPECT_EQ(spate_config_get_bytes(cfg, "shards.batch.size"), 1u << 20);
        EXPECT_EQ(spate_config_get_int(cfg, "shards.batch.pool-size"), 512);
        EXPECT_STREQ(spate_config_get_enum(cfg, "shards.wakeup"), "eventfd");
        EXPECT_EQ(spate_config_get_int(cfg, "shards.shutdown-timeout-ms"), 2500);
        EXPECT_TRUE(spate_config_is_set(cfg, "shards.wakeup"));
    }
}

TEST(ConfigFile, OriginsNameFileAndLine)
{
    TempDir dir;
    std::string path = dir.write("conf.yaml", "# top\nshards:\n  count: 3\n\n  batch:\n"
                                              "    size: 128kb\n");
    ConfigPtr cfg;
    spate_error err{};
    ASSERT_EQ(spate_config_load_file(cfg, path.c_str(), &err), 0) << err.message;
    EXPECT_EQ(std::string(spate_config_origin(cfg, "shards.count")), path + ":3");
    EXPECT_EQ(std::string(spate_config_origin(cfg, "shards.batch.size")), path + ":6");
    EXPECT_STREQ(spate_config_origin(cfg, "shards.pin"), "default");
    EXPECT_TRUE(spate_config_is_set(cfg, "shards.count"));
    EXPECT_FALSE(spate_config_is_set(cfg, "shards.pin"));

    ASSERT_EQ(spate_config_set(cfg, "shards.pin", "false", "env", &err), 0);
    EXPECT_STREQ(spate_config_origin(cfg, "shards.pin"), "env");
    ASSERT_EQ(spate_config_set(cfg, "shards.busy-poll", "true", nullptr, &err), 0);
    EXPECT_STREQ(spate_config_origin(cfg, "shards.busy-poll"), "API");
    ASSERT_EQ(spate_config_set_kv(cfg, "shards.count=5", &err), 0);
    EXPECT_STREQ(spate_config_origin(cfg, "shards.count"), "-D");

    // Errors from a file name the file and the line of the bad value.
    std::string bad = dir.write("bad.yaml", "shards:\n  pin: true\n  count: abc\n");
    EXPECT_EQ(spate_config_load_file(cfg, bad.c_str(), &err), -SPATE_ECONFIG);
    EXPECT_EQ(std::string(err.message),
              bad + ":3: shards.count: must be an integer between 1 and 256, got 'abc'");
}

TEST(ConfigFile, DefineOverridesAFileValue)
{
    TempDir dir;
    std::string path = dir.write("conf.yaml", "shards:\n  count: 4\n  wakeup: eventfd\n");
    ConfigPtr cfg;
    spate_error err{};
    ASSERT_EQ(spate_config_load_file(cfg, path.c_str(), &err), 0) << err.message;
    EXPECT_EQ(spate_config_get_int(cfg, "shards.count"), 4);
    ASSERT_EQ(spate_config_set_kv(cfg, "shards.count=8", &err), 0) << err.message;
    EXPECT_EQ(spate_config_get_int(cfg, "shards.count"), 8);
    EXPECT_STREQ(spate_config_origin(cfg, "shards.count"), "-D");
    ASSERT_EQ(spate_config_set_kv(cfg, "  shards.wakeup = msg-ring ", &err), 0) << err.message;
    EXPECT_STREQ(spate_config_get_enum(cfg, "shards.wakeup"), "msg-ring");
    ASSERT_EQ(spate_config_set_kv(cfg, "shards.batch.size=2 mb", &err), 0) << err.message;
    EXPECT_EQ(spate_config_get_bytes(cfg, "shards.batch.size"), 2u << 20);

    // A later file overrides earlier sets too (last writer wins).
    std::string again = dir.write("again.yaml", "shards.count: 2\n");
    ASSERT_EQ(spate_config_load_file(cfg, again.c_str(), &err), 0) << err.message;
    EXPECT_EQ(spate_config_get_int(cfg, "shards.count"), 2);
    EXPECT_EQ(std::string(spate_config_origin(cfg, "shards.count")), again + ":1");
}

TEST(ConfigFile, DefineSyntaxErrors)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_set_kv(cfg, "shards.count", &err), -SPATE_EPARSE);
    EXPECT_STREQ(err.message, "-D: expected key=value, got 'shards.count'");
    EXPECT_EQ(spate_config_set_kv(cfg, "=4", &err), -SPATE_EPARSE);
    EXPECT_STREQ(err.message, "-D: expected key=value, got '=4'");
    EXPECT_EQ(spate_config_set_kv(cfg, "shards.count=", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "-D: shards.count: value is empty");
    // Only the first '=' splits: the value may hold more.
    EXPECT_EQ(spate_config_set_kv(cfg, "shards.count=4=5", &err), -SPATE_ECONFIG);
    EXPECT_STREQ(err.message, "-D: shards.count: must be an integer between 1 and 256, got '4=5'");
}

TEST(ConfigFile, LoadIsAllOrNothing)
{
    TempDir dir;
    std::string good = dir.write("good.yaml", "shards.count: 4\nshards.pin: true\n");
    std::string bad = dir.write("bad.yaml", "shards:\n"
                                            "  count: 2\n"
                                            "  pin: false\n"
                                            "  cpus: [1, 2]\n"
                                            "  ring:\n"
                                            "    capacity: 1000\n"
                                            "  wakeup: eventfd\n");
    ConfigPtr cfg;
    spate_error err{};
    ASSERT_EQ(spate_config_load_file(cfg, good.c_str(), &err), 0) << err.message;
    std::string before = describe(cfg);

    EXPECT_EQ(spate_config_load_file(cfg, bad.c_str(), &err), -SPATE_ECONFIG);
    EXPECT_EQ(std::string(err.message),
              bad + ":6: shards.ring.capacity: must be a power of two between 16 and 1048576, "
                    "got '1000'");
    EXPECT_EQ(spate_config_get_int(cfg, "shards.count"), 4);
    EXPECT_TRUE(spate_config_get_bool(cfg, "shards.pin"));
    EXPECT_TRUE(cpus_of(cfg, "shards.cpus").empty());
    EXPECT_STREQ(spate_config_get_enum(cfg, "shards.wakeup"), "auto");
    EXPECT_EQ(std::string(spate_config_origin(cfg, "shards.count")), good + ":1");
    EXPECT_FALSE(spate_config_is_set(cfg, "shards.cpus"));
    EXPECT_EQ(describe(cfg), before);

    // The same for an unknown key and for a syntax error after good keys.
    std::string unknown = dir.write("unknown.yaml", "shards.count: 9\nshards.cnt: 1\n");
    EXPECT_EQ(spate_config_load_file(cfg, unknown.c_str(), &err), -SPATE_ECONFIG);
    std::string broken = dir.write("broken.yaml", "shards.count: 9\nshards.pin: [\n");
    EXPECT_EQ(spate_config_load_file(cfg, broken.c_str(), &err), -SPATE_EPARSE);
    EXPECT_EQ(describe(cfg), before);
}

TEST(ConfigFile, UnreadableFiles)
{
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_load_file(cfg, "/nope.yaml", &err), -ENOENT);
    EXPECT_EQ(err.code, -ENOENT);
    EXPECT_STREQ(err.message, "/nope.yaml: cannot read: No such file or directory");

    TempDir dir;
    EXPECT_EQ(spate_config_load_file(cfg, dir.path().c_str(), &err), -EISDIR);
    EXPECT_EQ(std::string(err.message), dir.path() + ": cannot read: Is a directory");

    if (geteuid() != 0) { // root reads anything
        std::string locked = dir.write("locked.yaml", "shards.count: 1\n");
        ASSERT_EQ(chmod(locked.c_str(), 0), 0);
        EXPECT_EQ(spate_config_load_file(cfg, locked.c_str(), &err), -EACCES);
        EXPECT_EQ(std::string(err.message), locked + ": cannot read: Permission denied");
    }

    std::string big = dir.write("big.yaml", std::string(SP_CONFIG_FILE_BYTES_MAX + 1, '#'));
    EXPECT_EQ(spate_config_load_file(cfg, big.c_str(), &err), -SPATE_ELIMIT);
    EXPECT_CONTAINS(err.message, big + ": cannot read: larger than 1048576 bytes");
    EXPECT_FALSE(spate_config_is_set(cfg, "shards.count"));
}

TEST(ConfigFile, AFileOfExactlyTheLimitLoads)
{
    TempDir dir;
    std::string text = "shards.count: 3\n";
    text += std::string(SP_CONFIG_FILE_BYTES_MAX - text.size() - 1, '#') + "\n";
    ASSERT_EQ(text.size(), (size_t)SP_CONFIG_FILE_BYTES_MAX);
    std::string path = dir.write("edge.yaml", text);
    ConfigPtr cfg;
    spate_error err{};
    EXPECT_EQ(spate_config_load_file(cfg, path.c_str(), &err), 0) << err.message;
    EXPECT_EQ(spate_config_get_int(cfg, "shards.count"), 3);
}

// ---- describe -----------------------------------------------------------------

TEST(ConfigDescribe, ListsEveryKeyWithTypeDefaultValueAndOrigin)
{
    ConfigPtr cfg;
    spate_error err{};
    ASSERT_EQ(spate_config_set_kv(cfg, "shards.ring.capacity=4096", &err), 0);
    std::string out = describe(cfg);

    size_t count = 0;
    const sp_config_key *keys = sp_config_registry(&count);
    for (size_t i = 0; i < count; i++)
        EXPECT_CONTAINS(out, std::string("# ") + keys[i].description + "\n# type: ");
    EXPECT_CONTAINS(out, "# type: int in 1..256, default: none (computed at run time)\n"
                         "# shards.count:  # default: computed at run time\n");
    EXPECT_CONTAINS(out, "# type: cpulist of up to 256 CPUs, default: none");
    EXPECT_CONTAINS(out, "# type: bool, default: true\nshards.pin: true  # default\n");
    EXPECT_CONTAINS(out, "# type: double in (0, 1000], default: 0.5\n"
                         "shards.task-quota-ms: 0.5  # default\n");
    EXPECT_CONTAINS(out, "# type: double in [1, 1000], default: 4\n");
    EXPECT_CONTAINS(out, "# type: int, power of two in 16..1048576, default: 1024\n"
                         "shards.ring.capacity: 4096  # -D\n");
    EXPECT_CONTAINS(out, "# type: bytes in 1kb..16mb, default: 32kb\n"
                         "shards.batch.size: 32kb  # default\n");
    EXPECT_CONTAINS(out, "# type: enum auto|msg-ring|eventfd, default: auto\n"
                         "shards.wakeup: auto  # default\n");
}

TEST(ConfigDescribe, BehavesLikeSnprintf)
{
    ConfigPtr cfg;
    size_t full = spate_config_describe(cfg, nullptr, 0);
    ASSERT_GT(full, 100u);
    std::vector<char> small(40, 'Z');
    EXPECT_EQ(spate_config_describe(cfg, small.data(), small.size()), full);
    EXPECT_EQ(small[39], '\0');
    EXPECT_EQ(std::strlen(small.data()), 39u);
    std::string whole = describe(cfg);
    EXPECT_EQ(whole.size(), full);
    EXPECT_EQ(whole.substr(0, 39), std::string(small.data()));
}

TEST(ConfigDescribe, OutputLoadsBackToTheSameValues)
{
    ConfigPtr cfg(test_keys, test_key_count);
    spate_error err{};
    ASSERT_EQ(spate_config_set(cfg, "t.string", "quote \" back\\slash: # x", "api", &err), 0);
    ASSERT_EQ(spate_config_set(cfg, "t.cpus", "3,0-1", "api", &err), 0);
    ASSERT_EQ(spate_config_set(cfg, "t.bytes", "2 gb", "api", &err), 0);
    std::string out = describe(cfg);

    ConfigPtr back(test_keys, test_key_count);
    ASSERT_EQ(spate_config_load_string(back, out.c_str(), "described", &err), 0)
        << err.message << "\n"
        << out;
    EXPECT_STREQ(spate_config_get_string(back, "t.string"), "quote \" back\\slash: # x");
    EXPECT_EQ(cpus_of(back, "t.cpus"), (std::vector<int>{3, 0, 1}));
    EXPECT_EQ(spate_config_get_bytes(back, "t.bytes"), 2ull << 30);
    EXPECT_EQ(spate_config_get_string(back, "t.unset"), nullptr);
    EXPECT_FALSE(spate_config_is_set(back, "t.unset"));

    ConfigPtr engine;
    std::string engine_out = describe(engine);
    ConfigPtr engine_back;
    EXPECT_EQ(spate_config_load_string(engine_back, engine_out.c_str(), "described", &err), 0)
        << err.message;
}

// ---- programming errors -----------------------------------------------------

TEST(ConfigDeathTest, GettersAbortOnUnknownKeyOrWrongType)
{
    ConfigPtr cfg;
    EXPECT_DEATH(spate_config_get_int(cfg, "shards.nope"), "unknown config key 'shards.nope'");
    EXPECT_DEATH(spate_config_get_bool(cfg, "shards.count"),
                 "config key 'shards.count' has type int, not bool");
    EXPECT_DEATH(spate_config_get_string(cfg, "shards.wakeup"), "has type enum, not string");
}

// tests/common/temp_dir.h - a mkdtemp directory for tests that use real
// files; removed with everything in it when the object goes.
#ifndef SPATE_TESTS_TEMP_DIR_H
#define SPATE_TESTS_TEMP_DIR_H

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <stdlib.h>

class TempDir {
  public:
    TempDir()
    {
        namespace fs = std::filesystem;
        std::string tmpl = (fs::temp_directory_path() / "spate-test-XXXXXX").string();
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        const char *d = mkdtemp(buf.data());
        EXPECT_NE(nullptr, d) << std::strerror(errno);
        path_ = d ? d : "";
    }
    ~TempDir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;

    // Writes `content` to <dir>/<name> (creating parent directories) and
    // returns the file's path.
    std::string file(const std::string &name, const std::string &content) const
    {
        std::filesystem::path p = std::filesystem::path(path_) / name;
        std::filesystem::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary) << content;
        return p.string();
    }
    const std::string &path() const { return path_; }

  private:
    std::string path_;
};

inline std::string slurp(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

#endif

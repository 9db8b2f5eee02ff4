// What apiserver's clients on the same machine find where: its default port
// and the files it keeps under the agent's data_dir (the administrator's
// token, the CA clients verify it with). The apiserver plugin writes them and
// `kedge config init` reads them, both through these names.
#pragma once

#include <cstdint>
#include <filesystem>

namespace kedge::contracts::apiserver {

// The HTTPS port, as kube-apiserver's (a TOML literal for the schema, and
// the number it stands for).
inline constexpr const char* kDefaultPortToml = "6443";
inline constexpr int64_t kDefaultPort = 6443;
static_assert(kDefaultPortToml[0] - '0' == kDefaultPort / 1000 &&
                  kDefaultPortToml[3] - '0' == kDefaultPort % 10,
              "the two spellings of the default port disagree");

// <data_dir>/apiserver: apiserver's own files.
inline std::filesystem::path files_dir(const std::filesystem::path& data_dir) {
  return data_dir / "apiserver";
}
// The administrator's bearer token, created at first start.
inline std::filesystem::path admin_token_file(const std::filesystem::path& data_dir) {
  return files_dir(data_dir) / "admin.token";
}
// The cloud CA's certificate, for clients to verify the API with.
inline std::filesystem::path ca_file(const std::filesystem::path& data_dir) {
  return files_dir(data_dir) / "ca.crt";
}

}  // namespace kedge::contracts::apiserver

#include "config/load.h"

#include <fcntl.h>
#include <yaml-cpp/yaml.h>

#include <exception>

#include "base/unique_fd.h"
#include "config/config_reader.h"
#include "config/yaml_reader.h"

namespace seamless::config {
namespace {

// A config is a few kilobytes; anything this big is a wrong path, not a config.
constexpr std::size_t kMaxConfigBytes = 16 << 20;

Result<std::string> read_file(const std::string& path) {
  const std::string what = "read config " + path;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno(what);
  std::string text;
  char buffer[16384];
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(what);
    if (n == 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > kMaxConfigBytes) {
      return Error::logic(what + ": larger than " + std::to_string(kMaxConfigBytes) + " bytes");
    }
  }
}

// yaml-cpp reports syntax errors by throwing; this is the one place they are caught.
std::optional<Config> parse_document(const std::string& text, Diagnostics& diag) {
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(text);
    if (documents.size() > 1) {
      diag.error(position_of(documents[1].Mark()), "",
                 "expected one YAML document, found " + std::to_string(documents.size()));
      return std::nullopt;
    }
    const YAML::Node root = documents.empty() ? YAML::Node() : documents[0];
    // An empty document has no mark of its own; it starts at the top of the file.
    const Position root_at = root.IsNull() ? Position{} : position_of(root.Mark());
    return ConfigReader(diag).read(Located{root, "", root_at});
  } catch (const YAML::Exception& e) {
    diag.error(position_of(e.mark), "", "invalid YAML: " + e.msg);
  } catch (const std::exception& e) {
    diag.error(Position{}, "", std::string("cannot read YAML: ") + e.what());
  }
  return std::nullopt;
}

}  // namespace

ConfigParse parse_config(std::string_view yaml_text, std::string_view file_name) {
  Diagnostics diag(file_name);
  std::optional<Config> config = parse_document(std::string(yaml_text), diag);
  if (diag.has_errors() || !config) return ConfigParse{std::nullopt, diag.sorted_messages()};
  return ConfigParse{std::move(config), {}};
}

Result<Config> load_config_file(const std::string& path) {
  Result<std::string> text = read_file(path);
  if (!text) return text.error();
  ConfigParse parsed = parse_config(*text, path);
  if (parsed.ok()) return std::move(*parsed.config);
  std::string message;
  for (const std::string& error : parsed.errors) {
    if (!message.empty()) message += '\n';
    message += error;
  }
  return Error::logic(std::move(message));
}

}  // namespace seamless::config

#include "config/load.h"

#include <fcntl.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <exception>
#include <sstream>

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

// Sees where each YAML document starts, and nothing else.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> marks;
};

// A config file is one YAML document. YAML::LoadAll cannot tell us whether there
// is a second one: on some inputs (a stray ',' after a document) yaml-cpp 0.7 keeps
// reporting new empty documents without consuming anything, and LoadAll allocates
// until memory runs out (found by the fuzzer). So count with a bounded loop first,
// then build the one document with YAML::Load. Throws YAML::Exception on bad syntax.
bool has_second_document(const std::string& text, Position& second_at) {
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts starts;
  int documents = 0;
  while (documents < 2 && parser.HandleNextDocument(starts)) ++documents;
  if (starts.marks.size() < 2) return false;
  second_at = position_of(starts.marks[1]);
  return true;
}

// yaml-cpp reports syntax errors by throwing; this is the one place they are caught.
std::optional<Config> parse_document(const std::string& text, Diagnostics& diag) {
  try {
    Position second_at;
    if (has_second_document(text, second_at)) {
      diag.error(second_at, "", "expected one YAML document, but another starts here");
      return std::nullopt;
    }
    const YAML::Node root = YAML::Load(text);
    // An empty document has no mark of its own; it starts at the top of the file.
    const Position root_at = root.IsNull() ? Position{} : position_of(root.Mark());
    return ConfigReader(diag).read(Located{root, "", root_at});
  } catch (const YAML::DeepRecursion& e) {
    // Its own message says "bad file" (yaml-cpp 0.7); say what is wrong instead.
    diag.error(position_of(e.mark), "",
               "invalid YAML: nested more than " + std::to_string(e.depth() - 1) + " levels deep");
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

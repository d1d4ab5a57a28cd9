// Result<T>: a value or an Error. Errors are values, never exceptions, and carry
// both the errno (0 when there is none) and the context a human needs to act.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace seamless {

struct Error {
  int code = 0;         // errno, or 0 for a logical error
  std::string message;  // "restore 198.18.1.2:41122 -> 198.18.2.2:7001: bind: Address in use"

  // An error from the errno of a failed syscall, e.g. from_errno("bind").
  static Error from_errno(const std::string& what, int err = errno) {
    return Error{err, what + ": " + std::strerror(err)};
  }
  static Error logic(std::string message) { return Error{0, std::move(message)}; }

  // Prefixes context while the error travels up: "dump fd 7: " + inner message.
  Error context(const std::string& outer) const& { return Error{code, outer + ": " + message}; }
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}       // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}   // NOLINT: implicit by design

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace seamless

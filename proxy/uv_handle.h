// UvHandle<T>: the one owner of a libuv handle (uv_poll_t, uv_timer_t, ...).
//
// libuv closes handles asynchronously: uv_close() stops the handle at once, but its
// memory must stay valid until the close callback runs on a later loop turn. So the
// handle lives on the heap, and close() (or the destructor) hands that memory to the
// close callback, which frees it and then runs an optional continuation. The owner
// may be destroyed right after close(): nothing in the callback refers back to it.
//
// Use:  UvHandle<uv_timer_t> t;  t.init(uv_timer_init(loop, t.get()));
//       t.get()->data = owner;   // for the handle's own callbacks
//       t.close([] { /* handle memory is gone; now close the fd */ });
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <utility>

namespace seamless::proxy {

template <typename T>
class UvHandle {
 public:
  UvHandle() : handle_(new T{}) {}
  ~UvHandle() { close(nullptr); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  UvHandle(UvHandle&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)),
        initialized_(std::exchange(other.initialized_, false)) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      close(nullptr);
      handle_ = std::exchange(other.handle_, nullptr);
      initialized_ = std::exchange(other.initialized_, false);
    }
    return *this;
  }

  T* get() const { return handle_; }
  uv_handle_t* base() const { return reinterpret_cast<uv_handle_t*>(handle_); }
  // True once the uv_*_init call succeeded and until close().
  bool initialized() const { return initialized_ && handle_ != nullptr; }

  // Records the result of the uv_*_init call made on get(); returns it unchanged.
  int init(int rc) {
    initialized_ = rc == 0;
    return rc;
  }

  // Closes the handle; `done` runs once libuv no longer uses its memory. A handle that
  // was never initialized has nothing to wait for: `done` runs at once. After close()
  // this object is empty (get() is null); calling close() again only runs `done`.
  void close(std::function<void()> done) {
    T* handle = std::exchange(handle_, nullptr);
    const bool initialized = std::exchange(initialized_, false);
    if (handle == nullptr || !initialized) {
      delete handle;
      if (done) done();
      return;
    }
    uv_handle_t* base = reinterpret_cast<uv_handle_t*>(handle);
    // The handle no longer calls back into its owner, so `data` can carry the
    // continuation to the close callback.
    base->data = done ? new std::function<void()>(std::move(done)) : nullptr;
    uv_close(base, &UvHandle::on_closed);
  }

 private:
  static void on_closed(uv_handle_t* base) {
    std::unique_ptr<std::function<void()>> done(static_cast<std::function<void()>*>(base->data));
    delete reinterpret_cast<T*>(base);
    if (done && *done) (*done)();
  }

  T* handle_;
  bool initialized_ = false;
};

}  // namespace seamless::proxy

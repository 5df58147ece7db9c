#pragma once

// One immutable, reference-counted byte buffer: the body of a published message, shared
// by every subscriber it is delivered to. One allocation holds the count, the size and
// the bytes, so fanning a message out to N subscribers costs one allocation, not N.

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

namespace tidings::broker {

class shared_body {
 public:
  shared_body() noexcept = default;

  // A buffer of `size` bytes for the caller to fill through data() before sharing it.
  static shared_body allocate(std::size_t size) {
    void* memory = std::malloc(sizeof(header) + size);
    if (memory == nullptr) throw std::bad_alloc();
    return shared_body(new (memory) header{{1}, size});
  }

  static shared_body copy_of(std::string_view bytes) {
    shared_body body = allocate(bytes.size());
    std::memcpy(body.data(), bytes.data(), bytes.size());
    return body;
  }

  shared_body(const shared_body& other) noexcept : header_(other.header_) {
    if (header_ != nullptr) header_->references.fetch_add(1, std::memory_order_relaxed);
  }
  shared_body(shared_body&& other) noexcept : header_(std::exchange(other.header_, nullptr)) {}
  shared_body& operator=(shared_body other) noexcept {
    std::swap(header_, other.header_);
    return *this;
  }
  ~shared_body() { release(); }

  // Writable only while the caller is the sole owner (before the first copy).
  char* data() noexcept { return reinterpret_cast<char*>(header_ + 1); }
  const char* data() const noexcept { return reinterpret_cast<const char*>(header_ + 1); }
  std::size_t size() const noexcept { return header_ == nullptr ? 0 : header_->size; }
  std::string_view view() const noexcept { return {data(), size()}; }
  explicit operator bool() const noexcept { return header_ != nullptr; }

 private:
  struct header {
    std::atomic<std::size_t> references;
    std::size_t size;
  };

  explicit shared_body(header* h) noexcept : header_(h) {}

  void release() noexcept {
    if (header_ != nullptr && header_->references.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      header_->~header();
      std::free(header_);
    }
  }

  header* header_ = nullptr;
};

}  // namespace tidings::broker

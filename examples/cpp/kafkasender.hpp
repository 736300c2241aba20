// A small header-only C++17 wrapper over the kafkasender C API: RAII handles, exceptions,
// std::function callbacks. Copy it into your project; it is an example, not a second API.
#pragma once

#include <kafkasender.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kafkasender {

/// Every failure, with the C status it came from.
class Error : public std::runtime_error {
 public:
  Error(ks_status status, const std::string &what) : std::runtime_error(what), status_(status) {}
  ks_status status() const noexcept { return status_; }

 private:
  ks_status status_;
};

inline void check(ks_status status) {
  if (status != KS_STATUS_OK) throw Error(status, ks_last_error());  // the message starts with the kind
}

/// What happened to one message (a copy: it outlives the callback).
struct Report {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  ks_status status = KS_STATUS_OK;
  std::string error;
  bool delivered() const noexcept { return status == KS_STATUS_OK; }
};

class Config {
 public:
  Config() : config_(ks_config_new(), ks_config_free) {}
  static Config from_env() { return Config(ks_config_from_env()); }
  Config &set(const std::string &key, const std::string &value) {
    check(ks_config_set(config_.get(), key.c_str(), value.c_str()));
    return *this;
  }
  const ks_config *get() const noexcept { return config_.get(); }

 private:
  explicit Config(ks_config *config) : config_(config, ks_config_free) {}
  std::unique_ptr<ks_config, decltype(&ks_config_free)> config_;
};

struct Message {
  std::string topic;
  std::string_view key;
  std::string_view value;
  std::vector<std::pair<std::string, std::string>> headers;
};

class Producer {
 public:
  using Callback = std::function<void(const Report &)>;

  explicit Producer(const Config &config) {
    ks_producer *producer = nullptr;
    check(ks_producer_new(config.get(), &producer));
    producer_.reset(producer);
  }

  /// Sends; `callback` runs exactly once on the delivery thread. Exceptions it throws are dropped.
  void send(const Message &message, Callback callback) {
    std::vector<ks_header> headers;
    for (const auto &[k, v] : message.headers)
      headers.push_back({k.c_str(), reinterpret_cast<const uint8_t *>(v.data()), v.size()});
    ks_message m{};
    m.topic = message.topic.c_str();
    m.key = reinterpret_cast<const uint8_t *>(message.key.data());
    m.key_len = message.key.size();
    m.value = reinterpret_cast<const uint8_t *>(message.value.data());
    m.value_len = message.value.size();
    m.headers = headers.empty() ? nullptr : headers.data();
    m.headers_len = headers.size();
    // The finalizer deletes the callback once kafkasender is done with it, whatever happens.
    check(ks_producer_send(producer_.get(), &m, &Producer::trampoline, new Callback(std::move(callback)),
                           &Producer::release));
  }

  void flush(uint32_t timeout_ms) { check(ks_producer_flush(producer_.get(), timeout_ms)); }
  uint64_t close(uint32_t timeout_ms) {
    uint64_t purged = 0;
    check(ks_producer_close(producer_.get(), timeout_ms, &purged));
    return purged;
  }

 private:
  static void trampoline(const ks_delivery_report *r, void *user_data) {
    Report report{r->topic, r->partition, r->offset, r->status, r->error ? r->error : ""};
    try {
      (*static_cast<Callback *>(user_data))(report);
    } catch (...) {
      // Never let an exception unwind into C.
    }
  }
  static void release(void *user_data) { delete static_cast<Callback *>(user_data); }
  std::unique_ptr<ks_producer, decltype(&ks_producer_free)> producer_{nullptr, ks_producer_free};
};

class MockCluster {
 public:
  explicit MockCluster(uint16_t brokers) {
    ks_mock_cluster *cluster = nullptr;
    check(ks_mock_cluster_new(brokers, &cluster));
    cluster_.reset(cluster);
  }
  std::string bootstrap_servers() const { return ks_mock_cluster_bootstrap_servers(cluster_.get()); }

 private:
  std::unique_ptr<ks_mock_cluster, decltype(&ks_mock_cluster_free)> cluster_{nullptr, ks_mock_cluster_free};
};

}  // namespace kafkasender

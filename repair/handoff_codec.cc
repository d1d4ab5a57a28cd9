#include "repair/handoff_codec.h"

#include <sys/socket.h>

#include <limits>
#include <numeric>

#include "handoff.pb.h"
#include "repair/handoff_format.h"

namespace seamless::repair::handoff {
namespace {

std::string serialize(const google::protobuf::MessageLite& message) {
  std::string out;
  message.SerializeToString(&out);
  return out;
}

// ---- endpoints and images -------------------------------------------------------

Status encode_endpoint(const Endpoint& in, pb::Endpoint* out) {
  if (in.family == AF_INET) {
    out->set_family(pb::ADDRESS_FAMILY_IPV4);
    out->set_address(in.addr.data(), 4);
  } else if (in.family == AF_INET6) {
    out->set_family(pb::ADDRESS_FAMILY_IPV6);
    out->set_address(in.addr.data(), in.addr.size());
  } else {
    return Error::logic("address family " + std::to_string(in.family) + " is not IPv4/IPv6");
  }
  out->set_port(in.port);
  out->set_scope_id(in.scope_id);
  return {};
}

Result<Endpoint> decode_endpoint(const pb::Endpoint& in) {
  Endpoint out;
  size_t size = 0;
  switch (in.family()) {
    case pb::ADDRESS_FAMILY_IPV4:
      out.family = AF_INET;
      size = 4;
      break;
    case pb::ADDRESS_FAMILY_IPV6:
      out.family = AF_INET6;
      size = 16;
      break;
    default:
      return Error::logic("unknown address family " + std::to_string(in.family()));
  }
  if (in.address().size() != size) {
    return Error::logic("address of " + std::to_string(in.address().size()) + " bytes, want " +
                        std::to_string(size));
  }
  if (in.port() > std::numeric_limits<uint16_t>::max()) {
    return Error::logic("port " + std::to_string(in.port()) + " out of range");
  }
  std::copy(in.address().begin(), in.address().end(), out.addr.begin());
  out.port = static_cast<uint16_t>(in.port());
  out.scope_id = in.scope_id();
  return out;
}

bool is_known_state(uint32_t state) {
  switch (static_cast<TcpState>(state)) {
    case TcpState::kEstablished:
    case TcpState::kFinWait1:
    case TcpState::kFinWait2:
    case TcpState::kCloseWait:
    case TcpState::kLastAck:
    case TcpState::kClosing:
      return true;
  }
  return false;
}

Status encode_image(const SocketImage& in, pb::SocketImage* out) {
  if (Status s = encode_endpoint(in.local, out->mutable_local()); !s.ok()) {
    return s.error().context("local address");
  }
  if (Status s = encode_endpoint(in.peer, out->mutable_peer()); !s.ok()) {
    return s.error().context("peer address");
  }
  out->set_state(static_cast<uint32_t>(in.state));
  out->set_send_seq(in.send_seq);
  out->set_send_queue_len(in.send_queue.size());
  out->set_send_unsent(in.send_unsent);
  out->set_fin_unsent(in.fin_unsent);
  out->set_recv_seq(in.recv_seq);
  out->set_recv_queue_len(in.recv_queue.size());

  pb::NegotiatedOptions* tcp = out->mutable_tcp();
  tcp->set_mss(in.tcp.mss);
  tcp->set_sack(in.tcp.sack);
  tcp->set_timestamps(in.tcp.timestamps);
  tcp->set_window_scaling(in.tcp.window_scaling);
  tcp->set_snd_wscale(in.tcp.snd_wscale);
  tcp->set_rcv_wscale(in.tcp.rcv_wscale);
  tcp->set_timestamp(in.tcp.timestamp);

  pb::RepairWindow* window = out->mutable_window();
  window->set_snd_wl1(in.window.snd_wl1);
  window->set_snd_wnd(in.window.snd_wnd);
  window->set_max_window(in.window.max_window);
  window->set_rcv_wnd(in.window.rcv_wnd);
  window->set_rcv_wup(in.window.rcv_wup);

  pb::SocketOptions* options = out->mutable_options();
  options->set_nodelay(in.options.nodelay);
  options->set_oobinline(in.options.oobinline);
  options->set_notsent_lowat(in.options.notsent_lowat);
  options->set_keepalive(in.options.keepalive);
  options->set_keepidle(in.options.keepidle);
  options->set_keepintvl(in.options.keepintvl);
  options->set_keepcnt(in.options.keepcnt);
  options->set_v6only(in.options.v6only);
  options->set_mark(in.options.mark);
  return {};
}

Result<uint8_t> narrow_u8(uint32_t value, const char* what) {
  if (value > std::numeric_limits<uint8_t>::max()) {
    return Error::logic(std::string(what) + " " + std::to_string(value) + " out of range");
  }
  return static_cast<uint8_t>(value);
}

Result<SocketImage> decode_image(const pb::SocketImage& in) {
  SocketImage out;
  Result<Endpoint> local = decode_endpoint(in.local());
  if (!local.ok()) return local.error().context("local address");
  Result<Endpoint> peer = decode_endpoint(in.peer());
  if (!peer.ok()) return peer.error().context("peer address");
  if (!is_known_state(in.state())) {
    return Error::logic("TCP state " + std::to_string(in.state()) + " cannot be migrated");
  }
  Result<uint8_t> snd_wscale = narrow_u8(in.tcp().snd_wscale(), "snd_wscale");
  if (!snd_wscale.ok()) return snd_wscale.error();
  Result<uint8_t> rcv_wscale = narrow_u8(in.tcp().rcv_wscale(), "rcv_wscale");
  if (!rcv_wscale.ok()) return rcv_wscale.error();

  out.local = *local;
  out.peer = *peer;
  out.state = static_cast<TcpState>(in.state());
  out.send_seq = in.send_seq();
  out.send_unsent = in.send_unsent();
  out.fin_unsent = in.fin_unsent();
  out.recv_seq = in.recv_seq();

  out.tcp.mss = in.tcp().mss();
  out.tcp.sack = in.tcp().sack();
  out.tcp.timestamps = in.tcp().timestamps();
  out.tcp.window_scaling = in.tcp().window_scaling();
  out.tcp.snd_wscale = *snd_wscale;
  out.tcp.rcv_wscale = *rcv_wscale;
  out.tcp.timestamp = in.tcp().timestamp();

  out.window.snd_wl1 = in.window().snd_wl1();
  out.window.snd_wnd = in.window().snd_wnd();
  out.window.max_window = in.window().max_window();
  out.window.rcv_wnd = in.window().rcv_wnd();
  out.window.rcv_wup = in.window().rcv_wup();

  out.options.nodelay = in.options().nodelay();
  out.options.oobinline = in.options().oobinline();
  out.options.notsent_lowat = in.options().notsent_lowat();
  out.options.keepalive = in.options().keepalive();
  out.options.keepidle = in.options().keepidle();
  out.options.keepintvl = in.options().keepintvl();
  out.options.keepcnt = in.options().keepcnt();
  out.options.v6only = in.options().v6only();
  out.options.mark = in.options().mark();
  return out;
}

// ---- record invariants (shared by writer and reader) ----------------------------

Status check_leg(const std::optional<SocketImage>& leg, const char* name, uint64_t send_len,
                 uint64_t recv_len) {
  if (!leg) {
    if (send_len != 0 || recv_len != 0) {
      return Error::logic(std::string(name) + " leg is absent but has queue bytes");
    }
    return {};
  }
  if (!is_known_state(static_cast<uint32_t>(leg->state))) {
    return Error::logic(std::string(name) + " leg: TCP state " +
                        std::to_string(static_cast<int>(leg->state)) + " cannot be migrated");
  }
  if (leg->send_unsent > send_len) {
    return Error::logic(std::string(name) + " leg: " + std::to_string(leg->send_unsent) +
                        " unsent bytes in a send queue of " + std::to_string(send_len));
  }
  return {};
}

Status check_shape(const PairRecord& record, const QueueLengths& lengths, uint64_t data_len) {
  for (size_t i = 0; i < kQueueCount; ++i) {
    if (lengths[i] > kMaxQueueBytes) {
      return Error::logic(std::string(queue_name(i)) + " of " + std::to_string(lengths[i]) +
                          " bytes exceeds the limit of " + std::to_string(kMaxQueueBytes));
    }
  }
  const uint64_t sum = std::accumulate(lengths.begin(), lengths.end(), uint64_t{0});
  if (data_len < sum || data_len > kMaxRecordData) {
    return Error::logic("data length " + std::to_string(data_len) + " is inconsistent (queues " +
                        std::to_string(sum) + ", limit " + std::to_string(kMaxRecordData) + ")");
  }
  if (Status s = check_leg(record.client, "client", lengths[0], lengths[1]); !s.ok()) return s;
  if (Status s = check_leg(record.backend_socket, "backend", lengths[3], lengths[4]); !s.ok()) {
    return s;
  }
  if (record.header_pending > record.header_len) {
    return Error::logic("PROXY header pending " + std::to_string(record.header_pending) +
                        " > length " + std::to_string(record.header_len));
  }
  if (!record.proxy_header.empty() && record.proxy_header.size() != record.header_len) {
    return Error::logic("PROXY header of " + std::to_string(record.proxy_header.size()) +
                        " bytes, length says " + std::to_string(record.header_len));
  }
  return {};
}

}  // namespace

// ---- queues ---------------------------------------------------------------------

std::array<const std::string*, kQueueCount> record_queues(const PairRecord& r) {
  static const std::string kNone;  // an absent leg's queues are empty
  return {r.client ? &r.client->send_queue : &kNone,
          r.client ? &r.client->recv_queue : &kNone,
          &r.client_unread,
          r.backend_socket ? &r.backend_socket->send_queue : &kNone,
          r.backend_socket ? &r.backend_socket->recv_queue : &kNone,
          &r.backend_unread};
}

std::array<std::string*, kQueueCount> record_queues(PairRecord* r) {
  return {r->client ? &r->client->send_queue : nullptr,
          r->client ? &r->client->recv_queue : nullptr,
          &r->client_unread,
          r->backend_socket ? &r->backend_socket->send_queue : nullptr,
          r->backend_socket ? &r->backend_socket->recv_queue : nullptr,
          &r->backend_unread};
}

const char* queue_name(size_t index) {
  static constexpr const char* kNames[kQueueCount] = {
      "client send queue",  "client receive queue",  "client unread bytes",
      "backend send queue", "backend receive queue", "backend unread bytes"};
  return index < kQueueCount ? kNames[index] : "queue";
}

QueueLengths queue_lengths(const PairRecord& record) {
  QueueLengths lengths{};
  const auto queues = record_queues(record);
  for (size_t i = 0; i < kQueueCount; ++i) lengths[i] = queues[i]->size();
  return lengths;
}

// ---- header ---------------------------------------------------------------------

std::string encode_header(const HandoffHeader& header) {
  pb::Header out;
  out.set_writer_version(header.writer_version);
  out.set_config_digest(header.config_digest);
  out.set_created_at_unix_ms(header.created_at_unix_ms);
  for (const auto& [name, value] : header.counters) {
    pb::Counter* counter = out.add_counters();
    counter->set_name(name);
    counter->set_value(value);
  }
  return serialize(out);
}

Result<HandoffHeader> decode_header(std::string_view message) {
  pb::Header in;
  if (!in.ParseFromArray(message.data(), static_cast<int>(message.size()))) {
    return Error::logic("header message does not parse");
  }
  HandoffHeader out;
  out.writer_version = in.writer_version();
  out.config_digest = in.config_digest();
  out.created_at_unix_ms = in.created_at_unix_ms();
  for (const pb::Counter& counter : in.counters()) {
    if (!out.counters.emplace(counter.name(), counter.value()).second) {
      return Error::logic("header: counter \"" + counter.name() + "\" appears twice");
    }
  }
  return out;
}

// ---- record ---------------------------------------------------------------------

Result<std::string> encode_record(const PairRecord& record) {
  const QueueLengths lengths = queue_lengths(record);
  const uint64_t data_len = std::accumulate(lengths.begin(), lengths.end(), uint64_t{0});
  if (Status s = check_shape(record, lengths, data_len); !s.ok()) return s.error();

  pb::PairRecord out;
  out.set_id(record.id);
  out.set_service(record.service);
  out.set_backend(record.backend);
  if (record.client) {
    if (Status s = encode_image(*record.client, out.mutable_client()); !s.ok()) {
      return s.error().context("client leg");
    }
  }
  if (record.backend_socket) {
    if (Status s = encode_image(*record.backend_socket, out.mutable_backend_socket()); !s.ok()) {
      return s.error().context("backend leg");
    }
  }
  out.set_client_unread_len(record.client_unread.size());
  out.set_backend_unread_len(record.backend_unread.size());
  out.set_flags(record.flags);
  out.set_header_len(record.header_len);
  out.set_header_pending(record.header_pending);
  out.set_proxy_header(record.proxy_header);
  out.set_client_off_w(record.client_off_w);
  out.set_client_off_r(record.client_off_r);
  out.set_backend_off_w(record.backend_off_w);
  out.set_backend_off_r(record.backend_off_r);
  out.set_bytes_client_to_backend(record.bytes_client_to_backend);
  out.set_bytes_backend_to_client(record.bytes_backend_to_client);
  out.set_created_at_unix_ms(record.created_at_unix_ms);
  out.set_data_len(data_len);
  return serialize(out);
}

Result<DecodedRecord> decode_record(std::string_view message) {
  pb::PairRecord in;
  if (!in.ParseFromArray(message.data(), static_cast<int>(message.size()))) {
    return Error::logic("record message does not parse");
  }
  DecodedRecord out;
  PairRecord& r = out.record;
  r.id = in.id();
  r.service = in.service();
  r.backend = in.backend();
  if (in.has_client()) {
    Result<SocketImage> image = decode_image(in.client());
    if (!image.ok()) return image.error().context("client leg");
    r.client = std::move(*image);
    out.queue_lengths[0] = in.client().send_queue_len();
    out.queue_lengths[1] = in.client().recv_queue_len();
  }
  if (in.has_backend_socket()) {
    Result<SocketImage> image = decode_image(in.backend_socket());
    if (!image.ok()) return image.error().context("backend leg");
    r.backend_socket = std::move(*image);
    out.queue_lengths[3] = in.backend_socket().send_queue_len();
    out.queue_lengths[4] = in.backend_socket().recv_queue_len();
  }
  out.queue_lengths[2] = in.client_unread_len();
  out.queue_lengths[5] = in.backend_unread_len();
  r.flags = in.flags();
  r.header_len = in.header_len();
  r.header_pending = in.header_pending();
  r.proxy_header = in.proxy_header();
  r.client_off_w = in.client_off_w();
  r.client_off_r = in.client_off_r();
  r.backend_off_w = in.backend_off_w();
  r.backend_off_r = in.backend_off_r();
  r.bytes_client_to_backend = in.bytes_client_to_backend();
  r.bytes_backend_to_client = in.bytes_backend_to_client();
  r.created_at_unix_ms = in.created_at_unix_ms();
  out.data_len = in.data_len();
  if (Status s = check_shape(r, out.queue_lengths, out.data_len); !s.ok()) return s.error();
  return out;
}

// ---- trailer --------------------------------------------------------------------

std::string encode_trailer(const TrailerInfo& trailer) {
  pb::Trailer out;
  out.set_record_count(trailer.record_count);
  out.set_data_bytes(trailer.data_bytes);
  return serialize(out);
}

Result<TrailerInfo> decode_trailer(std::string_view message) {
  pb::Trailer in;
  if (!in.ParseFromArray(message.data(), static_cast<int>(message.size()))) {
    return Error::logic("trailer message does not parse");
  }
  return TrailerInfo{in.record_count(), in.data_bytes()};
}

}  // namespace seamless::repair::handoff

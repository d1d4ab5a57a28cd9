// The worker <-> keeper channel: packets round-trip, hostile packets are refused, fds
// travel with their message, and the keeper's table follows a pair's life from the
// messages alone.
#include "proxy/control_channel.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "proxy/held_pairs.h"

namespace seamless::proxy {
namespace {

repair::PairRecord sample_record(uint64_t id) {
  repair::PairRecord r;
  r.id = id;
  r.service = "pg";
  r.backend = "198.18.0.1:7101";
  r.flags = repair::kClientFinished;
  r.header_len = 12;
  r.header_pending = 4;
  r.proxy_header = "PROXY TCP4\r\n";
  r.backend_off_w = 1;
  r.bytes_client_to_backend = 1000;
  r.bytes_backend_to_client = 2000;
  r.created_at_unix_ms = 1700000000000;
  return r;
}

TEST(ProxyControlChannel, MessagesRoundTripWithoutPayload) {
  repair::PairRecord record = sample_record(7);
  record.client_unread = "payload the channel must not carry";
  Result<std::string> packet =
      encode_message(make_message(MessageType::kBackendConnected, 7, record, "text"), 1);
  ASSERT_TRUE(packet.ok()) << packet.error().message;
  Result<Message> back = decode_message(*packet);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->type, MessageType::kBackendConnected);
  EXPECT_EQ(back->pair_id, 7u);
  EXPECT_EQ(back->text, "text");
  ASSERT_TRUE(back->record.has_value());
  EXPECT_EQ(*back->record, metadata_only(record));
  EXPECT_TRUE(back->record->client_unread.empty());
}

TEST(ProxyControlChannel, HostilePacketsAreRefused) {
  Result<std::string> good = encode_message(make_message(MessageType::kPairRecord, 3,
                                                         sample_record(3)), 0);
  ASSERT_TRUE(good.ok());
  EXPECT_FALSE(decode_message("").ok());
  EXPECT_FALSE(decode_message(good->substr(0, 10)).ok());
  EXPECT_FALSE(decode_message(good->substr(0, good->size() - 1)).ok());
  EXPECT_FALSE(decode_message(*good + "x").ok());
  std::string bad_type = *good;
  bad_type[3] = 99;
  EXPECT_FALSE(decode_message(bad_type).ok());
  std::string bad_magic = *good;
  bad_magic[0] ^= 1;
  EXPECT_FALSE(decode_message(bad_magic).ok());
  // Every truncation and every flipped byte either decodes or is refused; never crashes.
  for (size_t i = 0; i < good->size(); ++i) {
    std::string flipped = *good;
    flipped[i] ^= 0x5a;
    (void)decode_message(flipped);
    (void)decode_message(good->substr(0, i));
  }
  EXPECT_FALSE(encode_message(make_message(MessageType::kSync), kMaxFds + 1).ok());
}

// The quiescing worker's records travel many to a message (kPairRecords): each comes
// back as it went, metadata only; a batch larger than kMaxBatchRecords is refused both
// ways, and a batch cut anywhere is refused or decodes, never crashes.
TEST(ProxyControlChannel, ABatchOfRecordsTravelsInOneMessage) {
  Message batch = make_message(MessageType::kPairRecords);
  for (uint64_t id = 1; id <= kMaxBatchRecords; ++id) batch.records.push_back(sample_record(id));
  batch.records[5].client_unread = "payload stays out";
  Result<std::string> packet = encode_message(batch, 0);
  ASSERT_TRUE(packet.ok()) << packet.error().message;
  EXPECT_LE(packet->size(), kMaxMessageBytes);
  Result<Message> back = decode_message(*packet);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->type, MessageType::kPairRecords);
  EXPECT_FALSE(back->record.has_value());
  ASSERT_EQ(back->records.size(), size_t{kMaxBatchRecords});
  for (size_t i = 0; i < back->records.size(); ++i) {
    EXPECT_EQ(back->records[i], metadata_only(batch.records[i])) << i;
  }
  batch.records.push_back(sample_record(99));
  EXPECT_FALSE(encode_message(batch, 0).ok());
  for (size_t i = sizeof(uint64_t) * 3; i < packet->size(); i += 7) {
    (void)decode_message(packet->substr(0, i));
    std::string flipped = *packet;
    flipped[i] ^= 0x5a;
    (void)decode_message(flipped);
  }
}

TEST(ProxyControlChannel, FdsTravelWithTheirMessageAndArriveCloseOnExec) {
  auto pair = ControlChannel::make_pair();
  ASSERT_TRUE(pair.ok());
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);
  const int fds[2] = {r.get(), w.get()};
  ASSERT_TRUE(pair->first.send(make_message(MessageType::kRestored, 9, sample_record(9)), fds).ok());
  ASSERT_TRUE(pair->first.send(make_message(MessageType::kSync)).ok());
  auto got = pair->second.receive();
  ASSERT_TRUE(got.ok() && got->has_value());
  ASSERT_EQ((*got)->fds.size(), 2u);
  EXPECT_NE(::fcntl((*got)->fds[0].get(), F_GETFD) & FD_CLOEXEC, 0);
  // The received write end writes into our pipe.
  ASSERT_EQ(::write((*got)->fds[1].get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(r.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
  auto sync = pair->second.receive();
  ASSERT_TRUE(sync.ok() && sync->has_value());
  EXPECT_EQ((*sync)->type, MessageType::kSync);
  EXPECT_TRUE((*sync)->fds.empty());
  // Empty channel without waiting: EAGAIN; closed peer: EOF.
  auto empty = pair->second.receive(/*wait=*/false);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, EAGAIN);
  pair->first = ControlChannel();
  auto eof = pair->second.receive();
  ASSERT_TRUE(eof.ok());
  EXPECT_FALSE(eof->has_value());
}

// A new worker's pairs go many to a message (kAdoptBatch), each record followed by its
// one or two fds: they arrive in order and each fd is the one sent for its pair. Fd
// counts that do not add up are refused on both ends.
TEST(ProxyControlChannel, ABatchOfPairsArrivesWithEachPairsOwnFds) {
  auto channel = ControlChannel::make_pair();
  ASSERT_TRUE(channel.ok());
  std::vector<UniqueFd> ends;  // per pair: the read end of a pipe, then the write end
  Message batch = make_message(MessageType::kAdoptBatch);
  std::vector<int> fds;
  for (uint64_t id = 1; id <= kMaxBatchRecords; ++id) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    ends.emplace_back(p[0]);
    ends.emplace_back(p[1]);
    batch.records.push_back(sample_record(id));
    // Every third pair has no backend yet: one fd.
    const uint8_t count = id % 3 == 0 ? 1 : 2;
    batch.record_fds.push_back(count);
    fds.push_back(p[1]);  // the pair's "client": the write end
    if (count == 2) fds.push_back(p[0]);
  }
  ASSERT_EQ(fds.size(), kMaxFds - kMaxBatchRecords / 3);
  ASSERT_TRUE(channel->first.send(batch, fds).ok());
  auto got = channel->second.receive();
  ASSERT_TRUE(got.ok() && got->has_value()) << (got.ok() ? "EOF" : got.error().message);
  Message& back = **got;
  EXPECT_EQ(back.type, MessageType::kAdoptBatch);
  ASSERT_EQ(back.records.size(), size_t{kMaxBatchRecords});
  ASSERT_EQ(back.record_fds, batch.record_fds);
  ASSERT_EQ(back.fds.size(), fds.size());
  size_t next = 0;
  for (size_t i = 0; i < back.records.size(); ++i) {
    EXPECT_EQ(back.records[i], metadata_only(batch.records[i])) << i;
    // The pair's first fd writes into its own pipe.
    const char mark = static_cast<char>('A' + i % 26);
    ASSERT_EQ(::write(back.fds[next].get(), &mark, 1), 1) << i;
    char c = 0;
    ASSERT_EQ(::read(ends[2 * i].get(), &c, 1), 1) << i;
    EXPECT_EQ(c, mark) << i;
    next += back.record_fds[i];
  }
  // Counts that do not match the fds, or a pair with none, are refused when sending.
  batch.record_fds[0] = 1;
  EXPECT_FALSE(encode_message(batch, fds.size()).ok());
  batch.record_fds.pop_back();
  EXPECT_FALSE(encode_message(batch, fds.size()).ok());
  Message small = make_message(MessageType::kAdoptBatch);
  small.records.push_back(sample_record(1));
  small.record_fds.push_back(2);
  Result<std::string> packet = encode_message(small, 2);
  ASSERT_TRUE(packet.ok()) << packet.error().message;
  // ... and when received: the header's fd count must be what the records own.
  std::string wrong_total = *packet;
  wrong_total[4] = 1;  // Header::fd_count
  EXPECT_FALSE(decode_message(wrong_total).ok());
  // A pair owns one fd (its client) or two.
  std::string no_fds = *packet;
  no_fds[4] = 0;
  no_fds[24 + sizeof(uint32_t)] = 0;  // after the header, the record's length, its fd count
  EXPECT_FALSE(decode_message(no_fds).ok());
  small.record_fds[0] = 0;
  EXPECT_FALSE(encode_message(small, 0).ok());
  small.record_fds[0] = 3;
  EXPECT_FALSE(encode_message(small, 3).ok());
}

TEST(ProxyControlChannel, TrySendReportsAFullChannelInsteadOfWaiting) {
  auto pair = ControlChannel::make_pair();
  ASSERT_TRUE(pair.ok());
  size_t sent = 0;
  Status s;
  while ((s = pair->first.try_send(make_message(MessageType::kSync))).ok()) {
    ASSERT_LT(++sent, 100000u) << "the channel never filled";
  }
  EXPECT_EQ(s.error().code, EAGAIN);
  EXPECT_GT(sent, 0u);
  // Once the peer reads one, there is room for one more.
  ASSERT_TRUE(pair->second.receive().ok());
  EXPECT_TRUE(pair->first.try_send(make_message(MessageType::kSync)).ok());
}

// A worker's loop watching the channel makes its fd O_NONBLOCK (uv_poll_init); a
// waiting receive before the loop runs (a restore's kAck) must still wait.
TEST(ProxyControlChannel, AWaitingReceiveWaitsOnANonBlockingChannel) {
  auto pair = ControlChannel::make_pair();
  ASSERT_TRUE(pair.ok());
  const int fd = pair->second.fd();
  ASSERT_EQ(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    (void)pair->first.send(make_message(MessageType::kAck));
  });
  auto ack = pair->second.receive();
  late.join();
  ASSERT_TRUE(ack.ok()) << ack.error().message;
  ASSERT_TRUE(ack->has_value());
  EXPECT_EQ((*ack)->type, MessageType::kAck);
  // Without waiting, an empty channel is still EAGAIN.
  auto none = pair->second.receive(/*wait=*/false);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, EAGAIN);
}

Message with_fds(Message m, int count) {
  for (int i = 0; i < count; ++i) m.fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return m;
}

TEST(ProxyHeldPairs, FollowAPairsLifeFromItsMessages) {
  HeldPairs held;
  EXPECT_EQ(held.hold_client(UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)), sample_record(9)),
            1u);  // the keeper's ids, not the record's
  EXPECT_EQ(held.pairs().at(1).record.id, 1u);
  EXPECT_EQ(held.fd_count(), 1u);
  EXPECT_EQ(held.live_pairs().at(0).backend_fd, -1);  // connect in flight
  repair::PairRecord later = sample_record(1);
  later.bytes_client_to_backend = 5;
  Message connected =
      with_fds(make_message(MessageType::kBackendConnected, 1, later), 1);
  ASSERT_TRUE(held.apply(connected).ok());
  EXPECT_EQ(held.fd_count(), 2u);
  EXPECT_EQ(held.live_pairs().at(0).record.bytes_client_to_backend, 5u);
  Message restored = with_fds(make_message(MessageType::kRestored, 2, sample_record(2)), 2);
  ASSERT_TRUE(held.apply(restored).ok());
  EXPECT_TRUE(held.pairs().at(2).restoring);
  // The file's record carries the dumped sockets' baselines until the worker's kPairRecord.
  EXPECT_FALSE(held.pairs().at(2).rebased);
  Message rebased = make_message(MessageType::kPairRecord, 2, sample_record(2));
  ASSERT_TRUE(held.apply(rebased).ok());
  EXPECT_TRUE(held.pairs().at(2).rebased);
  EXPECT_TRUE(held.pairs().at(1).rebased);  // never restored
  Message closed = make_message(MessageType::kPairClosed, 1);
  ASSERT_TRUE(held.apply(closed).ok());
  EXPECT_EQ(held.size(), 1u);
  EXPECT_EQ(held.fd_count(), 2u);
}

TEST(ProxyHeldPairs, ABatchOfRecordsUpdatesEveryKnownPairAndNamesTheUnknown) {
  HeldPairs held;
  for (uint64_t id : {1, 2}) {
    Message adopted = with_fds(make_message(MessageType::kAdopt, id, sample_record(id)), 2);
    ASSERT_TRUE(held.apply(adopted).ok());
  }
  Message batch = make_message(MessageType::kPairRecords);
  for (uint64_t id : {1, 9, 2}) {
    batch.records.push_back(sample_record(id));
    batch.records.back().bytes_backend_to_client = 100 + id;
  }
  const Status applied = held.apply(batch);
  ASSERT_FALSE(applied.ok());
  EXPECT_NE(applied.error().message.find("unknown pairs 9"), std::string::npos)
      << applied.error().message;
  EXPECT_EQ(held.pairs().at(1).record.bytes_backend_to_client, 101u);
  EXPECT_EQ(held.pairs().at(2).record.bytes_backend_to_client, 102u);
  EXPECT_EQ(held.size(), 2u);
}

TEST(ProxyHeldPairs, AcceptedClientsGetIdsAboveEveryIdSeen) {
  HeldPairs held;
  Message restored = with_fds(make_message(MessageType::kRestored, 40, sample_record(40)), 2);
  ASSERT_TRUE(held.apply(restored).ok());
  Message adopted = with_fds(make_message(MessageType::kAdopt, 7, sample_record(7)), 1);
  ASSERT_TRUE(held.apply(adopted).ok());
  EXPECT_EQ(held.hold_client(UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)), {}), 41u);
  Message closed = make_message(MessageType::kPairClosed, 41);
  ASSERT_TRUE(held.apply(closed).ok());
  // A closed pair's id is not handed out again.
  EXPECT_EQ(held.hold_client(UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)), {}), 42u);
}

TEST(ProxyHeldPairs, ContradictionsAreReportedAndChangeNothing) {
  HeldPairs held;
  Message unknown_close = make_message(MessageType::kPairClosed, 5);
  EXPECT_FALSE(held.apply(unknown_close).ok());
  Message unknown_backend =
      with_fds(make_message(MessageType::kBackendConnected, 5, sample_record(5)), 1);
  EXPECT_FALSE(held.apply(unknown_backend).ok());
  Message no_fd = make_message(MessageType::kAdopt, 5, sample_record(5));
  EXPECT_FALSE(held.apply(no_fd).ok());
  Message first = with_fds(make_message(MessageType::kAdopt, 5, sample_record(5)), 1);
  ASSERT_TRUE(held.apply(first).ok());
  Message twice = with_fds(make_message(MessageType::kAdopt, 5, sample_record(5)), 1);
  const std::string error = held.apply(twice).ok() ? "" : "refused";
  EXPECT_EQ(error, "refused");
  EXPECT_EQ(held.size(), 1u);
  EXPECT_EQ(held.fd_count(), 1u);
  Message not_about_pairs = make_message(MessageType::kReady, 0, std::nullopt, "ready");
  EXPECT_TRUE(held.apply(not_about_pairs).ok());
  // Only the keeper accepts clients: a worker claiming one changes nothing.
  Message claimed = with_fds(make_message(MessageType::kClientAccepted, 6, sample_record(6)), 1);
  EXPECT_TRUE(held.apply(claimed).ok());
  EXPECT_EQ(held.size(), 1u);
}

}  // namespace
}  // namespace seamless::proxy

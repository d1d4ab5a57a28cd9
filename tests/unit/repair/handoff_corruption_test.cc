// The reader against damaged, hostile and future files: it refuses, with a clear
// error, everything it cannot read exactly, and reads what a newer minor wrote.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "repair/crc32c.h"
#include "repair/handoff_codec.h"
#include "repair/handoff_file.h"
#include "repair/handoff_format.h"
#include "tests/unit/repair/handoff_test_util.h"

namespace seamless::repair {
namespace {

using namespace testing;  // NOLINT
using namespace handoff;  // NOLINT
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Builds files frame by frame, for layouts the writer would never produce.
class FileBuilder {
 public:
  FileBuilder& preamble(uint16_t major = kFormatMajor, uint16_t minor = kFormatMinor) {
    const Preamble p = encode_preamble(major, minor);
    bytes_.append(reinterpret_cast<const char*>(p.data()), p.size());
    chain_ = preamble_crc(p);
    return *this;
  }
  FileBuilder& frame(uint8_t type, std::string_view payload) {
    bytes_ += encode_frame(type, payload, &chain_);
    return *this;
  }
  FileBuilder& header(const HandoffHeader& h = sample_header()) {
    return frame(kHeaderFrame, encode_header(h));
  }
  // A record frame and its data frames, as the writer lays them out.
  FileBuilder& record(const PairRecord& r) {
    Result<std::string> message = encode_record(r);
    EXPECT_TRUE(message.ok());
    frame(kRecordFrame, *message);
    for (const std::string* queue : record_queues(r)) {
      if (!queue->empty()) frame(kDataFrame, *queue);
      data_bytes_ += queue->size();
    }
    ++records_;
    return *this;
  }
  FileBuilder& trailer() { return trailer(records_, data_bytes_); }
  FileBuilder& trailer(uint64_t records, uint64_t data_bytes) {
    return frame(kTrailerFrame, encode_trailer({records, data_bytes}));
  }
  FileBuilder& raw(std::string_view bytes) {
    bytes_ += bytes;
    return *this;
  }
  FileBuilder& add_data_bytes(uint64_t n) {
    data_bytes_ += n;
    return *this;
  }
  FileBuilder& add_record() {
    ++records_;
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
  uint32_t chain_ = 0;
  uint64_t records_ = 0;
  uint64_t data_bytes_ = 0;
};

// Small enough to damage at every byte, big enough to have every frame type.
std::string small_file() {
  PairRecord absent = full_record(2, 2);
  absent.backend_socket.reset();
  return FileBuilder()
      .preamble()
      .header()
      .record(full_record(1, 4))
      .record(absent)
      .trailer()
      .bytes();
}

uint64_t data_of(const PairRecord& r) {
  uint64_t sum = 0;
  for (const uint64_t n : queue_lengths(r)) sum += n;
  return sum;
}

std::string error_of(std::string_view bytes) {
  const ReadAll got = read_all(bytes);
  return got.ok ? "" : got.error;
}

TEST(HandoffCorruption, TheSmallFileIsWhatTheWriterWrites) {
  TempDir tmp;
  PairRecord absent = full_record(2, 2);
  absent.backend_socket.reset();
  const std::string path = write_handoff(tmp.path(), sample_header(), {full_record(1, 4), absent});
  EXPECT_EQ(read_file(path), small_file());
  EXPECT_TRUE(read_all(small_file()).ok);
}

TEST(HandoffCorruption, EveryTruncationIsRefused) {
  const std::string file = small_file();
  EXPECT_EQ(error_of(std::string_view(file).substr(0, 0)),
            "handoff file mem: empty file (not a handoff file)");
  for (size_t size = 1; size < file.size(); ++size) {
    const std::string error = error_of(std::string_view(file).substr(0, size));
    EXPECT_THAT(error, StartsWith("handoff file mem: ")) << size;
    EXPECT_THAT(error, HasSubstr("truncated")) << size;
  }
}

TEST(HandoffCorruption, EveryByteFlipIsRefused) {
  const std::string file = small_file();
  for (size_t i = 0; i < file.size(); ++i) {
    for (const uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string damaged = file;
      damaged[i] = static_cast<char>(damaged[i] ^ mask);
      EXPECT_THAT(error_of(damaged), StartsWith("handoff file mem: "))
          << "byte " << i << " ^ " << int{mask};
    }
  }
}

TEST(HandoffCorruption, BadMagic) {
  std::string file = small_file();
  file[0] = 'X';
  EXPECT_EQ(error_of(file), "handoff file mem: not a handoff file (bad magic)");
  EXPECT_EQ(error_of("SEAM"), "handoff file mem: truncated in the preamble");
  EXPECT_EQ(error_of("GIF89a"), "handoff file mem: not a handoff file (bad magic)");
}

TEST(HandoffCorruption, OtherMajorsAreRefusedByName) {
  TempDir tmp;
  write_file(tmp / "v2", FileBuilder().preamble(2, 0).raw("whatever a 2.0 file holds").bytes());
  Result<HandoffSummary> v2 = verify_handoff_file(tmp / "v2");
  ASSERT_FALSE(v2.ok());
  EXPECT_EQ(v2.error().message,
            "handoff file " + (tmp / "v2") + ": format 2.0 is newer than this binary reads (1.x)");
  EXPECT_EQ(error_of(FileBuilder().preamble(0, 9).header().trailer().bytes()),
            "handoff file mem: format 0.9 is older than this binary reads (1.x)");
}

TEST(HandoffCorruption, NewerMinorWithUnknownFieldsIsRead) {
  const PairRecord record = full_record(5, 20);
  Result<std::string> message = encode_record(record);
  ASSERT_TRUE(message.ok());
  // Fields a future minor added: a scalar, a string, and extra fields inside the
  // client image; plus 10 payload bytes of a queue we do not know (data_len is
  // overridden by a later occurrence of the field, as protobuf's last one wins).
  const uint64_t known = data_of(record);
  const std::string future_record = *message + field_varint(100, 7) + field_bytes(101, "future") +
                                    field_bytes(4, field_varint(99, 1)) +
                                    field_varint(19, known + 10);
  const std::string future_header = encode_header(sample_header()) + field_bytes(50, "new");

  FileBuilder b;
  b.preamble(1, 7).frame(kHeaderFrame, future_header).frame(0x81, "an extension frame");
  b.frame(kRecordFrame, future_record);
  for (const std::string* queue : record_queues(record)) {
    if (!queue->empty()) b.frame(kDataFrame, *queue);
  }
  b.frame(kDataFrame, "0123456789").frame(0x90, "").add_record().add_data_bytes(known + 10);
  b.trailer();
  const ReadAll got = read_all(b.bytes());
  ASSERT_TRUE(got.ok) << got.error;
  EXPECT_EQ(got.format, (FormatVersion{1, 7}));
  EXPECT_EQ(got.header, sample_header());
  ASSERT_EQ(got.records.size(), 1u);
  EXPECT_EQ(got.records[0], record);
}

TEST(HandoffCorruption, OversizedLengthsAreRefusedBeforeAllocation) {
  const std::string huge_header =
      FileBuilder().preamble().raw(std::string("\x01\xff\xff\xff\xff", 5)).raw("abc").bytes();
  EXPECT_EQ(error_of(huge_header),
            "handoff file mem: header frame at offset 16: length 4294967295 exceeds the limit of "
            "1048576 (header)");

  PairRecord record = full_record(1, 0);
  Result<std::string> message = encode_record(record);
  ASSERT_TRUE(message.ok());
  const uint64_t others = data_of(record) - record.client->recv_queue.size();
  // A client send queue of 2 GiB, over the 1 GiB cap.
  const std::string big_queue = *message + field_bytes(4, field_varint(5, uint64_t{2} << 30)) +
                                field_varint(19, (uint64_t{2} << 30) + data_of(record));
  EXPECT_THAT(error_of(FileBuilder().preamble().header().frame(kRecordFrame, big_queue).bytes()),
              HasSubstr("record 0 (frame at offset "));
  EXPECT_THAT(error_of(FileBuilder().preamble().header().frame(kRecordFrame, big_queue).bytes()),
              HasSubstr("client send queue of 2147483648 bytes exceeds the limit of 1073741824"));

  // A data frame longer than the 1 MiB cap.
  const std::string one_mib_due =
      *message + field_bytes(4, field_varint(9, 3 << 20)) + field_varint(19, (3 << 20) + others);
  const std::string big_frame = FileBuilder()
                                    .preamble()
                                    .header()
                                    .frame(kRecordFrame, one_mib_due)
                                    .raw(std::string("\x03\x00\x00\x20\x00", 5))
                                    .bytes();
  EXPECT_THAT(error_of(big_frame), HasSubstr("data frame at offset "));
  EXPECT_THAT(error_of(big_frame), HasSubstr(": length 2097152 exceeds the limit of 1048576"));
}

TEST(HandoffCorruption, ALyingQueueLengthEndsInTruncation) {
  PairRecord record = full_record(1, 0);
  Result<std::string> message = encode_record(record);
  ASSERT_TRUE(message.ok());
  // 1 GiB claimed (within the cap) but only 10 bytes present: the reader grows the
  // queue by what arrives, so this costs nothing.
  const uint64_t others = data_of(record) - record.client->recv_queue.size();
  const uint64_t claimed = (uint64_t{1} << 30) + others;
  const std::string liar =
      *message + field_bytes(4, field_varint(9, uint64_t{1} << 30)) + field_varint(19, claimed);
  const std::string file = FileBuilder()
                               .preamble()
                               .header()
                               .frame(kRecordFrame, liar)
                               .frame(kDataFrame, "0123456789")
                               .bytes();
  EXPECT_THAT(error_of(file), HasSubstr("truncated at offset "));
  EXPECT_THAT(error_of(file), HasSubstr("in the data of record 0 (" + std::to_string(claimed - 10) +
                                        " bytes missing)"));
}

TEST(HandoffCorruption, StructuralErrors) {
  const PairRecord r = full_record(1, 0);
  // Trailer counts that do not match.
  EXPECT_THAT(error_of(FileBuilder().preamble().header().record(r).trailer(2, 3).bytes()),
              HasSubstr("counts 2 records and 3 data bytes, the file has 1 and " +
                        std::to_string(data_of(r))));
  // Whole records swapped or dropped: each frame is intact, the chain is not.
  FileBuilder builder;
  const size_t start = builder.preamble().header().bytes().size();
  const size_t middle = builder.record(full_record(1, 0)).bytes().size();
  const size_t end = builder.record(full_record(2, 0)).bytes().size();
  const std::string good = builder.trailer().bytes();
  ASSERT_TRUE(read_all(good).ok);
  const std::string a = good.substr(start, middle - start);
  const std::string b = good.substr(middle, end - middle);
  ASSERT_EQ(a.size(), b.size());  // same lengths: only the content tells them apart
  const std::string swapped = good.substr(0, start) + b + a + good.substr(end);
  EXPECT_THAT(error_of(swapped),
              HasSubstr("checksum mismatch in the record 0 frame at offset " +
                        std::to_string(start) + " (damaged, or frames lost or reordered)"));
  const std::string dropped = good.substr(0, start) + b + good.substr(end);
  EXPECT_THAT(error_of(dropped), HasSubstr("checksum mismatch in the record 0 frame"));
  // An unknown mandatory frame type, a stray data frame, a second header.
  EXPECT_THAT(error_of(FileBuilder().preamble().header().frame(9, "x").bytes()),
              HasSubstr("unexpected type 0x09 frame at offset "));
  EXPECT_THAT(error_of(FileBuilder().preamble().header().frame(kDataFrame, "x").bytes()),
              HasSubstr("unexpected data frame"));
  EXPECT_THAT(error_of(FileBuilder().preamble().header().header().bytes()),
              HasSubstr("unexpected header frame"));
  EXPECT_THAT(error_of(FileBuilder().preamble().record(r).bytes()),
              HasSubstr("the first frame is a record frame, not the header"));
  // Anything after the trailer.
  EXPECT_THAT(error_of(FileBuilder().preamble().header().trailer().raw("x").bytes()),
              HasSubstr("unexpected bytes after the trailer"));
  // A message that is not protobuf.
  EXPECT_THAT(error_of(FileBuilder().preamble().header().frame(kRecordFrame, "\xff\xff").bytes()),
              HasSubstr("record message does not parse"));
}

TEST(HandoffCorruption, SemanticErrorsInMessages) {
  HandoffHeader dup_header = sample_header();
  const std::string dup = encode_header(dup_header) + field_bytes(4, field_bytes(1, "zero"));
  EXPECT_THAT(error_of(FileBuilder().preamble().frame(kHeaderFrame, dup).bytes()),
              HasSubstr("counter \"zero\" appears twice"));

  Result<std::string> message = encode_record(full_record(1, 0));
  ASSERT_TRUE(message.ok());
  const auto with = [&](const std::string& extra) {
    return error_of(
        FileBuilder().preamble().header().frame(kRecordFrame, *message + extra).bytes());
  };
  EXPECT_THAT(with(field_bytes(4, field_varint(3, 7))),
              HasSubstr("client leg: TCP state 7 cannot be migrated"));
  EXPECT_THAT(with(field_bytes(5, field_bytes(2, field_varint(3, 70000)))),
              HasSubstr("backend leg: peer address: port 70000 out of range"));
  EXPECT_THAT(with(field_bytes(4, field_bytes(1, field_bytes(2, "abc")))),
              HasSubstr("client leg: local address: address of 3 bytes, want 4"));
  EXPECT_THAT(with(field_bytes(4, field_bytes(1, field_varint(1, 9)))),
              HasSubstr("unknown address family 9"));
  EXPECT_THAT(with(field_bytes(4, field_bytes(10, field_varint(5, 256)))),
              HasSubstr("snd_wscale 256 out of range"));
  EXPECT_THAT(with(field_varint(10, 1000)), HasSubstr("PROXY header pending 1000 > length"));
}

TEST(HandoffCorruption, ErrorsAreFinal) {
  std::string file = small_file();
  file[file.size() - 1] ^= 1;  // the trailer's checksum
  Result<HandoffReader> reader = HandoffReader::from_bytes(file, "mem");
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(reader->next().ok());
  ASSERT_TRUE(reader->next().ok());
  Result<std::optional<PairRecord>> first = reader->next();
  ASSERT_FALSE(first.ok());
  EXPECT_THAT(first.error().message, HasSubstr("checksum mismatch in the trailer frame"));
  Result<std::optional<PairRecord>> again = reader->next();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, first.error().message);
}

}  // namespace
}  // namespace seamless::repair

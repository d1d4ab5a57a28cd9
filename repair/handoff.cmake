# The handoff file (handoff_file.h): included from repair/CMakeLists.txt.
# handoff.proto is compiled into the build tree; its generated header stays private
# to seamless_repair (no public header includes it).
set(handoff_proto_dir ${CMAKE_CURRENT_BINARY_DIR}/handoff_proto)
file(MAKE_DIRECTORY ${handoff_proto_dir})
protobuf_generate(
  TARGET seamless_repair
  LANGUAGE cpp
  PROTOS ${CMAKE_CURRENT_LIST_DIR}/handoff.proto
  IMPORT_DIRS ${CMAKE_CURRENT_LIST_DIR}
  PROTOC_OUT_DIR ${handoff_proto_dir})
target_include_directories(seamless_repair PRIVATE ${handoff_proto_dir})
target_sources(seamless_repair PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/crc32c.cc
  ${CMAKE_CURRENT_LIST_DIR}/handoff_codec.cc
  ${CMAKE_CURRENT_LIST_DIR}/handoff_format.cc
  ${CMAKE_CURRENT_LIST_DIR}/handoff_reader.cc
  ${CMAKE_CURRENT_LIST_DIR}/handoff_source.cc
  ${CMAKE_CURRENT_LIST_DIR}/handoff_writer.cc)
target_link_libraries(seamless_repair PUBLIC protobuf::libprotobuf-lite)

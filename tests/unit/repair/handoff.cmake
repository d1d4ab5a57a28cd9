# Tests of the handoff file (repair/handoff_file.h); included by this folder's list.
seamless_test(handoff_file_test unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/handoff_crc32c_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/handoff_corruption_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/handoff_file_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/handoff_golden_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/handoff_io_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/handoff_test_util.cc
  LIBS seamless_repair)
# Golden files are read from (and, by the disabled generator only, written to) the
# source tree.
target_compile_definitions(handoff_file_test PRIVATE SEAMLESS_SOURCE_DIR="${CMAKE_SOURCE_DIR}")

seamless_test(flow_lock_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/flow_lock_test.cc
  LIBS seamless_repair seamless_test_support)

add_library(seamless_repair_test_support STATIC ${CMAKE_CURRENT_LIST_DIR}/repair_fixture.cc)
target_link_libraries(seamless_repair_test_support PUBLIC seamless_repair seamless_test_support)

seamless_test(repair_state_matrix_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/state_matrix_test.cc
  LIBS seamless_repair_test_support)

seamless_test(repair_migration_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/migration_test.cc
  LIBS seamless_repair_test_support)

seamless_test(repair_large_queue_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/large_queue_test.cc
  LIBS seamless_repair_test_support)

seamless_test(repair_checkpoint_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/checkpoint_test.cc
  LIBS seamless_repair_test_support)

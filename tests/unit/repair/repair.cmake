seamless_test(repair_socket_image_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/socket_image_test.cc ${CMAKE_CURRENT_LIST_DIR}/fake_sys.cc
          ${CMAKE_CURRENT_LIST_DIR}/tcp_packet_test.cc
  LIBS seamless_repair)

seamless_test(repair_unit_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/socket_image_test.cc ${CMAKE_CURRENT_LIST_DIR}/fake_sys.cc
          ${CMAKE_CURRENT_LIST_DIR}/tcp_packet_test.cc ${CMAKE_CURRENT_LIST_DIR}/byte_accounting_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/closed_leg_test.cc ${CMAKE_CURRENT_LIST_DIR}/leg_survey_test.cc
  LIBS seamless_repair)

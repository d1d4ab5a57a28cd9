# The handoff file reader against arbitrary bytes (repair/handoff_file.h).
seamless_fuzz(handoff ${CMAKE_CURRENT_SOURCE_DIR}/handoff_fuzz.cc seamless_repair)

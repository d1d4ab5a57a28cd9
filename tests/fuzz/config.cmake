# The config parser: YAML from an operator, or from anyone who can write the file.
seamless_fuzz(config ${CMAKE_CURRENT_SOURCE_DIR}/config_fuzz.cc seamless_config)

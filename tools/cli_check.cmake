# Runs COMMAND (a ;-list) and checks that it exits with EXPECT_RC and that its combined stdout and
# stderr (stdout first, then stderr) match EXPECT_REGEX (if given). Used by the CLI's CTest tests:
#   cmake -DEXPECT_RC=1 "-DEXPECT_REGEX=not found" "-DCOMMAND=starkv;inspect;x" -P cli_check.cmake
if(NOT DEFINED COMMAND OR NOT DEFINED EXPECT_RC)
  message(FATAL_ERROR "cli_check.cmake needs -DCOMMAND=... and -DEXPECT_RC=...")
endif()
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
message("${all}")
if(NOT "${rc}" STREQUAL "${EXPECT_RC}")
  message(FATAL_ERROR "exit status ${rc}, expected ${EXPECT_RC}")
endif()
if(DEFINED EXPECT_REGEX AND NOT "${EXPECT_REGEX}" STREQUAL "")
  if(NOT "${all}" MATCHES "${EXPECT_REGEX}")
    message(FATAL_ERROR "output does not match: ${EXPECT_REGEX}")
  endif()
endif()

# Runs a language sample and checks it prints exactly what the C sample prints.
#   cmake -DCANDIDATE="cmd|arg|..." [-DREFERENCE=<C sample>] [-DENV="K=V|..."] [-DWORKDIR=dir]
#         -P compare_outputs.cmake
# Without REFERENCE the sample only has to succeed.
string(REPLACE "|" ";" candidate "${CANDIDATE}")
string(REPLACE "|" ";" env "${ENV}")
if(NOT WORKDIR)
  set(WORKDIR .)
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env ${env} ${candidate}
  WORKING_DIRECTORY ${WORKDIR}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the sample failed (exit ${rc})")
endif()
if(REFERENCE)
  execute_process(COMMAND ${REFERENCE} OUTPUT_VARIABLE expected RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the C sample failed (exit ${rc})")
  endif()
  if(NOT out STREQUAL expected)
    message(FATAL_ERROR "the sample's output differs from the C sample's:\n${expected}")
  endif()
  message("same output as the C sample")
endif()

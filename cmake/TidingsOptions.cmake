# Project-wide compiler settings: one INTERFACE target for warnings, and sanitizers.

add_library(tidings_warnings INTERFACE)
target_compile_options(tidings_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough
  $<$<BOOL:${TIDINGS_WERROR}>:-Werror>)

if(TIDINGS_SANITIZE)
  string(REPLACE "," ";" _sanitizers "${TIDINGS_SANITIZE}")
  foreach(_s IN LISTS _sanitizers)
    if(NOT _s MATCHES "^(address|undefined|thread|leak)$")
      message(FATAL_ERROR "TIDINGS_SANITIZE: unknown sanitizer '${_s}'")
    endif()
  endforeach()
  add_compile_options(-fsanitize=${TIDINGS_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${TIDINGS_SANITIZE})
  if(TIDINGS_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # g++ 12 warns inside Asio about atomic_thread_fence under TSan.
    add_compile_options(-Wno-tsan)
  endif()
endif()

# gtest_discover_tests behind one helper, so every test binary gets a label and a timeout.
function(tidings_add_test name label)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE GTest::gtest_main GTest::gmock tidings_warnings)
  include(GoogleTest)
  gtest_discover_tests(${name}
    PROPERTIES LABELS ${label} TIMEOUT 120
    DISCOVERY_TIMEOUT 60)
endfunction()
